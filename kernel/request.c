// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk: the life of one request.
 *
 * 1. vhost_blk_handle_kick() runs on the queue's worker with the queue
 *    mutex held. It takes a descriptor chain from the avail ring: the 16-byte
 *    header in the driver-readable buffers (possibly split), then data, and
 *    the status byte as the last device-writable byte.
 * 2. A request that can be answered at once (GET_ID, an invalid or
 *    unsupported request) is done right there. Reads and writes pin the
 *    guest's pages (FOLL_PIN) and become one bio over them; buffers the
 *    device cannot take directly are copied through bounce pages instead.
 *    Flushes, discards, write-zeroes and secure erases become bios without
 *    data. Nothing but the bios waits for the block device.
 *    What a request allocates (bounce pages, large bio_vec tables, the
 *    copy of its dirty-log ranges) counts against its queue's memory
 *    budget; a request that does not fit waits in the avail ring until
 *    earlier ones complete, and the allocations are charged to the owner's
 *    memory cgroup.
 * 3. Every request ends in vhost_blk_req_done(): from bio completion in any
 *    context, or from the worker itself. It pushes the request on the queue's
 *    lock-free completed list and, unless the worker is serving the queue
 *    right then and will see it, queues the completion work.
 * 4. vhost_blk_serve() reports completed requests on the worker (on a
 *    kernel worker thread when the owner was killed,
 *    vhost_blk_finish_stopped()) with the queue mutex held: it releases the
 *    pages, writes the status byte, logs the written guest pages when
 *    dirty logging is on, and reports the whole batch in the used ring with
 *    one interrupt. It does so before and after it takes requests, and,
 *    with a busy-loop timeout, while it polls the ring for the next ones.
 *
 * A request lives in its queue's slot table, indexed by descriptor head, so
 * nothing is allocated for it unless it is large, bounced, or logged.
 *
 * Polled I/O. On a queue with a busy-loop timeout whose block device has
 * poll queues, reads and writes go REQ_POLLED and the worker reaps them
 * with bio_poll(): no interrupt, no wake-up of the worker. Nothing else
 * completes such a bio, so while a queue has one in flight (@bvq->polled)
 * its worker must not sleep in the block layer, where it could wait for
 * a tag, or a queue freeze, that only those bios give back:
 *
 * - polled bios also go REQ_NOWAIT, and one the block layer refuses rather
 *   than wait (BLK_STS_AGAIN: no tag, a frozen queue, a bio that would need
 *   splitting; BLK_STS_NOTSUPP: the poll queues went away) is parked and
 *   submitted again, without either flag, once none is in flight;
 * - a read or write that cannot be polled is parked the same way, and a
 *   request that would submit some other bio (flush, discard, write
 *   zeroes, secure erase) stays in the avail ring until then (@bvq->held);
 *   nothing more is taken while requests are parked;
 * - the worker keeps polling, whatever the timeout, until none is left;
 *   when it gives way it queues its completion work to come back, and a
 *   stop whose worker is gone polls on a kworker
 *   (vhost_blk_finish_stopped()).
 */
#include <linux/blkdev.h>
#include <linux/highmem.h>
#include <linux/ktime.h>
#include <linux/kthread.h>
#include <linux/log2.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/sched/clock.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/virtio_ring.h>
#include <linux/workqueue.h>

#include "vhost_blk.h"

#define CREATE_TRACE_POINTS
#include "trace.h"

/* Not a virtio-blk status: the request's I/O is submitted, it ends later. */
#define VHOST_BLK_IN_FLIGHT	0xff

/*
 * What a request allocates on the worker: charged to the owner's memory
 * cgroup, and at its limit the allocation fails (the request completes
 * IOERR) rather than OOM-kill the owner, which __GFP_RETRY_MAYFAIL makes
 * the memcg charge do.
 */
#define VHOST_BLK_GFP	(GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN)

/* Guest pages pinned per pin_user_pages_fast() call. */
#define VHOST_BLK_PIN_BATCH	16

/*
 * Every data page of a request is one bio_vec and bio->bi_vcnt is 16 bits:
 * seg_max buffers of at most size_max bytes, each across one more page
 * than its length fills, must fit.
 */
#define VHOST_BLK_MAX_VECS	(VHOST_BLK_SEG_MAX * (VHOST_BLK_SIZE_MAX / PAGE_SIZE + 1))

/* What a request of virtio-blk type @type is counted as. */
static u8 vhost_blk_kind(u32 type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN:
		return VHOST_BLK_KIND_IN;
	case VIRTIO_BLK_T_OUT:
		return VHOST_BLK_KIND_OUT;
	case VIRTIO_BLK_T_FLUSH:
		return VHOST_BLK_KIND_FLUSH;
	case VIRTIO_BLK_T_GET_ID:
		return VHOST_BLK_KIND_GET_ID;
	case VIRTIO_BLK_T_DISCARD:
		return VHOST_BLK_KIND_DISCARD;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return VHOST_BLK_KIND_WRITE_ZEROES;
	case VIRTIO_BLK_T_SECURE_ERASE:
		return VHOST_BLK_KIND_SECURE_ERASE;
	default:
		return VHOST_BLK_KIND_OTHER;
	}
}

/*
 * Whether a request of virtio-blk type @type submits a bio other than a
 * read or write, which may sleep in the block layer.
 */
static bool vhost_blk_other_bio(u32 type)
{
	switch (type) {
	case VIRTIO_BLK_T_FLUSH:
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
	case VIRTIO_BLK_T_SECURE_ERASE:
		return true;
	default:
		return false;
	}
}

/* Counts a chain refused as malformed. Caller holds the queue mutex. */
static void vhost_blk_count_driver_error(struct vhost_blk_vq *bvq)
{
	vhost_blk_stats_inc(&bvq->stats, VHOST_BLK_C_DRIVER_ERRORS);
}

static void vhost_blk_req_done(struct vhost_blk_req *req)
{
	struct vhost_blk_vq *bvq = req->bvq;

	/*
	 * Once on the list the request may be finished and the device stopped
	 * and freed; stop waits for this section with synchronize_rcu().
	 */
	rcu_read_lock();
	llist_add(&req->node, &bvq->completed);
	/*
	 * A worker inside vhost_blk_serve() reports the request before it
	 * leaves: llist_add() is a full barrier before the flag is read, as
	 * the worker clears the flag before it looks at the list.
	 */
	if (READ_ONCE(bvq->serving)) {
		rcu_read_unlock();
		return;
	}
	if (unlikely(!vhost_blk_vq_work_queue(&bvq->vq, &bvq->complete_work))) {
		/*
		 * The worker died with its owner: stop finishes the request.
		 * The barrier orders the flag before wake_up_var()'s check
		 * for waiters, as the waiter orders its sleep before reading
		 * the flag.
		 */
		smp_store_mb(bvq->orphaned, true);
		wake_up_var(&bvq->inflight);
	}
	rcu_read_unlock();
}

static void vhost_blk_bio_end_io(struct bio *bio)
{
	struct vhost_blk_req *req = bio->bi_private;

	/* Refused without waiting: parked, and submitted again unpolled. */
	if (req->polled && (bio->bi_status == BLK_STS_AGAIN ||
			    bio->bi_status == BLK_STS_NOTSUPP))
		req->retry = true;
	else if (bio->bi_status == BLK_STS_NOTSUPP)
		req->status = VIRTIO_BLK_S_UNSUPP;
	else if (bio->bi_status)
		req->status = VIRTIO_BLK_S_IOERR;
	if (bio != &req->bio)
		bio_put(bio);
	vhost_blk_req_done(req);
}

static void vhost_blk_submit(struct vhost_blk_req *req, struct bio *bio)
{
	bio->bi_private = req;
	bio->bi_end_io = vhost_blk_bio_end_io;
	submit_bio(bio);
}

/* Whether sectors [sector, sector + nr) lie on the device, block-aligned. */
static bool vhost_blk_range_ok(struct block_device *bdev, u64 sector, u64 nr)
{
	unsigned int lbs_sectors = bdev_logical_block_size(bdev) >> SECTOR_SHIFT;
	u64 capacity = bdev_nr_sectors(bdev);

	return sector <= capacity && nr <= capacity - sector &&
	       IS_ALIGNED(sector, lbs_sectors) && IS_ALIGNED(nr, lbs_sectors);
}

static int vhost_blk_alloc_vecs(struct vhost_blk_req *req, unsigned int nr)
{
	req->nvecs = 0;
	if (nr <= VHOST_BLK_INLINE_PAGES) {
		req->bvecs = req->inline_vecs;
		return 0;
	}
	req->bvecs = kvmalloc_array(nr, sizeof(*req->bvecs), VHOST_BLK_GFP);
	return req->bvecs ? 0 : -ENOMEM;
}

/*
 * Unpins the guest pages of @req, VHOST_BLK_PIN_BATCH at a time, marking
 * them dirty when @dirty: the core then dirties each folio once, however
 * many of its pages the request used (a huge page of guest memory).
 */
static void vhost_blk_unpin_pages(struct vhost_blk_req *req, bool dirty)
{
	struct page *pages[VHOST_BLK_PIN_BATCH];
	unsigned int i, n = 0;

	for (i = 0; i < req->nvecs; i++) {
		pages[n++] = req->bvecs[i].bv_page;
		if (n == ARRAY_SIZE(pages) || i + 1 == req->nvecs) {
			unpin_user_pages_dirty_lock(pages, n, dirty);
			n = 0;
		}
	}
}

/**
 * vhost_blk_release_pages() - give back the pages of a data request
 * @req: the request, its I/O over
 *
 * Copies a bounced read to the guest first. Guest pages the device wrote
 * (@req->written is set once the read is submitted) are dirtied before
 * they are unpinned.
 */
static void vhost_blk_release_pages(struct vhost_blk_req *req)
{
	struct iov_iter iter;
	unsigned int i;

	if (req->bounce_iov) {
		iov_iter_init(&iter, ITER_DEST, req->bounce_iov, req->bounce_nr, req->written);
		for (i = 0; i < req->nvecs && req->status == VIRTIO_BLK_S_OK; i++)
			if (copy_page_to_iter(req->bvecs[i].bv_page, 0,
					      req->bvecs[i].bv_len, &iter) != req->bvecs[i].bv_len)
				req->status = VIRTIO_BLK_S_IOERR;
		kfree(req->bounce_iov);
		req->bounce_iov = NULL;
	}
	if (req->bounced) {
		for (i = 0; i < req->nvecs; i++)
			__free_page(req->bvecs[i].bv_page);
	} else {
		vhost_blk_unpin_pages(req, req->to_guest && req->written);
	}
	if (req->bvecs != req->inline_vecs)
		kvfree(req->bvecs);
	req->nvecs = 0;
}

/**
 * vhost_blk_pin_pages() - pin the guest pages behind a request's data
 * @req: the request; @req->to_guest says whether the device writes them
 * @data: the guest's data buffers, user addresses in the owner's mm
 *
 * Pins with FOLL_PIN, as DMA targets must be, so that fork, KSM and
 * writeback of file-backed guest memory see the pages as in use. Every page
 * becomes one bio_vec; on failure nothing stays pinned.
 *
 * Return: 0 or a negative errno.
 */
static int vhost_blk_pin_pages(struct vhost_blk_req *req, struct iov_iter *data)
{
	unsigned int gup_flags = req->to_guest ? FOLL_WRITE : 0;
	size_t skip = data->iov_offset, left = iov_iter_count(data);
	const struct iovec *iov = iter_iov(data);
	struct page *pages[VHOST_BLK_PIN_BATCH];
	int ret, i, n;

	ret = vhost_blk_alloc_vecs(req, iov_iter_npages(data, INT_MAX));
	if (ret)
		return ret;
	for (; left; iov++, skip = 0) {
		unsigned long addr = (unsigned long)iov->iov_base + skip;
		size_t len = min(iov->iov_len - skip, left);

		left -= len;
		while (len) {
			size_t off = offset_in_page(addr);

			n = min_t(size_t, DIV_ROUND_UP(off + len, PAGE_SIZE),
				  ARRAY_SIZE(pages));
			n = pin_user_pages_fast(addr - off, n, gup_flags, pages);
			if (n <= 0) {
				vhost_blk_release_pages(req);
				return n ? n : -EFAULT;
			}
			for (i = 0; i < n; i++) {
				struct bio_vec *bv = &req->bvecs[req->nvecs++];

				bv->bv_page = pages[i];
				bv->bv_offset = off;
				bv->bv_len = min_t(size_t, len, PAGE_SIZE - off);
				addr += bv->bv_len;
				len -= bv->bv_len;
				off = 0;
			}
		}
	}
	return 0;
}

/*
 * Copies @data through freshly allocated pages: for guest buffers the block
 * device cannot take directly. A write is copied in now, a read copied out
 * at completion from the iovec array saved here.
 */
static int vhost_blk_bounce_pages(struct vhost_blk_req *req, struct iov_iter *data)
{
	size_t len = iov_iter_count(data);
	unsigned int i, n = DIV_ROUND_UP(len, PAGE_SIZE);
	int ret;

	ret = vhost_blk_alloc_vecs(req, n);
	if (ret)
		return ret;
	req->bounced = true;
	for (i = 0; i < n; i++) {
		struct bio_vec *bv = &req->bvecs[i];

		bv->bv_page = alloc_page(VHOST_BLK_GFP);
		if (!bv->bv_page)
			goto nomem;
		req->nvecs++;
		bv->bv_offset = 0;
		bv->bv_len = min_t(size_t, len - i * PAGE_SIZE, PAGE_SIZE);
		if (!req->to_guest &&
		    copy_page_from_iter(bv->bv_page, 0, bv->bv_len, data) != bv->bv_len) {
			ret = -EFAULT;
			goto fail;
		}
	}
	if (req->to_guest) {
		req->bounce_iov = kmemdup(iter_iov(data), data->nr_segs * sizeof(struct iovec),
					  VHOST_BLK_GFP);
		if (!req->bounce_iov)
			goto nomem;
		req->bounce_nr = data->nr_segs;
	}
	return 0;
nomem:
	ret = -ENOMEM;
fail:
	vhost_blk_release_pages(req);
	return ret;
}

/**
 * vhost_blk_rw_ok() - whether a read or write may go to the block device
 * @be: the backend
 * @sector: first 512-byte sector
 * @data: the guest's data buffers
 *
 * Whole sectors within the capacity and logical blocks, at most seg_max
 * buffers of at most size_max bytes each; that also keeps the pages of a
 * request within a bio's 16-bit vector count.
 */
static bool vhost_blk_rw_ok(const struct vhost_blk_backend *be, u64 sector,
			    const struct iov_iter *data)
{
	size_t len = iov_iter_count(data), skip = data->iov_offset;
	unsigned long i;

	BUILD_BUG_ON(VHOST_BLK_MAX_VECS > U16_MAX);
	if (!IS_ALIGNED(len, SECTOR_SIZE) ||
	    !vhost_blk_range_ok(be->bdev, sector, len >> SECTOR_SHIFT) ||
	    data->nr_segs > VHOST_BLK_SEG_MAX)
		return false;
	for (i = 0; i < data->nr_segs; i++, skip = 0)
		if (iter_iov(data)[i].iov_len - skip > VHOST_BLK_SIZE_MAX)
			return false;
	return true;
}

/**
 * vhost_blk_rw_mem() - what a read or write will allocate
 * @req: the request; sets @req->bounced
 * @be: the backend
 * @data: the guest's data buffers
 *
 * Direct when every buffer starts on the device's DMA alignment and on a
 * logical block, and is whole logical blocks long (drivers such as null_blk
 * assume each vector holds whole blocks); bounced otherwise.
 *
 * Return: bytes of bounce pages and bio_vec table the request needs.
 */
static size_t vhost_blk_rw_mem(struct vhost_blk_req *req,
			       const struct vhost_blk_backend *be,
			       const struct iov_iter *data)
{
	unsigned int lbs = bdev_logical_block_size(be->bdev);
	unsigned long addr_mask = bdev_dma_alignment(be->bdev) | (lbs - 1);
	size_t len = iov_iter_count(data), npages, mem = 0;

	req->bounced = !iov_iter_is_aligned(data, addr_mask, lbs - 1);
	if (req->bounced) {
		npages = DIV_ROUND_UP(len, PAGE_SIZE);
		mem = npages * PAGE_SIZE;
		if (req->to_guest)
			mem += data->nr_segs * sizeof(struct iovec);
	} else {
		npages = iov_iter_npages(data, INT_MAX);
	}
	if (npages > VHOST_BLK_INLINE_PAGES)
		mem += npages * sizeof(struct bio_vec);
	return mem;
}

/* Submits the bio of a read or write as @opf. */
static void vhost_blk_rw_bio(struct vhost_blk_req *req, blk_opf_t opf)
{
	bio_init(&req->bio, req->bdev, req->bvecs, req->nvecs, opf);
	req->bio.bi_vcnt = req->nvecs;
	req->bio.bi_iter.bi_size = req->data_len;
	req->bio.bi_iter.bi_sector = req->sector;
	vhost_blk_bio_keep_pages(&req->bio);
	vhost_blk_submit(req, &req->bio);
}

/*
 * Whether a read or write may go REQ_POLLED: its queue busy-polls, its
 * device has poll queues, and it needs no split, which the block layer
 * refuses a REQ_NOWAIT bio (it would be submitted twice).
 */
static bool vhost_blk_may_poll(const struct vhost_blk_vq *bvq,
			       const struct vhost_blk_req *req)
{
	struct request_queue *q = bdev_get_queue(req->bdev);

	return bvq->vq.busyloop_timeout && vhost_blk_bdev_can_poll(req->bdev) &&
	       req->data_len <= (u64)queue_max_sectors(q) << SECTOR_SHIFT &&
	       req->nvecs <= queue_max_segments(q);
}

/*
 * Submits a read or write: polled when it may be, parked when it may not
 * while polled bios are in flight, as it is otherwise. Caller holds the
 * queue mutex.
 */
static void vhost_blk_rw_submit(struct vhost_blk_vq *bvq,
				struct vhost_blk_req *req)
{
	if (vhost_blk_may_poll(bvq, req)) {
		req->polled = true;
		list_add_tail(&req->poll_node, &bvq->polled);
		WRITE_ONCE(bvq->npolled, bvq->npolled + 1);
		vhost_blk_rw_bio(req, req->opf | REQ_POLLED | REQ_NOWAIT);
	} else if (bvq->npolled) {
		list_add_tail(&req->poll_node, &bvq->parked);
		WRITE_ONCE(bvq->nparked, bvq->nparked + 1);
	} else {
		vhost_blk_rw_bio(req, req->opf);
	}
}

/*
 * Submits the parked reads and writes, without REQ_POLLED. Caller holds
 * the queue mutex and has no polled bio in flight.
 */
static void vhost_blk_submit_parked(struct vhost_blk_vq *bvq)
{
	struct vhost_blk_req *req, *tmp;
	struct blk_plug plug;

	if (!bvq->nparked)
		return;
	blk_start_plug(&plug);
	list_for_each_entry_safe(req, tmp, &bvq->parked, poll_node) {
		list_del(&req->poll_node);
		vhost_blk_rw_bio(req, req->opf);
	}
	WRITE_ONCE(bvq->nparked, 0);
	blk_finish_plug(&plug);
}

/*
 * Polls the hardware queues of the queue's polled bios, each once in a
 * row: a poll completes every bio of its hardware queue that is done.
 * Caller holds the queue mutex.
 */
static void vhost_blk_poll_bios(struct vhost_blk_vq *bvq)
{
	blk_qc_t cookie, last = BLK_QC_T_NONE;
	struct vhost_blk_req *req;

	list_for_each_entry(req, &bvq->polled, poll_node) {
		/* None until the request starts on a hardware queue. */
		cookie = READ_ONCE(req->bio.bi_cookie);
		if (cookie == last)
			continue;
		last = cookie;
		bio_poll(&req->bio, NULL, VHOST_BLK_POLL_FLAGS);
	}
}

/**
 * vhost_blk_rw() - start a read (IN) or write (OUT)
 * @req: the request; @req->bounced decided by vhost_blk_rw_mem()
 * @be: the backend; vhost_blk_rw_ok() holds for @req->sector
 * @data: the guest's data buffers; count is the transfer length
 *
 * Return: VHOST_BLK_IN_FLIGHT, or the status to report.
 */
static u8 vhost_blk_rw(struct vhost_blk_req *req, struct vhost_blk_backend *be,
		       struct iov_iter *data)
{
	struct block_device *bdev = be->bdev;
	size_t len = iov_iter_count(data);
	/* Direct I/O: not throttled as if it were buffered writeback. */
	blk_opf_t opf = req->to_guest ? REQ_OP_READ :
				       REQ_OP_WRITE | REQ_SYNC | REQ_IDLE;
	int ret;

	if (!len)
		return VIRTIO_BLK_S_OK;
	/* Without FLUSH negotiated the device must be write-through. */
	if (!req->to_guest && !vhost_has_feature(&req->bvq->vq, VIRTIO_BLK_F_FLUSH))
		opf |= REQ_FUA;

	if (req->bounced)
		ret = vhost_blk_bounce_pages(req, data);
	else
		ret = vhost_blk_pin_pages(req, data);
	if (ret)
		return VIRTIO_BLK_S_IOERR;

	if (req->to_guest)
		req->written = len;
	req->opf = opf;
	req->bdev = bdev;
	vhost_blk_rw_submit(req->bvq, req);
	return VHOST_BLK_IN_FLIGHT;
}

static u8 vhost_blk_flush(struct vhost_blk_req *req, struct vhost_blk_backend *be)
{
	bio_init(&req->bio, be->bdev, NULL, 0, REQ_OP_WRITE | REQ_PREFLUSH);
	vhost_blk_submit(req, &req->bio);
	return VHOST_BLK_IN_FLIGHT;
}

static u8 vhost_blk_get_id(struct vhost_blk_req *req, struct iov_iter *data)
{
	size_t len = min(iov_iter_count(data), sizeof(req->bvq->blk->serial));

	if (copy_to_iter(req->bvq->blk->serial, len, data) != len)
		return VIRTIO_BLK_S_IOERR;
	req->written = len;
	return VIRTIO_BLK_S_OK;
}

/*
 * Issues one segment of a DISCARD, WRITE_ZEROES or SECURE_ERASE request as
 * bios chained to *@bio; nothing waits for the device.
 */
static int vhost_blk_range_issue(struct vhost_blk_backend *be, u32 type,
				 u64 sector, u64 nr, u32 flags, struct bio **bio)
{
	unsigned int max;

	switch (type) {
	case VIRTIO_BLK_T_DISCARD:
		return __blkdev_issue_discard(be->bdev, sector, nr, GFP_KERNEL, bio);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		/* No fallback that writes zero pages: the device does it or fails. */
		return __blkdev_issue_zeroout(be->bdev, sector, nr, GFP_KERNEL, bio,
					      BLKDEV_ZERO_NOFALLBACK |
					      (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP ?
					       0 : BLKDEV_ZERO_NOUNMAP));
	}

	max = vhost_blk_backend_secure_erase_sectors(be);
	while (nr) {
		unsigned int n = min_t(u64, nr, max);

		*bio = blk_next_bio(*bio, be->bdev, 0, REQ_OP_SECURE_ERASE, GFP_KERNEL);
		(*bio)->bi_iter.bi_sector = sector;
		(*bio)->bi_iter.bi_size = n << SECTOR_SHIFT;
		sector += n;
		nr -= n;
	}
	return 0;
}

/**
 * vhost_blk_range() - start a DISCARD, WRITE_ZEROES or SECURE_ERASE
 * @req: the request
 * @be: the backend
 * @type: the request type
 * @data: the array of struct virtio_blk_discard_write_zeroes segments
 *
 * The segments are copied once and every one is checked before any is
 * issued. All three complete asynchronously, like reads and writes.
 *
 * Return: VHOST_BLK_IN_FLIGHT, or the status to report.
 */
static u8 vhost_blk_range(struct vhost_blk_req *req, struct vhost_blk_backend *be,
			  u32 type, struct iov_iter *data)
{
	struct virtio_blk_discard_write_zeroes segs[VHOST_BLK_MAX_RANGE_SEGS];
	struct block_device *bdev = be->bdev;
	u32 allowed_flags = 0, max_sectors;
	size_t len = iov_iter_count(data);
	struct bio *bio = NULL;
	unsigned int i, nseg;
	u64 sector, nr;

	switch (type) {
	case VIRTIO_BLK_T_DISCARD:
		max_sectors = bdev_max_discard_sectors(bdev);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		max_sectors = vhost_blk_backend_write_zeroes_sectors(be);
		allowed_flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
		break;
	default:
		max_sectors = vhost_blk_backend_secure_erase_sectors(be);
		break;
	}
	if (!max_sectors)
		return VIRTIO_BLK_S_UNSUPP;
	nseg = len / sizeof(segs[0]);
	if (!nseg || len % sizeof(segs[0]) || nseg > ARRAY_SIZE(segs) ||
	    copy_from_iter(segs, len, data) != len)
		return VIRTIO_BLK_S_IOERR;

	for (i = 0; i < nseg; i++) {
		if (le32_to_cpu(segs[i].flags) & ~allowed_flags)
			return VIRTIO_BLK_S_UNSUPP;
		if (le32_to_cpu(segs[i].num_sectors) > max_sectors ||
		    !vhost_blk_range_ok(bdev, le64_to_cpu(segs[i].sector),
					le32_to_cpu(segs[i].num_sectors)))
			return VIRTIO_BLK_S_IOERR;
	}

	for (i = 0; i < nseg; i++) {
		sector = le64_to_cpu(segs[i].sector);
		nr = le32_to_cpu(segs[i].num_sectors);
		if (!nr)
			continue;
		if (vhost_blk_range_issue(be, type, sector, nr,
					  le32_to_cpu(segs[i].flags), &bio)) {
			/* Bios already issued still complete the request. */
			req->status = VIRTIO_BLK_S_IOERR;
			break;
		}
	}
	if (!bio)
		return req->status;
	vhost_blk_submit(req, bio);
	return VHOST_BLK_IN_FLIGHT;
}

/* Takes the status byte off the end of the device-writable buffers. */
static u8 __user *vhost_blk_take_status(struct iovec *iov, unsigned int *nr)
{
	u8 __user *status;

	while (*nr && !iov[*nr - 1].iov_len)
		--*nr;
	if (!*nr)
		return NULL;
	status = (u8 __user *)iov[*nr - 1].iov_base + --iov[*nr - 1].iov_len;
	if (!iov[*nr - 1].iov_len)
		--*nr;
	return status;
}

/*
 * The guest-physical address of the status byte: the last byte of the last
 * device-writable descriptor (the core logs only descriptors that have
 * bytes), where take_status found it.
 */
static bool vhost_blk_status_log(struct vhost_blk_req *req,
				 const struct vhost_log *log, unsigned int log_num)
{
	if (!log_num)
		return false;
	req->status_log.addr = log[log_num - 1].addr + log[log_num - 1].len - 1;
	req->status_log.len = 1;
	return true;
}

/* Whether @mem more bytes fit the queue's budget now; anything fits an idle queue. */
static bool vhost_blk_mem_fits(const struct vhost_blk_vq *bvq, size_t mem)
{
	return !bvq->mem_used ||
	       mem <= bvq->mem_budget - min(bvq->mem_used, bvq->mem_budget);
}

/**
 * vhost_blk_admit() - charge a request's allocations to its queue's budget
 * @bvq: the queue
 * @req: the request
 * @mem: bytes it will allocate
 *
 * A request that does not fit while others hold memory must wait for their
 * completion; with nothing held, any request fits, so the queue always
 * makes progress. A bounced request never needs more than the budget (one
 * that would fails), so what a queue holds beyond its budget is at most
 * one direct request's bio_vec table (1 MiB).
 *
 * Return: true when admitted (@mem charged), false when it must wait.
 */
static bool vhost_blk_admit(struct vhost_blk_vq *bvq, struct vhost_blk_req *req,
			    size_t mem)
{
	if (mem && !vhost_blk_mem_fits(bvq, mem)) {
		bvq->mem_wanted = mem;
		return false;
	}
	bvq->mem_used += mem;
	req->mem = mem;
	return true;
}

/**
 * vhost_blk_req_start() - parse a descriptor chain and start its request
 * @bvq: the queue
 * @be: the backend
 * @head: the chain's head, from vhost_get_vq_desc()
 * @out: driver-readable entries at the start of vq->iov
 * @in: device-writable entries after them
 * @log: the device-writable buffers' guest-physical ranges, or NULL
 * @log_num: entries in @log
 *
 * The request is checked first; only one that will reach the block device
 * is charged what it allocates, and one that does not fit its queue's
 * budget now is left alone.
 *
 * Return: false when the request must wait (nothing was done: the caller
 * gives the chain back to the avail ring), for memory or for the queue's
 * polled bios (@bvq->held); true when it is in flight or done.
 */
static bool vhost_blk_req_start(struct vhost_blk_vq *bvq,
				struct vhost_blk_backend *be, unsigned int head,
				unsigned int out, unsigned int in,
				struct vhost_log *log, unsigned int log_num)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	struct vhost_blk_req *req = &bvq->reqs[head];
	struct virtio_blk_outhdr hdr;
	struct iov_iter hdr_iter, in_iter;
	size_t out_len = iov_length(vq->iov, out);
	size_t in_len = iov_length(vq->iov + out, in);
	u8 status = VIRTIO_BLK_S_IOERR;
	bool parsed = false, ok = false;
	size_t mem = 0;
	u64 sector = 0;
	u32 type = 0;

	req->head = head;
	req->status = VIRTIO_BLK_S_OK;
	req->kind = VHOST_BLK_KIND_OTHER;
	req->type = 0;
	req->sector = 0;
	req->data_len = 0;
	req->start_ns = ktime_get_ns();
	req->to_guest = false;
	req->bounced = false;
	req->logged = false;
	req->written = 0;
	req->nvecs = 0;
	req->bvecs = req->inline_vecs;
	req->log = NULL;
	req->log_num = 0;
	req->mem = 0;
	req->polled = false;
	req->retry = false;

	req->status_addr = vhost_blk_take_status(vq->iov + out, &in);
	if (!req->status_addr) {
		vq_err(vq, "vhost-blk: request %u has no status byte\n", head);
		vhost_blk_count_driver_error(bvq);
		goto start;
	}
	/* The status byte is logged whatever else happens. */
	if (log)
		req->logged = vhost_blk_status_log(req, log, log_num);
	in_len--;

	iov_iter_init(&hdr_iter, ITER_SOURCE, vq->iov, out, out_len);
	iov_iter_init(&in_iter, ITER_DEST, vq->iov + out, in, in_len);
	if (copy_from_iter(&hdr, sizeof(hdr), &hdr_iter) != sizeof(hdr))
		goto start;
	type = vhost32_to_cpu(vq, hdr.type);
	sector = vhost64_to_cpu(vq, hdr.sector);
	parsed = true;
	req->kind = vhost_blk_kind(type);
	req->type = type;
	req->sector = sector;
	/* A bio other than a read or write could sleep: after the polled ones. */
	if (bvq->npolled && vhost_blk_other_bio(type)) {
		bvq->held = true;
		return false;
	}

	/* Reads and writes that will reach the device, and what they allocate. */
	switch (type) {
	case VIRTIO_BLK_T_IN:
		req->to_guest = true;
		req->data_len = iov_iter_count(&in_iter);
		ok = !iov_iter_count(&hdr_iter) && vhost_blk_rw_ok(be, sector, &in_iter);
		if (ok)
			mem = vhost_blk_rw_mem(req, be, &in_iter);
		break;
	case VIRTIO_BLK_T_OUT:
		req->data_len = iov_iter_count(&hdr_iter);
		ok = !in_len && !bvq->blk->force_ro &&
		     !vhost_blk_backend_read_only(be) &&
		     vhost_blk_rw_ok(be, sector, &hdr_iter);
		if (ok)
			mem = vhost_blk_rw_mem(req, be, &hdr_iter);
		break;
	}
	/* A bounced request larger than the whole budget would never fit. */
	if (req->bounced && mem > bvq->mem_budget) {
		ok = false;
		mem = 0;
	}
	if ((type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID) &&
	    req->logged && in_len)
		mem += log_num * sizeof(*log);
	if (!vhost_blk_admit(bvq, req, mem))
		return false;

start:
	atomic_inc(&bvq->inflight);
	req->busy = true;
	trace_req_start(bvq->blk->id, bvq - bvq->blk->vqs, head, req->type,
			req->sector, req->data_len);
	if (!req->status_addr)
		goto done;
	/* Without a whole header the answer is IOERR. */
	if (!parsed)
		goto answer;
	/* The data pages the device writes are logged at completion. */
	if ((type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID) &&
	    req->logged && in_len) {
		req->log = kmemdup(log, log_num * sizeof(*log), VHOST_BLK_GFP);
		if (!req->log)
			goto answer;
		req->log_num = log_num;
	}

	switch (type) {
	case VIRTIO_BLK_T_IN:
		if (ok)
			status = vhost_blk_rw(req, be, &in_iter);
		break;
	case VIRTIO_BLK_T_OUT:
		if (ok)
			status = vhost_blk_rw(req, be, &hdr_iter);
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (!in_len && !iov_iter_count(&hdr_iter))
			status = vhost_blk_flush(req, be);
		break;
	case VIRTIO_BLK_T_GET_ID:
		if (!iov_iter_count(&hdr_iter))
			status = vhost_blk_get_id(req, &in_iter);
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
	case VIRTIO_BLK_T_SECURE_ERASE:
		if (!in_len && !bvq->blk->force_ro && !vhost_blk_backend_read_only(be))
			status = vhost_blk_range(req, be, type, &hdr_iter);
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (status == VHOST_BLK_IN_FLIGHT)
		return true;
answer:
	req->status = status;
done:
	vhost_blk_req_done(req);
	return true;
}

/*
 * Releases what a request holds; returns the used length to report. A
 * status byte that cannot be written (the driver unmapped it) counts in
 * @counts as a driver error.
 */
static u32 vhost_blk_req_finish(struct vhost_blk_req *req,
				struct vhost_blk_counts *counts)
{
	struct vhost_blk_vq *bvq = req->bvq;
	struct vhost_virtqueue *vq = &bvq->vq;
	u32 len = 0;

	req->busy = false;
	if (req->nvecs)
		vhost_blk_release_pages(req);
	if (req->status_addr) {
		if (put_user(req->status, req->status_addr)) {
			vq_err(vq, "vhost-blk: cannot write status of request %u\n",
			       req->head);
			counts->c[VHOST_BLK_C_DRIVER_ERRORS]++;
		}
		len = 1 + (req->status == VIRTIO_BLK_S_OK ? req->written : 0);
	}
	/* The data, then the status byte: log them, then the used ring. */
	if (req->log) {
		if (req->written && VHOST_BLK_LOG_DATA)
			vhost_log_write(vq, req->log, req->log_num, req->written,
					NULL, 0);
		kfree(req->log);
		req->log = NULL;
	}
	if (req->logged)
		vhost_log_write(vq, &req->status_log, 1, 1, NULL, 0);
	bvq->mem_used -= req->mem;
	req->mem = 0;
	return len;
}

/*
 * Counts a request on its way to the used ring in @counts, its time since
 * it left the avail ring measured against @now.
 */
static void vhost_blk_count_req(struct vhost_blk_counts *counts,
				const struct vhost_blk_req *req, u64 now)
{
	u64 us = (now - req->start_ns) / NSEC_PER_USEC;
	unsigned int bucket = us > 1 ? ilog2(us) : 0;
	u64 *c = counts->c;

	c[VHOST_BLK_C_REQ + req->kind]++;
	switch (req->status) {
	case VIRTIO_BLK_S_OK:
		if (req->kind == VHOST_BLK_KIND_IN)
			c[VHOST_BLK_C_SECTORS_READ] += req->data_len >> SECTOR_SHIFT;
		else if (req->kind == VHOST_BLK_KIND_OUT)
			c[VHOST_BLK_C_SECTORS_WRITTEN] += req->data_len >> SECTOR_SHIFT;
		break;
	case VIRTIO_BLK_S_UNSUPP:
		c[VHOST_BLK_C_ERR_UNSUPP]++;
		break;
	default:
		c[VHOST_BLK_C_ERR_IOERR]++;
		break;
	}
	if (req->bounced) {
		c[VHOST_BLK_C_BOUNCED_REQS]++;
		c[VHOST_BLK_C_BOUNCED_BYTES] += req->data_len;
	}
	c[VHOST_BLK_C_LATENCY + min(bucket, VHOST_BLK_LAT_BUCKETS - 1)]++;
}

/*
 * Whether the driver wants an interrupt for the used entries just added:
 * the rule of virtio (event index, or the NO_INTERRUPT flag) that the vhost
 * core applies in vhost_notify() without telling whether it signalled,
 * which the interrupt counter needs. The core reads the avail ring through
 * its IOTLB; the device offers neither VIRTIO_F_ACCESS_PLATFORM nor
 * VHOST_BACKEND_F_IOTLB_MSG_V2, so the ring is a plain address of the
 * owner's, which the caller runs in. Caller holds the queue mutex.
 */
static bool vhost_blk_need_signal(struct vhost_virtqueue *vq)
{
	__virtio16 flags, event;
	u16 old, new;
	bool valid;

	/* The used index is visible before the driver's wishes are read. */
	smp_mb();
	if (vhost_has_feature(vq, VIRTIO_F_NOTIFY_ON_EMPTY) &&
	    unlikely(vq->avail_idx == vq->last_avail_idx))
		return true;
	if (!vhost_has_feature(vq, VIRTIO_RING_F_EVENT_IDX)) {
		if (get_user(flags, &vq->avail->flags)) {
			vq_err(vq, "vhost-blk: cannot read avail flags\n");
			return true;
		}
		return !(flags & cpu_to_vhost16(vq, VRING_AVAIL_F_NO_INTERRUPT));
	}
	old = vq->signalled_used;
	valid = vq->signalled_used_valid;
	new = vq->last_used_idx;
	vq->signalled_used = new;
	vq->signalled_used_valid = true;
	if (unlikely(!valid))
		return true;
	/* used_event follows the avail ring's entries. */
	if (get_user(event, &vq->avail->ring[vq->num])) {
		vq_err(vq, "vhost-blk: cannot read used event\n");
		return true;
	}
	return vring_need_event(vhost16_to_cpu(vq, event), new, old);
}

/*
 * Adds @n used entries and signals the driver when it wants that, counting
 * both in @counts. Caller holds the queue mutex.
 */
static void vhost_blk_add_used(struct vhost_blk_vq *bvq,
			       struct vring_used_elem *heads, unsigned int n,
			       struct vhost_blk_counts *counts)
{
	struct vhost_virtqueue *vq = &bvq->vq;

	vhost_add_used_n(vq, heads, n);
	counts->c[VHOST_BLK_C_USED_BATCHES]++;
	if (vq->call_ctx.ctx && vhost_blk_need_signal(vq)) {
		vhost_blk_eventfd_signal(vq->call_ctx.ctx);
		counts->c[VHOST_BLK_C_INTERRUPTS]++;
	}
}

/*
 * Reports every request completed so far with one used-ring update and one
 * interrupt (more only when the batch exceeds the heads array), then
 * restarts a ring that waits for the memory the batch gave back. A polled
 * bio the block layer refused is parked instead. Caller holds the queue
 * mutex.
 */
static void vhost_blk_report(struct vhost_blk_vq *bvq)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	struct vring_used_elem *heads = vq->heads;
	struct vhost_blk_counts counts = {};
	struct vhost_blk_req *req, *tmp;
	struct llist_node *done;
	int n = 0, total = 0;
	u64 now;

	done = llist_del_all(&bvq->completed);
	if (!done)
		return;

	now = ktime_get_ns();
	llist_for_each_entry_safe(req, tmp, llist_reverse_order(done), node) {
		if (req->polled) {
			list_del(&req->poll_node);
			WRITE_ONCE(bvq->npolled, bvq->npolled - 1);
			req->polled = false;
			if (unlikely(req->retry)) {
				req->retry = false;
				list_add_tail(&req->poll_node, &bvq->parked);
				WRITE_ONCE(bvq->nparked, bvq->nparked + 1);
				continue;
			}
			counts.c[VHOST_BLK_C_POLLED]++;
		}
		heads[n].id = cpu_to_vhost32(vq, req->head);
		heads[n].len = cpu_to_vhost32(vq, vhost_blk_req_finish(req, &counts));
		vhost_blk_count_req(&counts, req, now);
		trace_req_done(bvq->blk->id, bvq - bvq->blk->vqs, req->head,
			       req->type, req->sector, req->data_len,
			       req->status, now - req->start_ns);
		if (++n == vq->dev->iov_limit) {
			vhost_blk_add_used(bvq, heads, n, &counts);
			total += n;
			n = 0;
		}
	}
	if (n)
		vhost_blk_add_used(bvq, heads, n, &counts);
	vhost_blk_stats_add(&bvq->stats, &counts);
	if (bvq->mem_wanted && vhost_blk_mem_fits(bvq, bvq->mem_wanted)) {
		bvq->mem_wanted = 0;
		vhost_poll_queue(&vq->poll);
	}
	if (atomic_sub_and_test(total + n, &bvq->inflight))
		wake_up_var(&bvq->inflight);
}

/**
 * vhost_blk_take_requests() - start the requests in the avail ring
 * @bvq: the queue
 * @be: its backend
 * @count: requests taken in this pass so far, for vhost_exceeds_weight()
 * @bytes: their bytes, likewise
 *
 * One block plug covers the batch, so the bios are on their way when this
 * returns. Caller holds the queue mutex and has notifications off.
 *
 * Return: true when the ring is empty; false when the pass must end with
 * requests left in it: the weight is reached (vhost_exceeds_weight()
 * requeued the kick handler), a request waits for memory (the completion
 * that frees it requeues it) or for the polled bios (@bvq->held), or the
 * driver broke the ring.
 */
static bool vhost_blk_take_requests(struct vhost_blk_vq *bvq,
				    struct vhost_blk_backend *be,
				    int *count, size_t *bytes)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	unsigned int out, in, log_num;
	struct mem_cgroup *old_memcg;
	struct vhost_log *log;
	struct blk_plug plug;
	bool empty = false;
	size_t len;
	int head;

	old_memcg = set_active_memcg(bvq->blk->memcg);
	log = unlikely(vhost_has_feature(vq, VHOST_F_LOG_ALL)) ? vq->log : NULL;
	blk_start_plug(&plug);
	for (;;) {
		/* Parked requests go first, once the polled bios are reaped. */
		if (unlikely(bvq->nparked)) {
			bvq->held = true;
			break;
		}
		head = vhost_get_vq_desc(vq, vq->iov, ARRAY_SIZE(vq->iov),
					 &out, &in, log, &log_num);
		/* The core refused the chain (and said why with vq_err()). */
		if (unlikely(head < 0)) {
			vhost_blk_count_driver_error(bvq);
			break;
		}
		if (head == vq->num) {
			empty = true;
			break;
		}
		/* A head is the driver's until the device returns it. */
		if (unlikely(bvq->reqs[head].busy)) {
			vq_err(vq, "vhost-blk: head %d is already in flight\n", head);
			vhost_blk_count_driver_error(bvq);
			vhost_discard_vq_desc(vq, 1);
			break;
		}
		len = iov_length(vq->iov, out + in);
		if (!vhost_blk_req_start(bvq, be, head, out, in, log, log_num)) {
			vhost_discard_vq_desc(vq, 1);
			break;
		}
		*bytes += len;
		if (vhost_exceeds_weight(vq, ++*count, *bytes))
			break;
	}
	blk_finish_plug(&plug);
	set_active_memcg(old_memcg);
	return empty;
}

/**
 * vhost_blk_busy_poll() - wait for the driver without sleeping
 * @bvq: the queue, notifications off
 * @can_take: the queue has a backend: requests in the avail ring end the
 *	wait
 *
 * Spins for up to the queue's busy-loop timeout (VHOST_SET_VRING_BUSYLOOP_-
 * TIMEOUT, microseconds) until the driver offers a request, reporting the
 * completions that arrive meanwhile; each report starts the timeout again,
 * since the driver answers completions with requests. Polled bios are
 * polled here, and while there are any the timeout does not end the wait.
 * Gives up early when the CPU is wanted: the scheduler asks for it, a
 * signal is pending (the owner is being killed), the worker has other
 * work, or the device stops. Caller holds the queue mutex.
 *
 * Return: true when the avail ring has requests to take, or the last
 * polled bio is reaped and requests wait for that; false otherwise.
 */
static bool vhost_blk_busy_poll(struct vhost_blk_vq *bvq, bool can_take)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	u64 timeout = (u64)vq->busyloop_timeout * NSEC_PER_USEC;
	u64 end = local_clock() + timeout;
	bool waiting;

	for (;;) {
		if (bvq->npolled)
			vhost_blk_poll_bios(bvq);
		if (!llist_empty(&bvq->completed)) {
			vhost_blk_report(bvq);
			end = local_clock() + timeout;
		}
		waiting = bvq->held || bvq->nparked;
		if (!bvq->npolled) {
			if (waiting)
				return true;
			if (local_clock() >= end)
				return false;
		}
		if (can_take && !waiting && !vhost_vq_avail_empty(vq->dev, vq))
			return true;
		if (need_resched() || signal_pending(current) ||
		    !READ_ONCE(bvq->blk->running) || vhost_blk_vq_has_work(vq))
			return false;
		cpu_relax();
	}
}

/**
 * vhost_blk_serve() - one pass of a queue's worker
 * @bvq: the queue
 * @kicked: the driver kicked (or a request waits in the ring): take requests
 *
 * Reports what completed, takes what the driver offers, and reports what
 * completed while the bios were submitted (a device that completes at
 * once then costs no second wake-up of the worker). With a busy-loop
 * timeout, or polled bios in flight, it then polls the ring and the
 * completions, notifications still off, before it gives the driver
 * notifications back and looks at the ring a last time. Completions that
 * arrive while the worker is here are left to it (@bvq->serving) rather
 * than queued as work; polled bios still in flight when it leaves queue
 * that work, for the worker to come back to them. Caller holds the queue
 * mutex.
 */
static void vhost_blk_serve(struct vhost_blk_vq *bvq, bool kicked)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	struct vhost_blk_backend *be = vhost_vq_get_backend(vq);
	bool can_take = be, take = kicked && be, notify_off = false;
	size_t bytes = 0;
	int count = 0;

	WRITE_ONCE(bvq->serving, true);
	for (;;) {
		vhost_blk_report(bvq);
		/* What waited for the polled bios, once they are reaped. */
		if (!bvq->npolled) {
			vhost_blk_submit_parked(bvq);
			if (bvq->held) {
				bvq->held = false;
				take = can_take;
			}
		}
		if (take) {
			if (!notify_off) {
				vhost_disable_notify(vq->dev, vq);
				notify_off = true;
			}
			take = false;
			if (vhost_blk_take_requests(bvq, be, &count, &bytes) ||
			    bvq->held)
				continue;
			vhost_blk_report(bvq);
			break;
		}
		if (bvq->npolled || (be && vq->busyloop_timeout)) {
			if (!notify_off) {
				vhost_disable_notify(vq->dev, vq);
				notify_off = true;
			}
			if (vhost_blk_busy_poll(bvq, can_take)) {
				take = can_take;
				continue;
			}
		}
		if (notify_off) {
			notify_off = false;
			if (unlikely(vhost_enable_notify(vq->dev, vq))) {
				take = can_take;
				continue;
			}
		}
		break;
	}
	/* What completed after the last look, unless its work was queued. */
	for (;;) {
		WRITE_ONCE(bvq->serving, false);
		/* Pairs with llist_add() in vhost_blk_req_done(). */
		smp_mb();
		if (llist_empty(&bvq->completed))
			break;
		WRITE_ONCE(bvq->serving, true);
		vhost_blk_report(bvq);
	}
	/* Only polling completes polled bios: back after the other work. */
	if (bvq->npolled || bvq->nparked)
		vhost_blk_vq_work_queue(vq, &bvq->complete_work);
}

/**
 * vhost_blk_handle_kick() - serve a queue's avail ring
 * @work: the queue's poll work, run on the queue's worker
 *
 * vhost_exceeds_weight() ends the pass (and requeues it) so one busy
 * queue cannot starve the others. A request that does not fit the queue's
 * memory budget ends the pass too: it stays in the avail ring, and the
 * completion that frees memory requeues the pass. Allocations are charged
 * to the owner's memory cgroup: the worker may be a kernel thread, which
 * would charge nobody.
 */
void vhost_blk_handle_kick(struct vhost_work *work)
{
	struct vhost_virtqueue *vq = container_of(work, struct vhost_virtqueue,
						  poll.work);
	struct vhost_blk_vq *bvq = container_of(vq, struct vhost_blk_vq, vq);

	mutex_lock(&vq->mutex);
	if (vhost_vq_get_backend(vq)) {
		vhost_blk_stats_inc(&bvq->stats, VHOST_BLK_C_KICKS);
		/* The worker that serves the queue, for the netlink family. */
		if (unlikely(READ_ONCE(bvq->worker_tid) != current->pid))
			WRITE_ONCE(bvq->worker_tid, current->pid);
		vhost_blk_serve(bvq, true);
	}
	mutex_unlock(&vq->mutex);
}

/**
 * vhost_blk_complete_work() - report completed requests in the used ring
 * @work: the queue's completion work, run on the queue's worker
 *
 * Queued by a completion that found the worker elsewhere, or by a pass
 * that left polled bios in flight; with a busy-loop timeout the worker
 * goes on polling the queue from here.
 */
void vhost_blk_complete_work(struct vhost_work *work)
{
	struct vhost_blk_vq *bvq = container_of(work, struct vhost_blk_vq,
						complete_work);

	if (llist_empty(&bvq->completed) && !READ_ONCE(bvq->npolled) &&
	    !READ_ONCE(bvq->nparked))
		return;
	mutex_lock(&bvq->vq.mutex);
	vhost_blk_serve(bvq, false);
	mutex_unlock(&bvq->vq.mutex);
}

/* The completion work of a queue whose worker is gone, on a kworker. */
struct vhost_blk_orphans {
	struct work_struct work;
	struct vhost_blk_vq *bvq;
};

static void vhost_blk_orphans_work(struct work_struct *work)
{
	struct vhost_blk_orphans *orphans =
		container_of(work, struct vhost_blk_orphans, work);
	struct mm_struct *mm = orphans->bvq->blk->dev.mm;

	kthread_use_mm(mm);
	vhost_blk_complete_work(&orphans->bvq->complete_work);
	kthread_unuse_mm(mm);
}

/**
 * vhost_blk_finish_stopped() - serve a stopped queue on a kernel worker
 * @bvq: the queue, being stopped, whose worker may be gone
 *
 * Since 6.10 the workers, threads of the owner, exit when it is killed; the
 * completions that could not be queued after that wait in @bvq->completed
 * (@bvq->orphaned), and polled bios wait for a poll that no worker makes.
 * A kernel worker thread that borrows the owner's address space (the vhost
 * core holds it until the device is cleaned up, so it is still there)
 * makes one pass of the queue as its worker would: it polls, submits what
 * is parked, and reports what completed in the used ring with its status,
 * data and dirty log. A front-end that reads the ring once the owner is
 * gone (a vhost-user front-end whose back-end was killed) finds every
 * request the device took in it, never a hole. Called by the stopping
 * task, which may have no address space of its own (the owner exiting),
 * with dev.mutex held; returns once the pass is over.
 */
void vhost_blk_finish_stopped(struct vhost_blk_vq *bvq)
{
	struct vhost_blk_orphans orphans = { .bvq = bvq };

	lockdep_assert_held(&bvq->blk->dev.mutex);
	INIT_WORK_ONSTACK(&orphans.work, vhost_blk_orphans_work);
	queue_work(vhost_blk_wq, &orphans.work);
	flush_work(&orphans.work);
	destroy_work_on_stack(&orphans.work);
}
