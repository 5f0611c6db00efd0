// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk: the /dev/vhost-blk character device.
 *
 * Each open file is one virtio-blk device built on the vhost core: the core
 * owns the rings, the memory table, the dirty log and the worker threads; this
 * file owns the device's lifetime and its ioctls.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/memcontrol.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "vhost_blk.h"

/*
 * Fairness limit per pass of a queue's worker: requests, as the other vhost
 * devices count. No byte limit (vhost-scsi has none either): the worker
 * pins a request's pages, it does not copy them, and vhost-net's 0x80000
 * bytes would end a pass after a single 512 KiB request.
 */
#define VHOST_BLK_PKT_WEIGHT	256
#define VHOST_BLK_BYTE_WEIGHT	0

/* Offered whatever the backend. */
#define VHOST_BLK_FEATURES	(BIT_ULL(VIRTIO_F_VERSION_1) | \
				 BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | \
				 BIT_ULL(VIRTIO_RING_F_EVENT_IDX) | \
				 BIT_ULL(VHOST_F_LOG_ALL) | \
				 BIT_ULL(VIRTIO_BLK_F_SIZE_MAX) | \
				 BIT_ULL(VIRTIO_BLK_F_SEG_MAX) | \
				 BIT_ULL(VIRTIO_BLK_F_BLK_SIZE) | \
				 BIT_ULL(VIRTIO_BLK_F_FLUSH) | \
				 BIT_ULL(VIRTIO_BLK_F_TOPOLOGY) | \
				 BIT_ULL(VIRTIO_BLK_F_MQ))

/* Offered when the backend supports them or is read-only. */
#define VHOST_BLK_BACKEND_FEATURES	(BIT_ULL(VIRTIO_BLK_F_RO) | \
					 BIT_ULL(VIRTIO_BLK_F_DISCARD) | \
					 BIT_ULL(VIRTIO_BLK_F_WRITE_ZEROES) | \
					 BIT_ULL(VIRTIO_BLK_F_SECURE_ERASE))

/*
 * What the requests in flight on one queue may hold in bounce pages, large
 * bio_vec tables and dirty-log copies; a request over it waits in the ring.
 * Read when a queue starts.
 */
unsigned int vhost_blk_queue_mem_kb = 16384;
module_param_named(queue_mem_kb, vhost_blk_queue_mem_kb, uint, 0644);
MODULE_PARM_DESC(queue_mem_kb,
		 "KiB of request memory (bounce pages, large bio_vec tables, log copies) per queue; default 16384");

/*
 * How long the exit of a device's owner waits for the requests in flight
 * (vhost_blk_file_flush()) before it leaves them to the device's release.
 * Read at each exit.
 */
static unsigned int vhost_blk_exit_wait_ms = 30000;
module_param_named(exit_wait_ms, vhost_blk_exit_wait_ms, uint, 0644);
MODULE_PARM_DESC(exit_wait_ms,
		 "ms the exit of a device's owner waits for its requests in flight before leaving them to the device's release; default 30000");

/*
 * The module's workqueue: the release's deferred free of a device, and the
 * reports of a dead owner's requests (vhost_blk_finish_stopped()). With a
 * rescuer thread, because that owner may be dying for want of memory (the
 * OOM killer's victim), when a new kworker might not be created.
 */
struct workqueue_struct *vhost_blk_wq;

/**
 * vhost_blk_lock() - take the device mutex, once the device has its queues
 * @blk: the device
 *
 * Until the first VHOST_SET_OWNER the device has neither queues nor owner,
 * and every ioctl that needs them fails as it does for a caller that is
 * not the owner.
 *
 * Return: 0 with dev.mutex held, or -EPERM.
 */
static int vhost_blk_lock(struct vhost_blk *blk)
{
	/* Pairs with the store-release in vhost_blk_init_queues(). */
	if (!smp_load_acquire(&blk->ready))
		return -EPERM;
	mutex_lock(&blk->dev.mutex);
	return 0;
}

/**
 * vhost_blk_start_vq() - serve a queue from the attached backend
 * @bvq: the queue; skipped unless its ring is set up
 *
 * Caller holds dev.mutex; blk->backend is set.
 *
 * Return: 0 or a negative errno.
 */
static int vhost_blk_start_vq(struct vhost_blk_vq *bvq)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	unsigned int i;
	int ret = 0;

	mutex_lock(&vq->mutex);
	if (!vhost_vq_is_setup(vq))
		goto out;
	bvq->reqs = kvcalloc(vq->num, sizeof(*bvq->reqs), GFP_KERNEL_ACCOUNT);
	if (!bvq->reqs) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < vq->num; i++)
		bvq->reqs[i].bvq = bvq;
	bvq->mem_budget = (size_t)READ_ONCE(vhost_blk_queue_mem_kb) * SZ_1K;
	bvq->mem_used = 0;
	bvq->mem_wanted = 0;
	bvq->held = false;
	bvq->orphaned = false;
	WRITE_ONCE(bvq->errors_base,
		   u64_stats_read(&bvq->stats.c[VHOST_BLK_C_DRIVER_ERRORS]));
	vhost_vq_set_backend(vq, bvq->blk->backend);
	ret = vhost_vq_init_access(vq);
	if (ret) {
		vhost_vq_set_backend(vq, NULL);
		kvfree(bvq->reqs);
		bvq->reqs = NULL;
		goto out;
	}
	/* Requests the driver queued before the start. */
	vhost_poll_queue(&vq->poll);
	/*
	 * And an interrupt, which virtio allows to be spurious: one for a
	 * completion the device reported while the driver could not hear it
	 * (the call eventfd was not set yet, a vhost-user back-end was being
	 * restarted) would otherwise leave the driver waiting for good.
	 */
	if (vq->call_ctx.ctx) {
		vhost_blk_eventfd_signal(vq->call_ctx.ctx);
		vhost_blk_stats_inc(&bvq->stats, VHOST_BLK_C_INTERRUPTS);
	}
out:
	mutex_unlock(&vq->mutex);
	return ret;
}

/**
 * vhost_blk_drain_vq() - wait for the requests in flight on a stopped queue
 * @bvq: the queue, whose backend is cleared
 * @timeout: the most to wait, in jiffies (MAX_SCHEDULE_TIMEOUT: no limit);
 *	what is left of it on return
 *
 * Also when the queue's worker died with its owner:
 * vhost_blk_finish_stopped() reports what it left. Bios submitted
 * REQ_POLLED complete only when polled, and a dead worker polls no more:
 * while the queue has such bios, or requests parked behind them, the wait
 * looks again every jiffy and has them served on a kworker. Caller holds
 * dev.mutex, not the queue mutex: the worker needs it to complete the
 * requests in flight.
 *
 * Return: true once every request taken from the avail ring is in the used
 * ring, false when @timeout passed first.
 */
static bool vhost_blk_drain_vq(struct vhost_blk_vq *bvq, long *timeout)
{
	long slice, left;
	bool polled;

	for (;;) {
		/* No new polled bio once the backend is cleared. */
		polled = READ_ONCE(bvq->npolled) || READ_ONCE(bvq->nparked);
		slice = polled ? min(*timeout, 1L) : *timeout;
		left = wait_var_event_timeout(&bvq->inflight,
					      !atomic_read(&bvq->inflight) ||
					      (READ_ONCE(bvq->orphaned) &&
					       !llist_empty(&bvq->completed)),
					      slice);
		if (*timeout != MAX_SCHEDULE_TIMEOUT || !polled)
			*timeout -= slice - left;
		if (!atomic_read(&bvq->inflight))
			return true;
		if (!*timeout)
			return false;
		if (polled || (READ_ONCE(bvq->orphaned) &&
			       !llist_empty(&bvq->completed)))
			vhost_blk_finish_stopped(bvq);
	}
}

/**
 * vhost_blk_stop_within() - stop taking requests and drain every queue
 * @blk: the device
 * @timeout: the most to wait for the requests in flight, in jiffies
 *	(MAX_SCHEDULE_TIMEOUT: no limit)
 *
 * Every queue stops taking requests at once. Caller holds dev.mutex.
 *
 * Return: true once every request taken from the avail rings is in the
 * used rings, false when @timeout passed first: the queues then take no
 * more requests, and the next stop waits for the rest and frees them.
 */
static bool vhost_blk_stop_within(struct vhost_blk *blk, long timeout)
{
	struct vhost_virtqueue *vq;
	unsigned int i;

	WRITE_ONCE(blk->running, false);
	for (i = 0; i < blk->nvqs; i++) {
		vq = &blk->vqs[i].vq;
		mutex_lock(&vq->mutex);
		vhost_vq_set_backend(vq, NULL);
		mutex_unlock(&vq->mutex);
	}
	for (i = 0; i < blk->nvqs; i++)
		if (!vhost_blk_drain_vq(&blk->vqs[i], &timeout))
			return false;
	for (i = 0; i < blk->nvqs; i++) {
		vq = &blk->vqs[i].vq;
		mutex_lock(&vq->mutex);
		kvfree(blk->vqs[i].reqs);
		blk->vqs[i].reqs = NULL;
		mutex_unlock(&vq->mutex);
	}
	/* Bio completions may still be inside vhost_blk_req_done(). */
	synchronize_rcu();
	/*
	 * And may have queued the completion work once more: let it run, so
	 * that no work is left on a worker the owner may detach and free.
	 */
	vhost_dev_flush(&blk->dev);
	return true;
}

/* Stops the device, however long its requests in flight take. */
static void vhost_blk_stop(struct vhost_blk *blk)
{
	vhost_blk_stop_within(blk, MAX_SCHEDULE_TIMEOUT);
}

static int vhost_blk_start(struct vhost_blk *blk)
{
	unsigned int i;
	int ret;

	for (i = 0; i < blk->nvqs; i++) {
		ret = vhost_blk_start_vq(&blk->vqs[i]);
		if (ret) {
			vhost_blk_stop(blk);
			return ret;
		}
	}
	WRITE_ONCE(blk->running, true);
	return 0;
}

/*
 * Stops the device and detaches its backend, if any, unless the requests in
 * flight take longer than @timeout (see vhost_blk_stop_within()): false
 * then. Caller holds dev.mutex.
 */
static bool vhost_blk_detach_within(struct vhost_blk *blk, long timeout)
{
	struct vhost_blk_backend *be = blk->backend;

	if (!vhost_blk_stop_within(blk, timeout))
		return false;
	if (be) {
		spin_lock(&blk->info_lock);
		blk->backend = NULL;
		spin_unlock(&blk->info_lock);
		vhost_blk_backend_close(be);
	}
	return true;
}

static void vhost_blk_detach(struct vhost_blk *blk)
{
	vhost_blk_detach_within(blk, MAX_SCHEDULE_TIMEOUT);
}

/*
 * Starts a device whose backend is attached, after a stop; a device that
 * cannot start is left stopped and detached. Caller holds dev.mutex.
 */
static int vhost_blk_resume(struct vhost_blk *blk)
{
	int ret = vhost_blk_start(blk);

	if (ret)
		vhost_blk_detach(blk);
	return ret;
}

/**
 * vhost_blk_set_backend() - attach, swap or detach the block device
 * @blk: the device
 * @fd: an open block device, or -1 to stop and detach
 *
 * Return: 0, -EPERM when the caller is not the owner, -EBADF, -ENOTBLK,
 * -ENOMEM, or an error from setting up a queue's ring access (the device is
 * then left stopped, without backend).
 */
static long vhost_blk_set_backend(struct vhost_blk *blk, int fd)
{
	struct vhost_blk_backend *be = NULL;
	long ret;

	ret = vhost_blk_lock(blk);
	if (ret)
		return ret;
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out;
	if (fd != -1) {
		be = vhost_blk_backend_open(fd);
		if (IS_ERR(be)) {
			ret = PTR_ERR(be);
			goto out;
		}
	}
	vhost_blk_detach(blk);
	if (be) {
		spin_lock(&blk->info_lock);
		blk->backend = be;
		spin_unlock(&blk->info_lock);
		ret = vhost_blk_resume(blk);
	}
out:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/**
 * vhost_blk_set_settings() - change the serial or the forced read-only flag
 * @blk: the device
 * @serial: the new serial, or NULL to keep it
 * @force_ro: the new flag, ignored when @serial is given
 *
 * The settings change only while every queue is stopped (see struct
 * vhost_blk): a running device is stopped, drained and restarted.
 *
 * Return: 0, -EPERM when the caller is not the owner, or a start error.
 */
static long vhost_blk_set_settings(struct vhost_blk *blk, const u8 *serial,
				   bool force_ro)
{
	long ret;

	ret = vhost_blk_lock(blk);
	if (ret)
		return ret;
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out;
	if (blk->backend)
		vhost_blk_stop(blk);
	if (serial)
		memcpy(blk->serial, serial, sizeof(blk->serial));
	else
		WRITE_ONCE(blk->force_ro, force_ro);
	if (blk->backend)
		ret = vhost_blk_resume(blk);
out:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

static u64 vhost_blk_features(struct vhost_blk *blk)
{
	u64 features = VHOST_BLK_FEATURES;

	if (vhost_blk_lock(blk))
		return features;
	if (blk->backend)
		features |= vhost_blk_backend_features(blk->backend);
	if (blk->force_ro)
		features |= BIT_ULL(VIRTIO_BLK_F_RO);
	mutex_unlock(&blk->dev.mutex);
	return features;
}

static long vhost_blk_get_config(struct vhost_blk *blk, void __user *argp)
{
	struct vhost_blk_config config;
	long ret = 0;

	/* The virtio-blk layout, up to the last field the ABI carries. */
	BUILD_BUG_ON(sizeof(config) != VHOST_BLK_CONFIG_SIZE);
	BUILD_BUG_ON(offsetof(struct vhost_blk_config, num_queues) !=
		     offsetof(struct virtio_blk_config, num_queues));
	BUILD_BUG_ON(offsetof(struct vhost_blk_config, write_zeroes_may_unmap) !=
		     offsetof(struct virtio_blk_config, write_zeroes_may_unmap));
	BUILD_BUG_ON(offsetof(struct vhost_blk_config, secure_erase_sector_alignment) !=
		     offsetof(struct virtio_blk_config, secure_erase_sector_alignment));

	if (vhost_blk_lock(blk))
		return -ENODEV;
	if (blk->backend) {
		vhost_blk_backend_config(blk->backend, &config);
		config.num_queues = cpu_to_le16(blk->nvqs);
	} else {
		ret = -ENODEV;
	}
	mutex_unlock(&blk->dev.mutex);
	if (!ret && copy_to_user(argp, &config, VHOST_BLK_CONFIG_SIZE))
		ret = -EFAULT;
	return ret;
}

static int vhost_blk_open(struct inode *inode, struct file *file)
{
	struct vhost_blk *blk;

	int ret;

	blk = kzalloc(sizeof(*blk), GFP_KERNEL_ACCOUNT);
	if (!blk)
		return -ENOMEM;
	mutex_init(&blk->init_lock);
	spin_lock_init(&blk->info_lock);
	blk->nvqs = VHOST_BLK_DEFAULT_QUEUES;
	ret = vhost_blk_nl_register(blk);
	if (ret) {
		mutex_destroy(&blk->init_lock);
		kfree(blk);
		return ret;
	}
	file->private_data = blk;
	return 0;
}

/**
 * vhost_blk_init_queues() - give the device its queues, once
 * @blk: the device; caller holds @blk->init_lock
 *
 * Allocates @blk->nvqs queues, charged to the caller's memory cgroup, and
 * sets up the vhost core device over them. Nothing to do once @blk->ready.
 *
 * Return: 0 or -ENOMEM.
 */
static int vhost_blk_init_queues(struct vhost_blk *blk)
{
	unsigned int i;

	if (blk->ready)
		return 0;
	blk->vqs = kvcalloc(blk->nvqs, sizeof(*blk->vqs), GFP_KERNEL_ACCOUNT);
	if (!blk->vqs)
		goto nomem;
	blk->vq_ptrs = kcalloc(blk->nvqs, sizeof(*blk->vq_ptrs), GFP_KERNEL_ACCOUNT);
	if (!blk->vq_ptrs)
		goto free_vqs;

	for (i = 0; i < blk->nvqs; i++) {
		struct vhost_blk_vq *bvq = &blk->vqs[i];

		bvq->blk = blk;
		bvq->vq.handle_kick = vhost_blk_handle_kick;
		init_llist_head(&bvq->completed);
		INIT_LIST_HEAD(&bvq->polled);
		INIT_LIST_HEAD(&bvq->parked);
		u64_stats_init(&bvq->stats.syncp);
		vhost_work_init(&bvq->complete_work, vhost_blk_complete_work);
		atomic_set(&bvq->inflight, 0);
		blk->vq_ptrs[i] = &bvq->vq;
	}
	vhost_dev_init(&blk->dev, blk->vq_ptrs, blk->nvqs,
		       UIO_MAXIOV, VHOST_BLK_PKT_WEIGHT, VHOST_BLK_BYTE_WEIGHT,
		       true, NULL);
	/* Pairs with the load-acquire in vhost_blk_lock(). */
	smp_store_release(&blk->ready, true);
	return 0;

free_vqs:
	kvfree(blk->vqs);
	blk->vqs = NULL;
nomem:
	return -ENOMEM;
}

/* VHOST_BLK_SET_NUM_QUEUES: only before the queues exist. */
static long vhost_blk_set_num_queues(struct vhost_blk *blk, u32 __user *argp)
{
	long ret = 0;
	u32 num;

	if (get_user(num, argp))
		return -EFAULT;
	if (!num || num > VHOST_BLK_MAX_QUEUES)
		return -EINVAL;
	mutex_lock(&blk->init_lock);
	if (blk->ready)
		ret = -EBUSY;
	else
		WRITE_ONCE(blk->nvqs, num);
	mutex_unlock(&blk->init_lock);
	return ret;
}

/**
 * vhost_blk_file_flush() - stop the device when its owner dies
 * @file: the device's file
 * @id: the files table a descriptor of @file is closed from
 *
 * A process that dies (killed, crashed, or exiting with its files open)
 * has its files released only once all of them are closed, in an order
 * nobody should rely on. A vhost-user front-end learns of the back-end's
 * death when the socket is released, and then reads the used ring as the
 * last word on what was done: a request reported after that runs twice,
 * one left out is lost. So when the owner's last thread closes its files,
 * which is before any of them is released, the device stops here and lets
 * go of its block device: every request it took is in the used ring by the
 * time the socket or any other file of the owner is released. (A files
 * table shared with another process, CLONE_FILES, is closed only when that
 * one exits too: the stop then comes with the release.)
 *
 * The wait is bounded (module parameter exit_wait_ms): a disk that cannot
 * complete until a file of the dying owner is released (a FUSE or NBD
 * server in the owner itself, a userfaultfd of a postcopy migration) would
 * otherwise hold the exit for good. Past the bound the queues take no more
 * requests, the ones in flight complete whenever the disk lets them and
 * are waited for at the release, and the log says so.
 *
 * Return: 0; closing always succeeds.
 */
static int vhost_blk_file_flush(struct file *file, fl_owner_t id)
{
	struct vhost_blk *blk = file->private_data;
	unsigned int wait_ms;

	/*
	 * The whole process dies (exit_group, a fatal signal, a core dump),
	 * not one thread with a files table of its own, nor an exec.
	 */
	if (!(current->flags & PF_EXITING) ||
	    !(READ_ONCE(current->signal->flags) & SIGNAL_GROUP_EXIT))
		return 0;
	/* Other processes that close a copy need not wait for the lock. */
	if (READ_ONCE(blk->owner) != task_tgid(current) || vhost_blk_lock(blk))
		return 0;
	if (blk->owner == task_tgid(current)) {
		wait_ms = READ_ONCE(vhost_blk_exit_wait_ms);
		if (!vhost_blk_detach_within(blk, msecs_to_jiffies(wait_ms)))
			pr_warn_ratelimited("owner %d (%s) exited with requests in flight for over %u ms: they complete at the release of the device\n",
					    task_tgid_nr(current), current->comm, wait_ms);
	}
	mutex_unlock(&blk->dev.mutex);
	return 0;
}

/*
 * Replaces the owner's thread group (NULL: none) and puts the old one's
 * reference; the command name is the caller's, who becomes the owner. Caller
 * holds dev.mutex, or the last reference to the file.
 */
static void vhost_blk_set_owner_pid(struct vhost_blk *blk, struct pid *owner)
{
	struct pid *old;

	spin_lock(&blk->info_lock);
	old = blk->owner;
	WRITE_ONCE(blk->owner, owner);
	if (owner)
		get_task_comm(blk->owner_comm, current);
	spin_unlock(&blk->info_lock);
	put_pid(old);
}

/* Frees a released device, once no netlink reader can be looking at it. */
static void vhost_blk_free(struct work_struct *work)
{
	struct vhost_blk *blk = container_of(to_rcu_work(work), struct vhost_blk,
					     free_work);

	kfree(blk->vq_ptrs);
	kvfree(blk->vqs);
	kfree(blk);
}

static int vhost_blk_release(struct inode *inode, struct file *file)
{
	struct vhost_blk *blk = file->private_data;

	/* The last reference: no ioctl runs, @ready cannot change. */
	if (blk->ready) {
		mutex_lock(&blk->dev.mutex);
		vhost_blk_detach(blk);
		mutex_unlock(&blk->dev.mutex);
		vhost_dev_stop(&blk->dev);
		vhost_dev_cleanup(&blk->dev);
	}
	mem_cgroup_put(blk->memcg);
	vhost_blk_set_owner_pid(blk, NULL);
	mutex_destroy(&blk->init_lock);
	vhost_blk_nl_unregister(blk);
	INIT_RCU_WORK(&blk->free_work, vhost_blk_free);
	queue_rcu_work(vhost_blk_wq, &blk->free_work);
	return 0;
}

/**
 * vhost_blk_set_features() - acknowledge the features the driver accepted
 * @blk: the device
 * @features: VIRTIO_F_*, VIRTIO_BLK_F_* and VHOST_F_* bits
 *
 * Switching dirty logging on a running device drains and restarts it.
 *
 * Return: 0, -EOPNOTSUPP for a feature never offered, -EPERM when the caller
 * is not the owner, -EFAULT when dirty logging is asked for but the log base
 * is not accessible, or a start error.
 */
static long vhost_blk_set_features(struct vhost_blk *blk, u64 features)
{
	unsigned int i;
	bool restart;
	long ret;

	if (features & ~(VHOST_BLK_FEATURES | VHOST_BLK_BACKEND_FEATURES))
		return -EOPNOTSUPP;

	ret = vhost_blk_lock(blk);
	if (ret)
		return ret;
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out;
	if ((features & BIT_ULL(VHOST_F_LOG_ALL)) &&
	    !vhost_log_access_ok(&blk->dev)) {
		ret = -EFAULT;
		goto out;
	}
	/*
	 * A request copies the log ranges when it starts: drain the requests
	 * in flight when logging is switched, so that none completes with the
	 * other setting.
	 */
	restart = blk->backend && ((features ^ blk->vqs[0].vq.acked_features) &
				   BIT_ULL(VHOST_F_LOG_ALL));
	if (restart)
		vhost_blk_stop(blk);
	for (i = 0; i < blk->nvqs; i++) {
		mutex_lock(&blk->vqs[i].vq.mutex);
		blk->vqs[i].vq.acked_features = features;
		mutex_unlock(&blk->vqs[i].vq.mutex);
	}
	spin_lock(&blk->info_lock);
	blk->features = features;
	spin_unlock(&blk->info_lock);
	if (restart)
		ret = vhost_blk_resume(blk);
out:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/**
 * vhost_blk_reset_owner() - forget the owner and every vring setting
 * @blk: the device
 *
 * Stops the device and detaches its backend first.
 *
 * Return: 0, -EPERM when the caller is not the owner, or -ENOMEM.
 */
static long vhost_blk_reset_owner(struct vhost_blk *blk)
{
	struct vhost_iotlb *umem;
	long ret;

	ret = vhost_blk_lock(blk);
	if (ret)
		return ret;
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out;
	umem = vhost_dev_reset_owner_prepare();
	if (!umem) {
		ret = -ENOMEM;
		goto out;
	}
	vhost_blk_detach(blk);
	vhost_dev_stop(&blk->dev);
	vhost_dev_reset_owner(&blk->dev, umem);
	mem_cgroup_put(blk->memcg);
	blk->memcg = NULL;
	vhost_blk_set_owner_pid(blk, NULL);
	spin_lock(&blk->info_lock);
	blk->features = 0;
	spin_unlock(&blk->info_lock);
out:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/*
 * VHOST_SET_OWNER, after the queues are set up; the owner's memory cgroup
 * for what requests allocate, and its process for vhost_blk_file_flush().
 */
static long vhost_blk_set_owner(struct vhost_blk *blk, void __user *argp)
{
	long ret;

	mutex_lock(&blk->init_lock);
	ret = vhost_blk_init_queues(blk);
	mutex_unlock(&blk->init_lock);
	if (ret)
		return ret;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_ioctl(&blk->dev, VHOST_SET_OWNER, argp);
	if (!ret) {
		blk->memcg = get_mem_cgroup_from_mm(current->mm);
		vhost_blk_set_owner_pid(blk, get_pid(task_tgid(current)));
	}
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/*
 * VHOST_SET_MEM_TABLE. A request keeps the owner's addresses of its status
 * byte and of a bounced read's buffers from start to completion: drain the
 * device so that none completes through a table that no longer holds.
 */
static long vhost_blk_set_mem_table(struct vhost_blk *blk, void __user *argp)
{
	long ret, err;

	ret = vhost_blk_lock(blk);
	if (ret)
		return ret;
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out;
	if (blk->backend)
		vhost_blk_stop(blk);
	ret = vhost_dev_ioctl(&blk->dev, VHOST_SET_MEM_TABLE, argp);
	if (blk->backend) {
		err = vhost_blk_resume(blk);
		ret = ret ?: err;
	}
out:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/*
 * The generic ioctls the vhost core implements. Anything else is unknown
 * here; passing it to the core would turn it into EPERM or ENOBUFS.
 */
static long vhost_blk_core_ioctl(struct vhost_blk *blk, unsigned int ioctl,
				 void __user *argp)
{
	long ret;

	switch (ioctl) {
	case VHOST_SET_OWNER:
		return vhost_blk_set_owner(blk, argp);
	case VHOST_SET_MEM_TABLE:
		return vhost_blk_set_mem_table(blk, argp);
	case VHOST_SET_LOG_BASE:
	case VHOST_SET_LOG_FD:
		ret = vhost_blk_lock(blk);
		if (ret)
			return ret;
		ret = vhost_dev_ioctl(&blk->dev, ioctl, argp);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	case VHOST_SET_VRING_NUM:
	case VHOST_SET_VRING_ADDR:
	case VHOST_SET_VRING_BASE:
	case VHOST_GET_VRING_BASE:
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR:
	case VHOST_SET_VRING_ENDIAN:
	case VHOST_GET_VRING_ENDIAN:
	case VHOST_SET_VRING_BUSYLOOP_TIMEOUT:
	case VHOST_GET_VRING_BUSYLOOP_TIMEOUT:
		/* The core checks the owner in vhost_dev_ioctl() only. */
		ret = vhost_blk_lock(blk);
		if (ret)
			return ret;
		ret = vhost_dev_check_owner(&blk->dev);
		if (!ret)
			ret = vhost_vring_ioctl(&blk->dev, ioctl, argp);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	default:
		/* Workers for the queues (6.5), checked by the core. */
		if (!vhost_blk_is_worker_ioctl(ioctl))
			return -ENOIOCTLCMD;
		ret = vhost_blk_lock(blk);
		if (ret)
			return ret;
		ret = vhost_blk_worker_ioctl(&blk->dev, ioctl, argp);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	}
}

static long vhost_blk_ioctl(struct file *file, unsigned int ioctl,
			    unsigned long arg)
{
	struct vhost_blk *blk = file->private_data;
	void __user *argp = (void __user *)arg;
	struct vhost_vring_file backend;
	u8 serial[VIRTIO_BLK_ID_BYTES];
	u64 features;
	u32 value;
	long ret;

	switch (ioctl) {
	case VHOST_GET_FEATURES:
		features = vhost_blk_features(blk);
		return copy_to_user(argp, &features, sizeof(features)) ?
		       -EFAULT : 0;
	case VHOST_SET_FEATURES:
		if (copy_from_user(&features, argp, sizeof(features)))
			return -EFAULT;
		return vhost_blk_set_features(blk, features);
	case VHOST_GET_BACKEND_FEATURES:
		features = 0;
		return copy_to_user(argp, &features, sizeof(features)) ?
		       -EFAULT : 0;
	case VHOST_SET_BACKEND_FEATURES:
		if (copy_from_user(&features, argp, sizeof(features)))
			return -EFAULT;
		if (features)
			return -EOPNOTSUPP;
		ret = vhost_blk_lock(blk);
		if (ret)
			return ret;
		ret = vhost_dev_check_owner(&blk->dev);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	case VHOST_RESET_OWNER:
		return vhost_blk_reset_owner(blk);
	case VHOST_BLK_GET_ABI_VERSION:
		return put_user(VHOST_BLK_ABI_VERSION, (u32 __user *)argp);
	case VHOST_BLK_SET_BACKEND:
		if (copy_from_user(&backend, argp, sizeof(backend)))
			return -EFAULT;
		return vhost_blk_set_backend(blk, backend.fd);
	case VHOST_BLK_GET_CONFIG:
		return vhost_blk_get_config(blk, argp);
	case VHOST_BLK_SET_NUM_QUEUES:
		return vhost_blk_set_num_queues(blk, argp);
	case VHOST_BLK_SET_SERIAL:
		if (copy_from_user(serial, argp, sizeof(serial)))
			return -EFAULT;
		return vhost_blk_set_settings(blk, serial, false);
	case VHOST_BLK_SET_READ_ONLY:
		if (get_user(value, (u32 __user *)argp))
			return -EFAULT;
		if (value > 1)
			return -EINVAL;
		return vhost_blk_set_settings(blk, NULL, value);
	default:
		return vhost_blk_core_ioctl(blk, ioctl, argp);
	}
}

/*
 * /proc/PID/fdinfo/FD: the device's id in the netlink family, for the owner
 * to find its own devices there.
 */
static void vhost_blk_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct vhost_blk *blk = file->private_data;

	seq_printf(m, "vhost-blk-id:\t%u\n", blk->id);
}

static const struct file_operations vhost_blk_fops = {
	.owner		= THIS_MODULE,
	.open		= vhost_blk_open,
	.flush		= vhost_blk_file_flush,
	.release	= vhost_blk_release,
	.llseek		= noop_llseek,
	.unlocked_ioctl	= vhost_blk_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.show_fdinfo	= vhost_blk_show_fdinfo,
};

static struct miscdevice vhost_blk_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= VHOST_BLK_MISC_NAME,
	.fops	= &vhost_blk_fops,
	.mode	= 0600,
};

static int __init vhost_blk_init(void)
{
	int ret;

	vhost_blk_wq = alloc_workqueue("vhost_blk", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!vhost_blk_wq)
		return -ENOMEM;
	ret = vhost_blk_netlink_init();
	if (ret)
		goto err_wq;
	ret = misc_register(&vhost_blk_misc);
	if (ret)
		goto err_netlink;
	return 0;

err_netlink:
	vhost_blk_netlink_exit();
err_wq:
	destroy_workqueue(vhost_blk_wq);
	return ret;
}
module_init(vhost_blk_init);

static void __exit vhost_blk_exit(void)
{
	misc_deregister(&vhost_blk_misc);
	vhost_blk_netlink_exit();
	/* The frees of the last devices wait for a grace period first. */
	rcu_barrier();
	destroy_workqueue(vhost_blk_wq);
}
module_exit(vhost_blk_exit);

MODULE_DESCRIPTION("Host kernel accelerator for virtio-blk");
MODULE_LICENSE("GPL");
