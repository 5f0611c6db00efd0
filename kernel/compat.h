/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhost-blk: what differs between the kernels the module builds for,
 * Debian's 6.1 and 6.12 LTS. Each difference names the release that made
 * it; the rest of the module uses one interface, the newer one where it
 * can. Which side a kernel is on is found in its headers, not read off
 * its version (kernel/Kbuild sets the VHOST_BLK_HAVE_* flags), so kernels
 * with backports build too.
 */
#ifndef _VHOST_BLK_COMPAT_H
#define _VHOST_BLK_COMPAT_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/eventfd.h>
#include <linux/fs.h>
#include <linux/uio.h>
#include <linux/vhost.h>

#include "vhost.h"

/*
 * 6.4: the iovec array of an ITER_IOVEC iterator moved to iter->__iov,
 * read through iter_iov().
 */
#ifndef VHOST_BLK_HAVE_ITER_IOV
static inline const struct iovec *iter_iov(const struct iov_iter *iter)
{
	return iter->iov;
}
#endif

/*
 * 6.3: bio flags say which pages bio_release_pages() puts or unpins
 * (BIO_PAGE_REFFED, then BIO_PAGE_PINNED), none by default. Before, every page
 * was put unless BIO_NO_PAGE_REF was set. vhost-blk releases its pages
 * itself, never through bio_release_pages(), and says so on old kernels.
 */
static inline void vhost_blk_bio_keep_pages(struct bio *bio)
{
#ifdef VHOST_BLK_HAVE_BIO_NO_PAGE_REF
	bio_set_flag(bio, BIO_NO_PAGE_REF);
#endif
}

/*
 * 6.9: file_bdev() gives the block device of a block device file, the
 * way to reach it now that block devices are opened as files.
 */
static inline struct block_device *vhost_blk_file_bdev(struct file *file)
{
#ifdef VHOST_BLK_HAVE_FILE_BDEV
	return file_bdev(file);
#else
	return I_BDEV(file->f_mapping->host);
#endif
}

/*
 * 6.8: eventfd_signal() adds one; before, it took the count to add.
 */
static inline void vhost_blk_eventfd_signal(struct eventfd_ctx *ctx)
{
#ifdef VHOST_BLK_HAVE_EVENTFD_SIGNAL_ONE
	eventfd_signal(ctx);
#else
	eventfd_signal(ctx, 1);
#endif
}

/*
 * 6.5: every virtqueue has a worker of its own choosing (one per device
 * unless userspace attaches others), and work for a queue goes to that
 * worker. Before, the device had one worker for all its queues: a kernel
 * thread, since 6.4 a vhost_task thread of the owner. Since 6.10 such a
 * worker exits when the owner is killed, the queues lose it and queueing
 * fails (returns false) from then on; kernel thread workers (before 6.4,
 * or where the vhost core is told to make them, fork_from_owner_default)
 * no signal stops.
 */
static inline bool vhost_blk_vq_work_queue(struct vhost_virtqueue *vq,
					   struct vhost_work *work)
{
#ifdef VHOST_BLK_HAVE_VQ_WORKERS
	return vhost_vq_work_queue(vq, work);
#else
	vhost_work_queue(vq->dev, work);
	return true;
#endif
}

/* Whether the worker of @vq has other work queued (6.5: per worker). */
static inline bool vhost_blk_vq_has_work(struct vhost_virtqueue *vq)
{
#ifdef VHOST_BLK_HAVE_VQ_WORKERS
	return vhost_vq_has_work(vq);
#else
	return vhost_has_work(vq->dev);
#endif
}

/*
 * 6.5: VHOST_NEW_WORKER, VHOST_FREE_WORKER, VHOST_ATTACH_VRING_WORKER and
 * VHOST_GET_VRING_WORKER, for the owner to give queues workers of their
 * own. Unknown ioctls where the core has none of them.
 */
#ifdef VHOST_BLK_HAVE_VQ_WORKERS
static inline bool vhost_blk_is_worker_ioctl(unsigned int ioctl)
{
	switch (ioctl) {
	case VHOST_NEW_WORKER:
	case VHOST_FREE_WORKER:
	case VHOST_ATTACH_VRING_WORKER:
	case VHOST_GET_VRING_WORKER:
		return true;
	default:
		return false;
	}
}

static inline long vhost_blk_worker_ioctl(struct vhost_dev *dev,
					  unsigned int ioctl, void __user *argp)
{
	return vhost_worker_ioctl(dev, ioctl, argp);
}
#else
static inline bool vhost_blk_is_worker_ioctl(unsigned int ioctl)
{
	return false;
}

static inline long vhost_blk_worker_ioctl(struct vhost_dev *dev,
					  unsigned int ioctl, void __user *argp)
{
	return -ENOIOCTLCMD;
}
#endif

/*
 * 6.11: a queue that completes bios submitted REQ_POLLED when they are
 * polled says so with BLK_FEAT_POLL in its limits' features; before, with
 * QUEUE_FLAG_POLL in its flags.
 */
static inline bool vhost_blk_bdev_can_poll(struct block_device *bdev)
{
#ifdef VHOST_BLK_HAVE_BLK_FEAT_POLL
	return bdev_get_queue(bdev)->limits.features & BLK_FEAT_POLL;
#else
	return test_bit(QUEUE_FLAG_POLL, &bdev_get_queue(bdev)->queue_flags);
#endif
}

/*
 * bio_poll() once, without spinning (BLK_POLL_ONESHOT): the worker watches
 * the avail ring between polls. Hybrid polling, which sleeps unless told
 * not to (BLK_POLL_NOSLEEP), is gone by 6.12, and the flag with it.
 */
#ifdef BLK_POLL_NOSLEEP
#define VHOST_BLK_POLL_FLAGS	(BLK_POLL_ONESHOT | BLK_POLL_NOSLEEP)
#else
#define VHOST_BLK_POLL_FLAGS	BLK_POLL_ONESHOT
#endif

#endif /* _VHOST_BLK_COMPAT_H */
