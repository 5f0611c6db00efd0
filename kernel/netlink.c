// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk: the "vhost_blk" generic netlink family (linux/vhost_blk_nl.h),
 * what every open device is (DEV_GET) and what it did (STATS_GET), for
 * administrators: vhostblk-setup list and stats.
 *
 * Every open device has an id in @vhost_blk_devs from open to release. A
 * reader looks it up and reads it under the RCU read lock: the release
 * takes it out first and frees its memory only a grace period later
 * (vhost_blk_nl_unregister(), vhost_blk_release()). What changes while the device lives is read
 * under its info_lock (owner, backend, features) or without a lock (the
 * queues' counters, u64_stats), so that no reader waits for a device that
 * is stopping, and no request waits for a reader.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/pid_namespace.h>
#include <linux/xarray.h>
#include <net/genetlink.h>

#include "vhost_blk.h"

/* The open devices by id; ids go round before one is reused. */
static DEFINE_XARRAY_ALLOC1(vhost_blk_devs);
static u32 vhost_blk_next_id;

static struct genl_family vhost_blk_family;

/**
 * vhost_blk_nl_register() - give a new device its id
 * @blk: the device, being opened
 *
 * Return: 0, or -ENOMEM or -EBUSY when no id is left.
 */
int vhost_blk_nl_register(struct vhost_blk *blk)
{
	int ret;

	ret = xa_alloc_cyclic(&vhost_blk_devs, &blk->id, blk, xa_limit_31b,
			      &vhost_blk_next_id, GFP_KERNEL);
	return ret < 0 ? ret : 0;
}

/**
 * vhost_blk_nl_unregister() - take a device out, at its release
 * @blk: the device
 *
 * New readers no longer find it; those that did may read it until an RCU
 * grace period has passed, so the caller frees it only after one.
 */
void vhost_blk_nl_unregister(struct vhost_blk *blk)
{
	xa_erase(&vhost_blk_devs, blk->id);
}

/* The device's state for VHOST_BLK_A_DEV_STATE. Caller holds info_lock. */
static u32 vhost_blk_nl_state(const struct vhost_blk *blk, bool ready)
{
	const struct vhost_blk_vq *bvq;
	unsigned int i;

	if (!blk->owner)
		return VHOST_BLK_STATE_NO_OWNER;
	if (!blk->backend)
		return VHOST_BLK_STATE_NO_BACKEND;
	if (!READ_ONCE(blk->running))
		return VHOST_BLK_STATE_STOPPED;
	for (i = 0; ready && i < blk->nvqs; i++) {
		bvq = &blk->vqs[i];
		if (u64_stats_read(&bvq->stats.c[VHOST_BLK_C_DRIVER_ERRORS]) >
		    READ_ONCE(bvq->errors_base))
			return VHOST_BLK_STATE_QUEUE_ERROR;
	}
	return VHOST_BLK_STATE_RUNNING;
}

/*
 * Global thread id @tid in the caller's pid namespace; 0 for none or one
 * it does not see. Caller holds the RCU read lock.
 */
static u32 vhost_blk_nl_tid(pid_t tid)
{
	struct pid *pid = tid ? find_pid_ns(tid, &init_pid_ns) : NULL;

	return pid ? pid_nr_ns(pid, task_active_pid_ns(current)) : 0;
}

/* The DEV_GET attributes of @blk. Caller holds the RCU read lock. */
static int vhost_blk_nl_fill_dev(struct sk_buff *skb, struct vhost_blk *blk)
{
	/* Pairs with the store-release in vhost_blk_init_queues(). */
	bool ready = smp_load_acquire(&blk->ready);
	char name[BDEVNAME_SIZE] = "";
	u32 nvqs = READ_ONCE(blk->nvqs);
	dev_t devt = 0;
	char comm[TASK_COMM_LEN] = "";
	pid_t pid = 0;
	bool ro = false;
	unsigned int q;
	u64 features;
	u32 state;

	spin_lock(&blk->info_lock);
	if (blk->owner) {
		pid = pid_nr_ns(blk->owner, task_active_pid_ns(current));
		memcpy(comm, blk->owner_comm, sizeof(comm));
	}
	if (blk->backend) {
		devt = blk->backend->bdev->bd_dev;
		snprintf(name, sizeof(name), "%pg", blk->backend->bdev);
		ro = READ_ONCE(blk->force_ro) ||
		     vhost_blk_backend_read_only(blk->backend);
	}
	features = blk->features;
	state = vhost_blk_nl_state(blk, ready);
	spin_unlock(&blk->info_lock);

	if (nla_put_u32(skb, VHOST_BLK_A_DEV_ID, blk->id) ||
	    nla_put_u32(skb, VHOST_BLK_A_DEV_STATE, state) ||
	    nla_put_u32(skb, VHOST_BLK_A_DEV_NUM_QUEUES, nvqs) ||
	    nla_put_u64_64bit(skb, VHOST_BLK_A_DEV_FEATURES, features,
			      VHOST_BLK_A_PAD))
		return -EMSGSIZE;
	if (pid && (nla_put_u32(skb, VHOST_BLK_A_DEV_OWNER_PID, pid) ||
		    nla_put_string(skb, VHOST_BLK_A_DEV_OWNER_COMM, comm)))
		return -EMSGSIZE;
	if (devt && (nla_put_u32(skb, VHOST_BLK_A_DEV_BACKEND_MAJOR, MAJOR(devt)) ||
		     nla_put_u32(skb, VHOST_BLK_A_DEV_BACKEND_MINOR, MINOR(devt)) ||
		     nla_put_string(skb, VHOST_BLK_A_DEV_BACKEND_NAME, name) ||
		     nla_put_u8(skb, VHOST_BLK_A_DEV_READ_ONLY, ro)))
		return -EMSGSIZE;
	for (q = 0; ready && q < nvqs; q++)
		if (nla_put_u32(skb, VHOST_BLK_A_DEV_WORKER,
				vhost_blk_nl_tid(READ_ONCE(blk->vqs[q].worker_tid))))
			return -EMSGSIZE;
	for (q = 0; ready && q < nvqs; q++)
		if (nla_put_u32(skb, VHOST_BLK_A_DEV_POLL_US,
				READ_ONCE(blk->vqs[q].vq.busyloop_timeout)))
			return -EMSGSIZE;
	return 0;
}

/* A consistent copy of one queue's counters, read without stopping it. */
static void vhost_blk_nl_read_stats(const struct vhost_blk_stats *s,
				    u64 *v)
{
	unsigned int start, i;

	do {
		start = u64_stats_fetch_begin(&s->syncp);
		for (i = 0; i < VHOST_BLK_NR_COUNTERS; i++)
			v[i] = u64_stats_read(&s->c[i]);
	} while (u64_stats_fetch_retry(&s->syncp, start));
}

/*
 * The attribute of each counter before the histogram (enum
 * vhost_blk_counter), which goes as one binary attribute.
 */
static const u16 vhost_blk_nl_stat_attrs[] = {
	VHOST_BLK_A_STAT_REQ_IN,
	VHOST_BLK_A_STAT_REQ_OUT,
	VHOST_BLK_A_STAT_REQ_FLUSH,
	VHOST_BLK_A_STAT_REQ_GET_ID,
	VHOST_BLK_A_STAT_REQ_DISCARD,
	VHOST_BLK_A_STAT_REQ_WRITE_ZEROES,
	VHOST_BLK_A_STAT_REQ_SECURE_ERASE,
	VHOST_BLK_A_STAT_REQ_OTHER,
	VHOST_BLK_A_STAT_SECTORS_READ,
	VHOST_BLK_A_STAT_SECTORS_WRITTEN,
	VHOST_BLK_A_STAT_ERR_IOERR,
	VHOST_BLK_A_STAT_ERR_UNSUPP,
	VHOST_BLK_A_STAT_BOUNCED_REQS,
	VHOST_BLK_A_STAT_BOUNCED_BYTES,
	VHOST_BLK_A_STAT_KICKS,
	VHOST_BLK_A_STAT_INTERRUPTS,
	VHOST_BLK_A_STAT_USED_BATCHES,
	VHOST_BLK_A_STAT_DRIVER_ERRORS,
	VHOST_BLK_A_STAT_POLLED,
};

static_assert(ARRAY_SIZE(vhost_blk_nl_stat_attrs) == VHOST_BLK_C_LATENCY);

/* What one nest of counters takes in a message. */
static size_t vhost_blk_nl_stats_nest_size(void)
{
	return nla_total_size(0) +			/* the nest */
	       nla_total_size(sizeof(u32)) +		/* STAT_QUEUE */
	       (ARRAY_SIZE(vhost_blk_nl_stat_attrs) + 1) *	/* and INFLIGHT */
	       nla_total_size_64bit(sizeof(u64)) +
	       nla_total_size(VHOST_BLK_LAT_BUCKETS * sizeof(u64));
}

/* What STATS_GET's message for a device of @nvqs queues takes. */
static size_t vhost_blk_nl_stats_size(unsigned int nvqs)
{
	return genlmsg_total_size(nla_total_size(sizeof(u32)) +	/* DEV_ID */
				  (nvqs + 1) * vhost_blk_nl_stats_nest_size());
}

/* What DEV_GET's message for a device of @nvqs queues takes. */
static size_t vhost_blk_nl_dev_size(unsigned int nvqs)
{
	return genlmsg_total_size((6 + 2 * nvqs) * nla_total_size(sizeof(u32)) +
				  nla_total_size_64bit(sizeof(u64)) +
				  nla_total_size(sizeof(u8)) +
				  nla_total_size(TASK_COMM_LEN) +
				  nla_total_size(BDEVNAME_SIZE));
}

/* One nest of counters: @v as read, @inflight, and the queue's index. */
static int vhost_blk_nl_put_stats(struct sk_buff *skb, u16 type, int queue,
				  const u64 *v, u64 inflight)
{
	struct nlattr *nest;
	unsigned int i;

	nest = nla_nest_start(skb, type);
	if (!nest)
		return -EMSGSIZE;
	if (queue >= 0 && nla_put_u32(skb, VHOST_BLK_A_STAT_QUEUE, queue))
		goto cancel;
	for (i = 0; i < ARRAY_SIZE(vhost_blk_nl_stat_attrs); i++)
		if (nla_put_u64_64bit(skb, vhost_blk_nl_stat_attrs[i], v[i],
				      VHOST_BLK_A_STAT_PAD))
			goto cancel;
	if (nla_put_u64_64bit(skb, VHOST_BLK_A_STAT_INFLIGHT, inflight,
			      VHOST_BLK_A_STAT_PAD) ||
	    nla_put(skb, VHOST_BLK_A_STAT_LATENCY_HIST,
		    VHOST_BLK_LAT_BUCKETS * sizeof(u64), v + i))
		goto cancel;
	nla_nest_end(skb, nest);
	return 0;

cancel:
	nla_nest_cancel(skb, nest);
	return -EMSGSIZE;
}

/* The STATS_GET attributes of @blk. Caller holds the RCU read lock. */
static int vhost_blk_nl_fill_stats(struct sk_buff *skb, struct vhost_blk *blk)
{
	u64 v[VHOST_BLK_NR_COUNTERS], total[VHOST_BLK_NR_COUNTERS] = { 0 };
	u64 inflight, total_inflight = 0;
	unsigned int q, i;

	if (nla_put_u32(skb, VHOST_BLK_A_DEV_ID, blk->id))
		return -EMSGSIZE;
	/* No queues, no counters, before the first VHOST_SET_OWNER. */
	if (!smp_load_acquire(&blk->ready))
		return vhost_blk_nl_put_stats(skb, VHOST_BLK_A_STATS_TOTAL, -1,
					      total, 0);
	for (q = 0; q < blk->nvqs; q++) {
		vhost_blk_nl_read_stats(&blk->vqs[q].stats, v);
		inflight = atomic_read(&blk->vqs[q].inflight);
		for (i = 0; i < VHOST_BLK_NR_COUNTERS; i++)
			total[i] += v[i];
		total_inflight += inflight;
		if (vhost_blk_nl_put_stats(skb, VHOST_BLK_A_STATS_QUEUE, q, v,
					   inflight))
			return -EMSGSIZE;
	}
	return vhost_blk_nl_put_stats(skb, VHOST_BLK_A_STATS_TOTAL, -1, total,
				      total_inflight);
}

/* One message for @blk: @cmd's attributes. Caller holds the RCU read lock. */
static int vhost_blk_nl_fill(struct sk_buff *skb, struct vhost_blk *blk,
			     u8 cmd, u32 portid, u32 seq, int flags)
{
	void *hdr;
	int ret;

	hdr = genlmsg_put(skb, portid, seq, &vhost_blk_family, flags, cmd);
	if (!hdr)
		return -EMSGSIZE;
	ret = cmd == VHOST_BLK_CMD_DEV_GET ? vhost_blk_nl_fill_dev(skb, blk) :
					     vhost_blk_nl_fill_stats(skb, blk);
	if (ret) {
		genlmsg_cancel(skb, hdr);
		return ret;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

/* DEV_GET and STATS_GET, do: the device VHOST_BLK_A_DEV_ID names. */
static int vhost_blk_nl_doit(struct sk_buff *skb, struct genl_info *info)
{
	u8 cmd = info->genlhdr->cmd;
	unsigned int nvqs = 0;
	struct vhost_blk *blk;
	struct sk_buff *msg;
	size_t size;
	u32 id;
	int ret;

	if (GENL_REQ_ATTR_CHECK(info, VHOST_BLK_A_DEV_ID))
		return -EINVAL;
	id = nla_get_u32(info->attrs[VHOST_BLK_A_DEV_ID]);
	/* The message's size, from the queues of a device that is ready. */
	rcu_read_lock();
	blk = xa_load(&vhost_blk_devs, id);
	/* Pairs with the store-release in vhost_blk_init_queues(). */
	if (blk && smp_load_acquire(&blk->ready))
		nvqs = blk->nvqs;
	rcu_read_unlock();
	size = cmd == VHOST_BLK_CMD_DEV_GET ? vhost_blk_nl_dev_size(nvqs) :
	       vhost_blk_nl_stats_size(nvqs);
	msg = genlmsg_new(size, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	/* Found again: it may have gone, or become ready (nvqs fixed then). */
	rcu_read_lock();
	blk = xa_load(&vhost_blk_devs, id);
	if (blk &&
	    /* Pairs with the store-release in vhost_blk_init_queues(). */
	    smp_load_acquire(&blk->ready) && blk->nvqs != nvqs)
		ret = -EAGAIN;
	else
		ret = blk ? vhost_blk_nl_fill(msg, blk, cmd, info->snd_portid,
					      info->snd_seq, 0) : -ENODEV;
	rcu_read_unlock();
	/* The sizes above are wrong if this happens. */
	WARN_ON_ONCE(ret == -EMSGSIZE);
	if (ret) {
		if (ret == -ENODEV)
			NL_SET_ERR_MSG_ATTR(info->extack,
					    info->attrs[VHOST_BLK_A_DEV_ID],
					    "no such device");
		nlmsg_free(msg);
		return ret;
	}
	return genlmsg_reply(msg, info);
}

/*
 * A STATS_GET dump's buffers hold the message of the device with the most
 * queues now. One that becomes ready with more during the dump ends it with
 * EMSGSIZE if its message alone does not fit: dump again.
 */
static int vhost_blk_nl_stats_start(struct netlink_callback *cb)
{
	unsigned int nvqs = 0;
	struct vhost_blk *blk;
	unsigned long id;

	rcu_read_lock();
	xa_for_each(&vhost_blk_devs, id, blk)
		/* Pairs with the store-release in vhost_blk_init_queues(). */
		if (smp_load_acquire(&blk->ready))
			nvqs = max(nvqs, blk->nvqs);
	rcu_read_unlock();
	cb->min_dump_alloc = vhost_blk_nl_stats_size(nvqs);
	return 0;
}

/*
 * DEV_GET and STATS_GET, dump: every device, by id, from the one after the
 * last sent (cb->args[0]); a device opened meanwhile may be included, one
 * released is not.
 */
static int vhost_blk_nl_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	u8 cmd = ((struct genlmsghdr *)nlmsg_data(cb->nlh))->cmd;
	unsigned long id = cb->args[0];
	struct vhost_blk *blk;
	int ret = 0;

	rcu_read_lock();
	xa_for_each_start(&vhost_blk_devs, id, blk, id) {
		ret = vhost_blk_nl_fill(skb, blk, cmd, NETLINK_CB(cb->skb).portid,
					cb->nlh->nlmsg_seq, NLM_F_MULTI);
		if (ret)
			break;
		cb->args[0] = id + 1;
	}
	rcu_read_unlock();
	/* A device whose counters do not fit an empty message: say so. */
	if (ret && !skb->len)
		return ret;
	return skb->len;
}

static const struct nla_policy vhost_blk_nl_policy[VHOST_BLK_A_MAX + 1] = {
	[VHOST_BLK_A_DEV_ID] = NLA_POLICY_MIN(NLA_U32, 1),
};

static const struct genl_ops vhost_blk_nl_ops[] = {
	{
		.cmd = VHOST_BLK_CMD_DEV_GET,
		.doit = vhost_blk_nl_doit,
		.dumpit = vhost_blk_nl_dumpit,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = VHOST_BLK_CMD_STATS_GET,
		.start = vhost_blk_nl_stats_start,
		.doit = vhost_blk_nl_doit,
		.dumpit = vhost_blk_nl_dumpit,
		.flags = GENL_ADMIN_PERM,
	},
};

static struct genl_family vhost_blk_family __ro_after_init = {
	.name = VHOST_BLK_NL_FAMILY,
	.version = VHOST_BLK_GENL_VERSION,
	.maxattr = VHOST_BLK_A_MAX,
	.policy = vhost_blk_nl_policy,
	.module = THIS_MODULE,
	.ops = vhost_blk_nl_ops,
	.n_ops = ARRAY_SIZE(vhost_blk_nl_ops),
	/* resv_start_op 0: every command validates strictly. */
};

/**
 * vhost_blk_netlink_init() - register the family, at module load
 *
 * Return: 0 or genl_register_family()'s error.
 */
int vhost_blk_netlink_init(void)
{
	return genl_register_family(&vhost_blk_family);
}

/**
 * vhost_blk_netlink_exit() - unregister it, at module unload; no device is
 * open then
 */
void vhost_blk_netlink_exit(void)
{
	genl_unregister_family(&vhost_blk_family);
}
