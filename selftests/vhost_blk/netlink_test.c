// SPDX-License-Identifier: GPL-2.0
/*
 * The "vhost_blk" generic netlink family (linux/vhost_blk_nl.h), read with
 * libnl-genl-3: what DEV_GET says of a device, what STATS_GET counts after
 * a known workload, and how the family answers bad requests.
 *
 * A device finds its own id in /proc/self/fdinfo. Needs root, the module,
 * null_blk and dm (dm-error).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <linux/vhost_blk_nl.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define KiB		1024UL
#define MiB		(1024UL * 1024)
#define NQUEUES		2
#define MAX_DEVS	64

/* ------------------------------------------------------------------------
 * A small client of the family
 */

struct nl_client {
	struct nl_sock *sock;
	int family;
};

/* What DEV_GET says of one device; absent attributes stay 0 or "". */
struct dev_info {
	uint32_t id, owner_pid, major, minor, num_queues, state;
	char owner_comm[32], backend[32];
	uint8_t read_only;
	uint64_t features;
	uint32_t workers[VHOST_BLK_MAX_QUEUES];	/* DEV_WORKER, by queue */
	unsigned int nworkers;
	uint32_t poll_us[VHOST_BLK_MAX_QUEUES];	/* DEV_POLL_US, by queue */
	unsigned int npoll;
};

/* One nest of counters, by attribute; the histogram apart. */
struct stats {
	uint64_t v[VHOST_BLK_A_STAT_MAX + 1];
	uint64_t hist[VHOST_BLK_LAT_BUCKETS];
	bool has_queue;
};

struct dev_stats {
	uint32_t id;
	struct stats total;
	struct stats queue[VHOST_BLK_MAX_QUEUES];
	unsigned int nqueues;
};

/* Where a reply's parser puts what it read. */
struct reply {
	struct dev_info *devs;
	struct dev_stats *stats;
	unsigned int n, max;
	int error;		/* the kernel's, from its error message */
};

static int client_open(struct nl_client *c)
{
	c->sock = nl_socket_alloc();
	if (!c->sock)
		return -ENOMEM;
	if (genl_connect(c->sock)) {
		nl_socket_free(c->sock);
		return -ECONNREFUSED;
	}
	c->family = genl_ctrl_resolve(c->sock, VHOST_BLK_GENL_NAME);
	if (c->family < 0) {
		nl_socket_free(c->sock);
		return -ENOENT;
	}
	/* One answer per request: its reply, its dump, or its error. */
	nl_socket_disable_auto_ack(c->sock);
	return 0;
}

static void client_close(struct nl_client *c)
{
	if (c->sock)
		nl_socket_free(c->sock);
	c->sock = NULL;
}

static void parse_dev(struct nlattr **tb, struct dev_info *d)
{
	memset(d, 0, sizeof(*d));
	if (tb[VHOST_BLK_A_DEV_ID])
		d->id = nla_get_u32(tb[VHOST_BLK_A_DEV_ID]);
	if (tb[VHOST_BLK_A_DEV_OWNER_PID])
		d->owner_pid = nla_get_u32(tb[VHOST_BLK_A_DEV_OWNER_PID]);
	if (tb[VHOST_BLK_A_DEV_OWNER_COMM])
		snprintf(d->owner_comm, sizeof(d->owner_comm), "%s",
			 nla_get_string(tb[VHOST_BLK_A_DEV_OWNER_COMM]));
	if (tb[VHOST_BLK_A_DEV_BACKEND_MAJOR])
		d->major = nla_get_u32(tb[VHOST_BLK_A_DEV_BACKEND_MAJOR]);
	if (tb[VHOST_BLK_A_DEV_BACKEND_MINOR])
		d->minor = nla_get_u32(tb[VHOST_BLK_A_DEV_BACKEND_MINOR]);
	if (tb[VHOST_BLK_A_DEV_BACKEND_NAME])
		snprintf(d->backend, sizeof(d->backend), "%s",
			 nla_get_string(tb[VHOST_BLK_A_DEV_BACKEND_NAME]));
	if (tb[VHOST_BLK_A_DEV_READ_ONLY])
		d->read_only = nla_get_u8(tb[VHOST_BLK_A_DEV_READ_ONLY]);
	if (tb[VHOST_BLK_A_DEV_FEATURES])
		d->features = nla_get_u64(tb[VHOST_BLK_A_DEV_FEATURES]);
	if (tb[VHOST_BLK_A_DEV_NUM_QUEUES])
		d->num_queues = nla_get_u32(tb[VHOST_BLK_A_DEV_NUM_QUEUES]);
	if (tb[VHOST_BLK_A_DEV_STATE])
		d->state = nla_get_u32(tb[VHOST_BLK_A_DEV_STATE]);
}

static int parse_stats_nest(struct nlattr *nest, struct stats *s)
{
	struct nlattr *tb[VHOST_BLK_A_STAT_MAX + 1];
	int i;

	memset(s, 0, sizeof(*s));
	if (nla_parse_nested(tb, VHOST_BLK_A_STAT_MAX, nest, NULL))
		return -EPROTO;
	for (i = VHOST_BLK_A_STAT_REQ_IN; i <= VHOST_BLK_A_STAT_MAX; i++)
		if (tb[i] && nla_len(tb[i]) == sizeof(uint64_t))
			s->v[i] = nla_get_u64(tb[i]);
	if (tb[VHOST_BLK_A_STAT_QUEUE]) {
		s->has_queue = true;
		s->v[VHOST_BLK_A_STAT_QUEUE] = nla_get_u32(tb[VHOST_BLK_A_STAT_QUEUE]);
	}
	if (!tb[VHOST_BLK_A_STAT_LATENCY_HIST] ||
	    nla_len(tb[VHOST_BLK_A_STAT_LATENCY_HIST]) != sizeof(s->hist))
		return -EPROTO;
	memcpy(s->hist, nla_data(tb[VHOST_BLK_A_STAT_LATENCY_HIST]), sizeof(s->hist));
	return 0;
}

static int on_msg(struct nl_msg *msg, void *arg)
{
	struct genlmsghdr *gh = nlmsg_data(nlmsg_hdr(msg));
	struct nlattr *tb[VHOST_BLK_A_MAX + 1];
	struct reply *r = arg;
	struct dev_stats *ds;
	struct dev_info *d;
	struct nlattr *a;
	int rem;

	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, VHOST_BLK_A_MAX, NULL)) {
		r->error = -EPROTO;
		return NL_STOP;
	}
	if (r->n == r->max) {
		r->error = -EOVERFLOW;
		return NL_STOP;
	}
	if (gh->cmd == VHOST_BLK_CMD_DEV_GET) {
		if (!r->devs) {
			r->error = -EBADMSG;
			return NL_STOP;
		}
		d = &r->devs[r->n++];
		parse_dev(tb, d);
		nla_for_each_attr(a, genlmsg_attrdata(gh, 0), genlmsg_attrlen(gh, 0), rem)
			if (nla_type(a) == VHOST_BLK_A_DEV_WORKER &&
			    d->nworkers < VHOST_BLK_MAX_QUEUES)
				d->workers[d->nworkers++] = nla_get_u32(a);
			else if (nla_type(a) == VHOST_BLK_A_DEV_POLL_US &&
				 d->npoll < VHOST_BLK_MAX_QUEUES)
				d->poll_us[d->npoll++] = nla_get_u32(a);
		return NL_OK;
	}
	if (gh->cmd != VHOST_BLK_CMD_STATS_GET || !r->stats) {
		r->error = -EBADMSG;
		return NL_STOP;
	}
	ds = &r->stats[r->n++];
	memset(ds, 0, sizeof(*ds));
	if (tb[VHOST_BLK_A_DEV_ID])
		ds->id = nla_get_u32(tb[VHOST_BLK_A_DEV_ID]);
	if (!tb[VHOST_BLK_A_STATS_TOTAL] ||
	    parse_stats_nest(tb[VHOST_BLK_A_STATS_TOTAL], &ds->total))
		r->error = -EPROTO;
	nla_for_each_attr(a, genlmsg_attrdata(gh, 0), genlmsg_attrlen(gh, 0), rem) {
		if (nla_type(a) != VHOST_BLK_A_STATS_QUEUE)
			continue;
		if (ds->nqueues == VHOST_BLK_MAX_QUEUES ||
		    parse_stats_nest(a, &ds->queue[ds->nqueues++]))
			r->error = -EPROTO;
	}
	return NL_OK;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *err, void *arg)
{
	struct reply *r = arg;

	(void)nla;
	r->error = err->error;
	return NL_STOP;
}

static int on_ack(struct nl_msg *msg, void *arg)
{
	(void)msg;
	(void)arg;
	return NL_STOP;
}

/* Sends @msg (freed), parses the answer into @r: 0 or the kernel's -errno. */
static int transact(struct nl_client *c, struct nl_msg *msg, struct reply *r)
{
	struct nl_cb *cb = nl_cb_alloc(NL_CB_CUSTOM);
	int ret;

	if (!cb) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	r->error = 0;
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_msg, r);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, r);
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, r);
	ret = nl_send_auto(c->sock, msg);
	nlmsg_free(msg);
	if (ret >= 0)
		ret = nl_recvmsgs(c->sock, cb);
	nl_cb_put(cb);
	if (r->error)
		return r->error;
	return ret < 0 ? -EIO : 0;
}

/*
 * A request of @cmd; a dump unless @id, which it then carries. No ACK is
 * asked for: the answer is the reply or an error.
 */
static struct nl_msg *request(struct nl_client *c, uint8_t cmd, uint32_t id)
{
	struct nl_msg *msg = nlmsg_alloc();

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, c->family, 0,
			 id ? 0 : NLM_F_DUMP, cmd, VHOST_BLK_GENL_VERSION) ||
	    (id && nla_put_u32(msg, VHOST_BLK_A_DEV_ID, id))) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

static int dev_get(struct nl_client *c, uint32_t id, struct dev_info *d)
{
	struct reply r = { .devs = d, .max = 1 };
	struct nl_msg *msg = request(c, VHOST_BLK_CMD_DEV_GET, id);
	int ret;

	if (!msg)
		return -ENOMEM;
	ret = transact(c, msg, &r);
	return ret ? ret : r.n == 1 ? 0 : -EPROTO;
}

/* Every device; their number, or -errno. */
static int dev_dump(struct nl_client *c, struct dev_info *d, unsigned int max)
{
	struct reply r = { .devs = d, .max = max };
	struct nl_msg *msg = request(c, VHOST_BLK_CMD_DEV_GET, 0);
	int ret;

	if (!msg)
		return -ENOMEM;
	ret = transact(c, msg, &r);
	return ret ? ret : (int)r.n;
}

static int stats_get(struct nl_client *c, uint32_t id, struct dev_stats *s)
{
	struct reply r = { .stats = s, .max = 1 };
	struct nl_msg *msg = request(c, VHOST_BLK_CMD_STATS_GET, id);
	int ret;

	if (!msg)
		return -ENOMEM;
	ret = transact(c, msg, &r);
	return ret ? ret : r.n == 1 ? 0 : -EPROTO;
}

/* The major and minor numbers of disk @name, from sysfs. */
static int disk_dev(const char *name, unsigned int *major, unsigned int *minor)
{
	char path[96], line[32];
	int ret;

	snprintf(path, sizeof(path), "/sys/block/%s/dev", name);
	ret = vblk_read_line(path, line, sizeof(line));
	if (ret)
		return ret;
	return sscanf(line, "%u:%u", major, minor) == 2 ? 0 : -EPROTO;
}

static const struct dev_info *find_dev(const struct dev_info *d, int n, uint32_t id)
{
	int i;

	for (i = 0; i < n; i++)
		if (d[i].id == id)
			return &d[i];
	return NULL;
}

/* ------------------------------------------------------------------------
 * One device on a null_blk disk, and the family's client
 */

FIXTURE(family) {
	struct nl_client nl;
	struct vblk_backend be;
	struct vblk_dev dev;
	uint32_t id;
};

FIXTURE_SETUP(family)
{
	struct vblk_backend_opts bo = { .size = 16 * MiB };
	struct vblk_opts o = { .nqueues = NQUEUES, .exact_queues = true };
	int ret;

	ret = client_open(&self->nl);
	ASSERT_EQ(0, ret) TH_LOG("the vhost_blk family: %s", strerror(-ret));
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("null_blk: %s", strerror(-ret));
	ret = vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR);
	ASSERT_EQ(0, ret) TH_LOG("device: %s", strerror(-ret));
	self->id = vblk_dev_id(self->dev.fd);
	ASSERT_NE(0U, self->id);
}

FIXTURE_TEARDOWN(family)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
	client_close(&self->nl);
}

TEST_F(family, dev_get_names_the_owner_the_backend_and_the_state)
{
	struct dev_info d;
	char comm[32] = "";
	unsigned int major, minor;

	ASSERT_EQ(0, dev_get(&self->nl, self->id, &d));
	EXPECT_EQ(self->id, d.id);
	EXPECT_EQ((uint32_t)getpid(), d.owner_pid);
	ASSERT_EQ(0, vblk_read_line("/proc/self/comm", comm, sizeof(comm)));
	EXPECT_STREQ(comm, d.owner_comm);
	EXPECT_STREQ(self->be.name, d.backend);
	ASSERT_EQ(0, disk_dev(self->be.name, &major, &minor));
	EXPECT_EQ(major, d.major);
	EXPECT_EQ(minor, d.minor);
	EXPECT_EQ(0, d.read_only);
	EXPECT_EQ(self->dev.features, d.features);
	EXPECT_EQ((uint32_t)NQUEUES, d.num_queues);
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_RUNNING, d.state);

	/* Detached, then no owner: the state follows, the backend goes. */
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	ASSERT_EQ(0, dev_get(&self->nl, self->id, &d));
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_NO_BACKEND, d.state);
	EXPECT_STREQ("", d.backend);
	EXPECT_EQ(0U, d.major);
	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_RESET_OWNER));
	ASSERT_EQ(0, dev_get(&self->nl, self->id, &d));
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_NO_OWNER, d.state);
	EXPECT_EQ(0U, d.owner_pid);
}

TEST_F(family, a_closed_device_is_gone_from_do_and_dump)
{
	struct dev_info d[MAX_DEVS];
	int n;

	n = dev_dump(&self->nl, d, MAX_DEVS);
	ASSERT_LE(1, n);
	EXPECT_NE(NULL, find_dev(d, n, self->id));
	vblk_dev_close(&self->dev);
	EXPECT_EQ(-ENODEV, dev_get(&self->nl, self->id, d));
	n = dev_dump(&self->nl, d, MAX_DEVS);
	ASSERT_LE(0, n);
	EXPECT_EQ(NULL, find_dev(d, n, self->id));
}

/* The counters of queue @q (or the total, q < 0) of the device. */
static void read_stats(struct __test_metadata *_metadata, struct nl_client *nl,
		       uint32_t id, int q, struct stats *s)
{
	static struct dev_stats ds;

	ASSERT_EQ(0, stats_get(nl, id, &ds));
	ASSERT_EQ(id, ds.id);
	ASSERT_EQ((unsigned int)NQUEUES, ds.nqueues);
	*s = q < 0 ? ds.total : ds.queue[q];
	if (q >= 0)
		ASSERT_EQ((uint64_t)q, s->v[VHOST_BLK_A_STAT_QUEUE]);
}

static uint64_t hist_total(const struct stats *s)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < VHOST_BLK_LAT_BUCKETS; i++)
		n += s->hist[i];
	return n;
}

/* What the call eventfd of @q got, read and unread; reads it empty. */
static uint64_t calls(struct vblk_queue *q)
{
	uint64_t v;

	if (read(q->call_fd, &v, sizeof(v)) == sizeof(v))
		q->calls += v;
	return q->calls;
}

/*
 * On queue 1 of @dev: 5 writes of 64 KiB, 3 reads of 64 KiB (one bounced,
 * 4 KiB), a flush, a GET_ID, a read past the end (IOERR) and an unknown
 * type (UNSUPP).
 */
static void known_workload(struct __test_metadata *_metadata, struct vblk_dev *dev)
{
	struct vblk_queue *q = &dev->queues[1];
	struct vblk_buf buf, page, odd;
	struct vblk_req req;
	unsigned int i;

	ASSERT_EQ(0, vblk_mem_alloc(&dev->mem, 64 * KiB, VBLK_PAGE_SIZE, &buf));
	ASSERT_EQ(0, vblk_mem_alloc(&dev->mem, 2 * VBLK_PAGE_SIZE,
				    VBLK_PAGE_SIZE, &page));
	odd = vblk_buf_slice(&page, 1, 4096);
	vblk_pattern_fill(buf.hva, buf.len, 7);
	/* 5 writes of 64 KiB, 3 reads of 64 KiB, one of them bounced 4 KiB. */
	for (i = 0; i < 5; i++)
		ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(q, i * 128, &buf));
	for (i = 0; i < 2; i++)
		ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(q, i * 128, &buf));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(q, 0, &odd));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_flush(q));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_get_id(q, &page));
	/* Past the end: IOERR; an unknown type: UNSUPP. */
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_read(q, 16 * MiB / 512, &buf));
	vblk_req_init(&req, 0x7f, 0, NULL, 0);
	EXPECT_EQ(VIRTIO_BLK_S_UNSUPP, vblk_exec(q, &req));
}

TEST_F(family, dev_get_names_the_worker_of_each_queue)
{
	pid_t tids[2 * VHOST_BLK_MAX_QUEUES];
	struct vblk_buf buf;
	struct dev_info d;
	unsigned int q, n, i;
	bool found;

	/* Each queue has served a request: its worker ran its kick handler. */
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 4 * KiB, VBLK_PAGE_SIZE, &buf));
	for (q = 0; q < NQUEUES; q++)
		ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&self->dev.queues[q], 0, &buf));
	ASSERT_EQ(0, dev_get(&self->nl, self->id, &d));
	ASSERT_EQ((unsigned int)NQUEUES, d.nworkers);
	/* Each is one of the threads named vhost-<our pid>. */
	n = vblk_vhost_workers(getpid(), tids, ARRAY_SIZE(tids));
	ASSERT_LE(1U, n);
	for (q = 0; q < NQUEUES; q++) {
		for (i = 0, found = false; i < n; i++)
			found |= (uint32_t)tids[i] == d.workers[q];
		EXPECT_TRUE(found) TH_LOG("queue %u: worker %u", q, d.workers[q]);
	}
}

TEST_F(family, dev_get_reports_each_queues_busy_poll_time)
{
	struct vhost_vring_state st;
	struct dev_info d;
	unsigned int q;

	ASSERT_EQ(0, dev_get(&self->nl, self->id, &d));
	ASSERT_EQ((unsigned int)NQUEUES, d.npoll);
	for (q = 0; q < NQUEUES; q++)
		EXPECT_EQ(0U, d.poll_us[q]) TH_LOG("queue %u", q);
	for (q = 0; q < NQUEUES; q++) {
		st = (struct vhost_vring_state){ .index = q, .num = 10 * (q + 1) };
		ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &st));
	}
	ASSERT_EQ(0, dev_get(&self->nl, self->id, &d));
	ASSERT_EQ((unsigned int)NQUEUES, d.npoll);
	for (q = 0; q < NQUEUES; q++)
		EXPECT_EQ(10 * (q + 1), d.poll_us[q]) TH_LOG("queue %u", q);
}

TEST_F(family, stats_count_a_known_workload_exactly)
{
	struct vblk_queue *q = &self->dev.queues[1];
	struct stats s, other;

	known_workload(_metadata, &self->dev);
	read_stats(_metadata, &self->nl, self->id, 1, &s);
	EXPECT_EQ(4U, s.v[VHOST_BLK_A_STAT_REQ_IN]);
	EXPECT_EQ(5U, s.v[VHOST_BLK_A_STAT_REQ_OUT]);
	EXPECT_EQ(1U, s.v[VHOST_BLK_A_STAT_REQ_FLUSH]);
	EXPECT_EQ(1U, s.v[VHOST_BLK_A_STAT_REQ_GET_ID]);
	EXPECT_EQ(1U, s.v[VHOST_BLK_A_STAT_REQ_OTHER]);
	EXPECT_EQ(0U, s.v[VHOST_BLK_A_STAT_REQ_DISCARD]);
	EXPECT_EQ(2U * 128 + 8, s.v[VHOST_BLK_A_STAT_SECTORS_READ]);
	EXPECT_EQ(5U * 128, s.v[VHOST_BLK_A_STAT_SECTORS_WRITTEN]);
	EXPECT_EQ(1U, s.v[VHOST_BLK_A_STAT_ERR_IOERR]);
	EXPECT_EQ(1U, s.v[VHOST_BLK_A_STAT_ERR_UNSUPP]);
	EXPECT_EQ(1U, s.v[VHOST_BLK_A_STAT_BOUNCED_REQS]);
	EXPECT_EQ(4096U, s.v[VHOST_BLK_A_STAT_BOUNCED_BYTES]);
	EXPECT_EQ(0U, s.v[VHOST_BLK_A_STAT_INFLIGHT]);
	EXPECT_EQ(0U, s.v[VHOST_BLK_A_STAT_DRIVER_ERRORS]);
	/* One at a time: a kick pass and a used-ring update each. */
	EXPECT_EQ(12U, hist_total(&s));
	EXPECT_LE(12U, s.v[VHOST_BLK_A_STAT_KICKS]);
	EXPECT_EQ(12U, s.v[VHOST_BLK_A_STAT_USED_BATCHES]);
	/* Every signal of the call eventfd, with the one at the start. */
	EXPECT_EQ(calls(q), s.v[VHOST_BLK_A_STAT_INTERRUPTS]);

	/* The other queue did nothing but its start; the total is the sum. */
	read_stats(_metadata, &self->nl, self->id, 0, &other);
	EXPECT_EQ(0U, hist_total(&other));
	EXPECT_EQ(calls(&self->dev.queues[0]), other.v[VHOST_BLK_A_STAT_INTERRUPTS]);
	read_stats(_metadata, &self->nl, self->id, -1, &other);
	EXPECT_EQ(0, memcmp(other.hist, s.hist, sizeof(s.hist)));
	EXPECT_EQ(s.v[VHOST_BLK_A_STAT_INTERRUPTS] + calls(&self->dev.queues[0]),
		  other.v[VHOST_BLK_A_STAT_INTERRUPTS]);
	EXPECT_FALSE(other.has_queue);
}

/* ------------------------------------------------------------------------
 * vhostblk-setup stats --json, against what the family says
 */

/* The helper's JSON, flattened by python3 into "KEY VALUE" lines. */
#define FLATTEN								\
	"import json, sys\n"						\
	"devs = json.load(sys.stdin)\n"					\
	"assert len(devs) == 1\n"					\
	"def out(prefix, o):\n"						\
	"    for k, v in o.items():\n"					\
	"        if isinstance(v, list):\n"				\
	"            for i, x in enumerate(v):\n"			\
	"                print(\"%s.%s.%d %s\" % (prefix, k, i, x))\n"	\
	"        else:\n"						\
	"            print(\"%s.%s %s\" % (prefix, k, \"null\" if v is None else v))\n" \
	"print(\"id\", devs[0][\"id\"])\n"				\
	"out(\"total\", devs[0][\"total\"])\n"				\
	"for q in devs[0][\"queues\"]:\n"				\
	"    out(\"q%d\" % q[\"queue\"], q)\n"

#define MAX_KEYS	512

struct flat {
	char key[MAX_KEYS][48];
	char val[MAX_KEYS][32];
	unsigned int n;
};

/* `$VHOSTBLK_SETUP stats --json ID`, flattened into @f: pclose's status. */
static int helper_stats(uint32_t id, struct flat *f)
{
	char cmd[2048], line[128];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "\"$VHOSTBLK_SETUP\" stats --json %u | python3 -c '%s'",
		 id, FLATTEN);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	f->n = 0;
	while (fgets(line, sizeof(line), p) && f->n < MAX_KEYS)
		if (sscanf(line, "%47s %31s", f->key[f->n], f->val[f->n]) == 2)
			f->n++;
	return pclose(p);
}

static const char *flat_get(const struct flat *f, const char *key)
{
	unsigned int i;

	for (i = 0; i < f->n; i++)
		if (!strcmp(f->key[i], key))
			return f->val[i];
	return NULL;
}

/* The value of @prefix.@name as an integer; -1 when missing or not one. */
static long long flat_num(const struct flat *f, const char *prefix, const char *name)
{
	char key[64], *end;
	const char *v;
	long long n;

	snprintf(key, sizeof(key), "%s.%s", prefix, name);
	v = flat_get(f, key);
	if (!v)
		return -1;
	n = strtoll(v, &end, 10);
	return *end ? -1 : n;
}

/* The JSON names of the counters, by attribute, as the man page lists them. */
static const struct {
	int attr;
	const char *name;
} helper_keys[] = {
	{ VHOST_BLK_A_STAT_REQ_IN, "req_in" },
	{ VHOST_BLK_A_STAT_REQ_OUT, "req_out" },
	{ VHOST_BLK_A_STAT_REQ_FLUSH, "req_flush" },
	{ VHOST_BLK_A_STAT_REQ_GET_ID, "req_get_id" },
	{ VHOST_BLK_A_STAT_REQ_DISCARD, "req_discard" },
	{ VHOST_BLK_A_STAT_REQ_WRITE_ZEROES, "req_write_zeroes" },
	{ VHOST_BLK_A_STAT_REQ_SECURE_ERASE, "req_secure_erase" },
	{ VHOST_BLK_A_STAT_REQ_OTHER, "req_other" },
	{ VHOST_BLK_A_STAT_SECTORS_READ, "sectors_read" },
	{ VHOST_BLK_A_STAT_SECTORS_WRITTEN, "sectors_written" },
	{ VHOST_BLK_A_STAT_ERR_IOERR, "err_ioerr" },
	{ VHOST_BLK_A_STAT_ERR_UNSUPP, "err_unsupp" },
	{ VHOST_BLK_A_STAT_INFLIGHT, "inflight" },
	{ VHOST_BLK_A_STAT_BOUNCED_REQS, "bounced_reqs" },
	{ VHOST_BLK_A_STAT_BOUNCED_BYTES, "bounced_bytes" },
	{ VHOST_BLK_A_STAT_KICKS, "kicks" },
	{ VHOST_BLK_A_STAT_INTERRUPTS, "interrupts" },
	{ VHOST_BLK_A_STAT_USED_BATCHES, "used_batches" },
	{ VHOST_BLK_A_STAT_DRIVER_ERRORS, "driver_errors" },
	{ VHOST_BLK_A_STAT_POLLED, "polled" },
};

/* Every counter and bucket of @s under @prefix in @f, exactly. */
static void expect_same(struct __test_metadata *_metadata, const struct flat *f,
			const char *prefix, const struct stats *s)
{
	char name[32];
	unsigned int i;

	/* Braces: EXPECT_EQ() and its TH_LOG() are two statements. */
	for (i = 0; i < sizeof(helper_keys) / sizeof(helper_keys[0]); i++) {
		EXPECT_EQ((long long)s->v[helper_keys[i].attr],
			  flat_num(f, prefix, helper_keys[i].name))
			TH_LOG("%s.%s", prefix, helper_keys[i].name);
	}
	for (i = 0; i < VHOST_BLK_LAT_BUCKETS; i++) {
		snprintf(name, sizeof(name), "latency_hist.%u", i);
		EXPECT_EQ((long long)s->hist[i], flat_num(f, prefix, name))
			TH_LOG("%s.%s", prefix, name);
	}
}

TEST_F(family, the_helper_reports_the_same_counters)
{
	static struct flat f;
	struct stats total, q0, q1;
	const char *v;
	uint64_t bound;
	int i;

	if (!getenv("VHOSTBLK_SETUP"))
		SKIP(return, "VHOSTBLK_SETUP: the helper's path is not set");
	known_workload(_metadata, &self->dev);
	ASSERT_EQ(0, helper_stats(self->id, &f));
	read_stats(_metadata, &self->nl, self->id, -1, &total);
	read_stats(_metadata, &self->nl, self->id, 0, &q0);
	read_stats(_metadata, &self->nl, self->id, 1, &q1);
	v = flat_get(&f, "id");
	ASSERT_NE(NULL, v);
	EXPECT_EQ((long long)self->id, atoll(v));
	expect_same(_metadata, &f, "total", &total);
	expect_same(_metadata, &f, "q0", &q0);
	expect_same(_metadata, &f, "q1", &q1);
	EXPECT_EQ(0, flat_num(&f, "q0", "queue"));
	EXPECT_EQ(1, flat_num(&f, "q1", "queue"));
	EXPECT_EQ(NULL, flat_get(&f, "q2.queue"));

	/* The known numbers, and what the helper derives from them. */
	EXPECT_EQ(4, flat_num(&f, "total", "req_in"));
	EXPECT_EQ(5, flat_num(&f, "total", "req_out"));
	EXPECT_EQ(2 * 128 + 8, flat_num(&f, "total", "sectors_read"));
	EXPECT_EQ(5 * 128, flat_num(&f, "total", "sectors_written"));
	EXPECT_EQ(1, flat_num(&f, "total", "err_ioerr"));
	EXPECT_EQ(1, flat_num(&f, "total", "err_unsupp"));
	EXPECT_EQ(12, flat_num(&f, "total", "requests"));
	EXPECT_EQ(12, flat_num(&f, "q1", "requests"));
	EXPECT_EQ(0, flat_num(&f, "q0", "requests"));
	/* 264 and 640 sectors: 0.129 and 0.312 MiB (three decimals). */
	EXPECT_STREQ("0.129", flat_get(&f, "total.read_mib"));
	EXPECT_STREQ("0.312", flat_get(&f, "total.written_mib"));
	EXPECT_STREQ("null", flat_get(&f, "q0.lat_p99_us"));
	EXPECT_STREQ("null", flat_get(&f, "q0.lat_mean_us"));
	/* p99 of 12 requests: the upper bound of the slowest one's bucket. */
	for (i = VHOST_BLK_LAT_BUCKETS - 1; i > 0 && !total.hist[i]; i--)
		;
	bound = 1ULL << (i + 1);
	EXPECT_EQ((long long)bound, flat_num(&f, "total", "lat_p99_us"));
	v = flat_get(&f, "total.lat_mean_us");
	ASSERT_NE(NULL, v);
	EXPECT_LT(0.0, atof(v));
	EXPECT_GE((double)bound, atof(v));
}

TEST_F(family, a_malformed_chain_is_a_driver_error_and_the_state_says_so)
{
	struct vblk_queue *q = &self->dev.queues[0];
	struct vring_used_elem used;
	struct dev_info d;
	struct stats s;
	uint16_t head;
	int fd;

	/* A chain without a device-writable status byte. */
	ASSERT_EQ(0, vblk_queue_take_descs(q, 1, &head));
	vblk_queue_set_desc(q, head, self->dev.queues[0].meta.gpa, 16, 0, 0);
	vblk_queue_publish(q, head);
	ASSERT_EQ(0, vblk_queue_notify(q));
	ASSERT_EQ(0, vblk_queue_wait_used(q, &used, VBLK_TIMEOUT_MS));
	read_stats(_metadata, &self->nl, self->id, 0, &s);
	EXPECT_EQ(1U, s.v[VHOST_BLK_A_STAT_DRIVER_ERRORS]);
	ASSERT_EQ(0, dev_get(&self->nl, self->id, &d));
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_QUEUE_ERROR, d.state);

	/* Restarted, the queues start clean; the counter stays. */
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	fd = vblk_backend_open(&self->be, O_RDWR);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, vblk_dev_set_backend(&self->dev, fd));
	close(fd);
	ASSERT_EQ(0, dev_get(&self->nl, self->id, &d));
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_RUNNING, d.state);
	read_stats(_metadata, &self->nl, self->id, 0, &s);
	EXPECT_EQ(1U, s.v[VHOST_BLK_A_STAT_DRIVER_ERRORS]);
}

/* ------------------------------------------------------------------------
 * A stop that waits: a disk that completes nothing until it is resumed (a
 * dm device, flakey but up all the time, suspended with its I/O queued)
 */

FIXTURE(stopping) {
	struct nl_client nl;
	struct vblk_backend be;
	struct vblk_dev dev;
	bool suspended;
};

FIXTURE_SETUP(stopping)
{
	struct vblk_backend_opts bo = { .size = 16 * MiB, .flakey_up = 86400 };
	int ret;

	ASSERT_EQ(0, client_open(&self->nl));
	ret = vblk_backend_create(&self->be, VBLK_BE_DM_FLAKEY, &bo);
	ASSERT_EQ(0, ret) TH_LOG("dm-flakey: %s", strerror(-ret));
	ASSERT_EQ(0, vblk_dev_start(&self->dev, NULL, self->be.path, O_RDWR));
	ASSERT_EQ(0, vblk_run("dmsetup suspend --noflush %s", self->be.dm_name));
	self->suspended = true;
}

FIXTURE_TEARDOWN(stopping)
{
	if (self->suspended)
		vblk_run("dmsetup resume %s", self->be.dm_name);
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
	client_close(&self->nl);
}

static void *detach(void *arg)
{
	return (void *)(long)vblk_dev_set_backend(arg, -1);
}

TEST_F(stopping, a_device_waiting_for_its_disk_to_stop_is_stopped)
{
	struct vblk_queue *q = &self->dev.queues[0];
	int64_t deadline = vblk_now_ms() + VBLK_TIMEOUT_MS;
	uint32_t id = vblk_dev_id(self->dev.fd);
	static struct dev_stats s;
	struct vblk_buf buf;
	struct vblk_req req;
	struct dev_info d;
	pthread_t t;
	void *ret;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 4 * KiB, VBLK_PAGE_SIZE, &buf));
	vblk_req_init(&req, VIRTIO_BLK_T_OUT, 0, &buf, 1);
	ASSERT_EQ(0, vblk_submit(q, &req));
	/* Taken, and held by the suspended disk. */
	do {
		ASSERT_EQ(0, stats_get(&self->nl, id, &s));
	} while (s.total.v[VHOST_BLK_A_STAT_INFLIGHT] != 1 && vblk_now_ms() < deadline);
	ASSERT_EQ(1U, s.total.v[VHOST_BLK_A_STAT_INFLIGHT]);
	ASSERT_EQ(0, dev_get(&self->nl, id, &d));
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_RUNNING, d.state);

	/* The detach waits for the write: stopped, the disk still attached. */
	ASSERT_EQ(0, pthread_create(&t, NULL, detach, &self->dev));
	do {
		ASSERT_EQ(0, dev_get(&self->nl, id, &d));
	} while (d.state != VHOST_BLK_STATE_STOPPED && vblk_now_ms() < deadline);
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_STOPPED, d.state);
	EXPECT_STREQ(self->be.name, d.backend);

	ASSERT_EQ(0, vblk_run("dmsetup resume %s", self->be.dm_name));
	self->suspended = false;
	ASSERT_EQ(0, pthread_join(t, &ret));
	EXPECT_EQ(0L, (long)ret);
	ASSERT_EQ(0, vblk_wait(q, &req, VBLK_TIMEOUT_MS));
	EXPECT_EQ(VIRTIO_BLK_S_OK, req.status);
	ASSERT_EQ(0, dev_get(&self->nl, id, &d));
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_NO_BACKEND, d.state);
}

/* ------------------------------------------------------------------------
 * Errors: a disk that fails every I/O
 */

FIXTURE(failing_disk) {
	struct nl_client nl;
	struct vblk_backend be;
	struct vblk_dev dev;
};

FIXTURE_SETUP(failing_disk)
{
	int ret;

	ASSERT_EQ(0, client_open(&self->nl));
	ret = vblk_backend_create(&self->be, VBLK_BE_DM_ERROR, NULL);
	ASSERT_EQ(0, ret) TH_LOG("dm-error: %s", strerror(-ret));
	ASSERT_EQ(0, vblk_dev_start(&self->dev, NULL, self->be.path, O_RDWR));
}

FIXTURE_TEARDOWN(failing_disk)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
	client_close(&self->nl);
}

TEST_F(failing_disk, every_failed_request_is_counted_as_ioerr)
{
	struct vblk_queue *q = &self->dev.queues[0];
	static struct dev_stats ds;
	struct vblk_buf buf;
	unsigned int i;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 4 * KiB, VBLK_PAGE_SIZE, &buf));
	for (i = 0; i < 3; i++)
		EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_read(q, i * 8, &buf));
	for (i = 0; i < 2; i++)
		EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_write(q, i * 8, &buf));
	ASSERT_EQ(0, stats_get(&self->nl, vblk_dev_id(self->dev.fd), &ds));
	EXPECT_EQ(3U, ds.total.v[VHOST_BLK_A_STAT_REQ_IN]);
	EXPECT_EQ(2U, ds.total.v[VHOST_BLK_A_STAT_REQ_OUT]);
	EXPECT_EQ(5U, ds.total.v[VHOST_BLK_A_STAT_ERR_IOERR]);
	/* Failed requests move no data. */
	EXPECT_EQ(0U, ds.total.v[VHOST_BLK_A_STAT_SECTORS_READ]);
	EXPECT_EQ(0U, ds.total.v[VHOST_BLK_A_STAT_SECTORS_WRITTEN]);
	EXPECT_EQ(5U, hist_total(&ds.total));
}

/* ------------------------------------------------------------------------
 * Bad requests, and callers who may not ask
 */

FIXTURE(requests) {
	struct nl_client nl;
	struct vblk_dev dev;
	uint32_t id;
};

FIXTURE_SETUP(requests)
{
	ASSERT_EQ(0, client_open(&self->nl));
	ASSERT_EQ(0, vblk_dev_open(&self->dev));
	self->id = vblk_dev_id(self->dev.fd);
	ASSERT_NE(0U, self->id);
}

FIXTURE_TEARDOWN(requests)
{
	vblk_dev_close(&self->dev);
	client_close(&self->nl);
}

/* Sends @cmd with @len bytes of @data as attribute @type (none if < 0). */
static int send_raw(struct nl_client *c, uint8_t cmd, int flags, int type,
		    const void *data, int len)
{
	static struct dev_stats s[4];
	struct dev_info d[4];
	struct reply r = { .devs = d, .stats = s, .max = 4 };
	struct nl_msg *msg = nlmsg_alloc();

	if (!msg)
		return -ENOMEM;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, c->family, 0, flags,
			 cmd, VHOST_BLK_GENL_VERSION) ||
	    (type >= 0 && nla_put(msg, type, len, data))) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	return transact(c, msg, &r);
}

TEST_F(requests, a_device_without_owner_is_listed_as_such)
{
	struct dev_info d;

	ASSERT_EQ(0, dev_get(&self->nl, self->id, &d));
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_NO_OWNER, d.state);
	EXPECT_EQ(0U, d.owner_pid);
	EXPECT_EQ((uint32_t)VHOST_BLK_DEFAULT_QUEUES, d.num_queues);
	/* No queues yet, so no workers. */
	EXPECT_EQ(0U, d.nworkers);
}

TEST_F(requests, malformed_and_unknown_requests_get_errors)
{
	uint32_t id = self->id, zero = 0, none = 0x7fffffff;
	uint64_t wide = id;
	uint8_t narrow = 1;

	/* The good one first, then each way of getting it wrong. */
	EXPECT_EQ(0, send_raw(&self->nl, VHOST_BLK_CMD_DEV_GET, 0,
			      VHOST_BLK_A_DEV_ID, &id, sizeof(id)));
	EXPECT_EQ(-EINVAL, send_raw(&self->nl, VHOST_BLK_CMD_DEV_GET, 0,
				    -1, NULL, 0));
	EXPECT_EQ(-EINVAL, send_raw(&self->nl, VHOST_BLK_CMD_STATS_GET, 0,
				    -1, NULL, 0));
	EXPECT_EQ(-ERANGE, send_raw(&self->nl, VHOST_BLK_CMD_DEV_GET, 0,
				    VHOST_BLK_A_DEV_ID, &zero, sizeof(zero)));
	EXPECT_EQ(-EINVAL, send_raw(&self->nl, VHOST_BLK_CMD_DEV_GET, 0,
				    VHOST_BLK_A_DEV_ID, &narrow, sizeof(narrow)));
	EXPECT_EQ(-EINVAL, send_raw(&self->nl, VHOST_BLK_CMD_DEV_GET, 0,
				    VHOST_BLK_A_DEV_ID, &wide, sizeof(wide)));
	EXPECT_EQ(-EINVAL, send_raw(&self->nl, VHOST_BLK_CMD_DEV_GET, 0,
				    VHOST_BLK_A_DEV_STATE, &id, sizeof(id)));
	EXPECT_EQ(-EINVAL, send_raw(&self->nl, VHOST_BLK_CMD_DEV_GET, 0,
				    VHOST_BLK_A_MAX + 1, &id, sizeof(id)));
	EXPECT_EQ(-ENODEV, send_raw(&self->nl, VHOST_BLK_CMD_DEV_GET, 0,
				    VHOST_BLK_A_DEV_ID, &none, sizeof(none)));
	EXPECT_EQ(-EOPNOTSUPP, send_raw(&self->nl, VHOST_BLK_CMD_MAX + 1, 0,
					-1, NULL, 0));
	EXPECT_EQ(-EOPNOTSUPP, send_raw(&self->nl, VHOST_BLK_CMD_UNSPEC, 0,
					-1, NULL, 0));
	/* And the family still answers. */
	EXPECT_EQ(0, send_raw(&self->nl, VHOST_BLK_CMD_STATS_GET, 0,
			      VHOST_BLK_A_DEV_ID, &id, sizeof(id)));
}

TEST_F(requests, a_caller_without_cap_net_admin_gets_eperm)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct nl_client c;
		struct dev_info d;

		/* nobody: no capability left. */
		if (setgid(65534) || setuid(65534))
			_exit(10);
		if (client_open(&c))
			_exit(11);
		if (dev_get(&c, self->id, &d) != -EPERM)
			_exit(12);
		if (dev_dump(&c, &d, 1) != -EPERM)
			_exit(13);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("failed at step %d", WEXITSTATUS(status));
}

TEST_F(requests, devices_of_two_processes_are_listed_with_their_owners)
{
	struct dev_info d[MAX_DEVS];
	const struct dev_info *mine, *theirs;
	uint32_t my_id, child_id = 0;
	struct vblk_dev dev;
	int sv[2], status, n;
	pid_t pid;

	ASSERT_EQ(0, vblk_dev_setup(&dev, NULL));
	my_id = vblk_dev_id(dev.fd);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct vblk_dev child_dev;
		uint32_t cid;
		char c;

		close(sv[0]);
		if (vblk_dev_setup(&child_dev, NULL))
			_exit(1);
		cid = vblk_dev_id(child_dev.fd);
		if (write(sv[1], &cid, sizeof(cid)) != sizeof(cid))
			_exit(2);
		/* Until the parent is done looking. */
		if (read(sv[1], &c, 1) < 0)
			_exit(3);
		_exit(0);
	}
	close(sv[1]);
	ASSERT_EQ((ssize_t)sizeof(child_id), read(sv[0], &child_id, sizeof(child_id)));
	n = dev_dump(&self->nl, d, MAX_DEVS);
	ASSERT_LE(3, n);
	mine = find_dev(d, n, my_id);
	theirs = find_dev(d, n, child_id);
	ASSERT_NE(NULL, mine);
	ASSERT_NE(NULL, theirs);
	EXPECT_EQ((uint32_t)getpid(), mine->owner_pid);
	EXPECT_EQ((uint32_t)pid, theirs->owner_pid);
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_NO_BACKEND, theirs->state);
	EXPECT_EQ((uint32_t)VHOST_BLK_STATE_NO_OWNER,
		  find_dev(d, n, self->id)->state);

	/* The child exits: its device goes, ours stays. */
	close(sv[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	EXPECT_EQ(-ENODEV, dev_get(&self->nl, child_id, d));
	EXPECT_EQ(0, dev_get(&self->nl, my_id, d));
	vblk_dev_close(&dev);
}

struct churn {
	volatile bool stop;
	volatile unsigned long cycles;
	int error;
};

/* Opens and closes devices, every other one owned, until told to stop. */
static void *churn(void *arg)
{
	struct churn *c = arg;
	struct vblk_dev dev;

	while (!c->stop) {
		c->error = c->cycles % 2 ? vblk_dev_setup(&dev, NULL) :
					   vblk_dev_open(&dev);
		if (c->error)
			break;
		vblk_dev_close(&dev);
		c->cycles++;
	}
	return NULL;
}

#define CHURN_CYCLES	200

TEST_F(requests, dumps_while_devices_come_and_go_stay_consistent)
{
	static struct dev_info d[MAX_DEVS];
	static struct dev_stats s[MAX_DEVS];
	int64_t deadline = vblk_now_ms() + 4 * VBLK_TIMEOUT_MS;
	struct churn c = { 0 };
	unsigned int dumps = 0;
	struct reply r;
	pthread_t t;
	int j, n;

	ASSERT_EQ(0, pthread_create(&t, NULL, churn, &c));
	while (c.cycles < CHURN_CYCLES && !c.error && vblk_now_ms() < deadline) {
		n = dev_dump(&self->nl, d, MAX_DEVS);
		ASSERT_LE(1, n);
		/* Ours is always there, every id once, in order. */
		EXPECT_NE(NULL, find_dev(d, n, self->id));
		for (j = 1; j < n; j++)
			ASSERT_LT(d[j - 1].id, d[j].id);
		r = (struct reply){ .stats = s, .max = MAX_DEVS };
		ASSERT_EQ(0, transact(&self->nl,
				      request(&self->nl, VHOST_BLK_CMD_STATS_GET, 0), &r));
		ASSERT_LE(1U, r.n);
		dumps++;
	}
	c.stop = true;
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(0, c.error) TH_LOG("opening a device: %s", strerror(-c.error));
	EXPECT_LE((unsigned long)CHURN_CYCLES, c.cycles);
	TH_LOG("%u dumps of each kind over %lu opens and closes", dumps, c.cycles);
}

TEST_HARNESS_MAIN
