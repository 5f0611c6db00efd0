// SPDX-License-Identifier: GPL-2.0
/*
 * vblk: a virtio-blk driver in a process. See vblk.h for the layers.
 *
 * Guest memory is a memfd mapped MAP_SHARED, not private anonymous memory:
 * tests fork (to call ioctls as a process that is not the owner), and a
 * private mapping would turn copy-on-write in the owner after fork, so the
 * pages the vhost worker writes through the owner's mm could stop being the
 * pages the test reads. A shared mapping has no copy-on-write, and the memfd
 * can also be handed to another process (a vhost-user backend, say), as
 * QEMU's memory-backend-memfd share=on does.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/loop.h>

#include "vblk.h"

#define ALIGN_UP(x, a)		(((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define DIV_ROUND_UP(n, d)	(((n) + (d) - 1) / (d))

/* How long destroy keeps retrying a device that is still busy. */
#define BUSY_RETRY_MS		5000

static int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

int64_t vblk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------
 * Guest memory
 */

int vblk_mem_init(struct vblk_mem *mem, size_t size, unsigned int nregions)
{
	size_t half;

	memset(mem, 0, sizeof(*mem));
	mem->fd = -1;
	pthread_mutex_init(&mem->lock, NULL);
	if (nregions < 1 || nregions > 2)
		return -EINVAL;
	size = ALIGN_UP(size, 2 * VBLK_PAGE_SIZE);
	mem->fd = memfd_create("vblk-guest", MFD_CLOEXEC);
	if (mem->fd < 0)
		return neg_errno();
	if (ftruncate(mem->fd, size))
		goto fail;
	mem->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			mem->fd, 0);
	if (mem->map == MAP_FAILED) {
		mem->map = NULL;
		goto fail;
	}
	mem->size = size;
	mem->nregions = nregions;
	if (nregions == 1) {
		mem->regions[0] = (struct vblk_region){
			.hva = mem->map, .gpa = VBLK_GPA_BASE, .size = size,
		};
		return 0;
	}
	half = size / 2;
	mem->regions[0] = (struct vblk_region){
		.hva = mem->map + half, .gpa = VBLK_GPA_BASE, .size = half,
	};
	mem->regions[1] = (struct vblk_region){
		.hva = mem->map, .gpa = VBLK_GPA_BASE + half + VBLK_GPA_HOLE,
		.size = half,
	};
	return 0;
fail:
	vblk_mem_cleanup(mem);
	return -ENOMEM;
}

void vblk_mem_cleanup(struct vblk_mem *mem)
{
	if (mem->map)
		munmap(mem->map, mem->size);
	if (mem->fd >= 0)
		close(mem->fd);
	pthread_mutex_destroy(&mem->lock);
	memset(mem, 0, sizeof(*mem));
	mem->fd = -1;
	pthread_mutex_init(&mem->lock, NULL);
}

int vblk_mem_alloc_in(struct vblk_mem *mem, unsigned int region, size_t len,
		      size_t align, struct vblk_buf *buf)
{
	struct vblk_region *r = &mem->regions[region];
	size_t off;

	if (!align)
		align = 1;
	if ((align & (align - 1)) || region >= mem->nregions)
		return -EINVAL;
	pthread_mutex_lock(&mem->lock);
	off = ALIGN_UP(r->used, align);
	if (off > r->size || r->size - off < len) {
		pthread_mutex_unlock(&mem->lock);
		return -ENOMEM;
	}
	r->used = off + len;
	pthread_mutex_unlock(&mem->lock);
	buf->hva = r->hva + off;
	buf->gpa = r->gpa + off;
	buf->len = len;
	memset(buf->hva, 0, len);
	return 0;
}

int vblk_mem_alloc(struct vblk_mem *mem, size_t len, size_t align,
		   struct vblk_buf *buf)
{
	unsigned int i;
	int ret = -ENOMEM;

	for (i = 0; i < mem->nregions && ret == -ENOMEM; i++)
		ret = vblk_mem_alloc_in(mem, i, len, align, buf);
	return ret;
}

struct vblk_mem_mark vblk_mem_mark(const struct vblk_mem *mem)
{
	return (struct vblk_mem_mark){
		.used = { mem->regions[0].used, mem->regions[1].used },
	};
}

void vblk_mem_release(struct vblk_mem *mem, struct vblk_mem_mark mark)
{
	mem->regions[0].used = mark.used[0];
	mem->regions[1].used = mark.used[1];
}

uint64_t vblk_mem_gpa(const struct vblk_mem *mem, const void *hva)
{
	const uint8_t *p = hva;
	unsigned int i;

	for (i = 0; i < mem->nregions; i++) {
		const struct vblk_region *r = &mem->regions[i];

		if (p >= r->hva && p < r->hva + r->size)
			return r->gpa + (uint64_t)(p - r->hva);
	}
	return VBLK_GPA_INVALID;
}

void *vblk_mem_hva(const struct vblk_mem *mem, uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < mem->nregions; i++) {
		const struct vblk_region *r = &mem->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

uint64_t vblk_mem_gpa_end(const struct vblk_mem *mem)
{
	uint64_t end = 0;
	unsigned int i;

	for (i = 0; i < mem->nregions; i++) {
		uint64_t e = mem->regions[i].gpa + mem->regions[i].size;

		if (e > end)
			end = e;
	}
	return end;
}

struct vblk_buf vblk_buf_slice(const struct vblk_buf *buf, size_t off,
			       size_t len)
{
	if (off > buf->len)
		off = buf->len;
	if (len > buf->len - off)
		len = buf->len - off;
	return (struct vblk_buf){
		.hva = (uint8_t *)buf->hva + off, .gpa = buf->gpa + off,
		.len = len,
	};
}

size_t vblk_bufs_len(const struct vblk_buf *bufs, unsigned int n)
{
	size_t len = 0;
	unsigned int i;

	for (i = 0; i < n; i++)
		len += bufs[i].len;
	return len;
}

void vblk_bufs_gather(const struct vblk_buf *bufs, unsigned int n, void *dst)
{
	uint8_t *p = dst;
	unsigned int i;

	for (i = 0; i < n; p += bufs[i].len, i++)
		memcpy(p, bufs[i].hva, bufs[i].len);
}

void vblk_bufs_scatter(const struct vblk_buf *bufs, unsigned int n,
		       const void *src)
{
	const uint8_t *p = src;
	unsigned int i;

	for (i = 0; i < n; p += bufs[i].len, i++)
		memcpy(bufs[i].hva, p, bufs[i].len);
}

/* ------------------------------------------------------------------------
 * Queues: the raw interface
 */

/* Ring fields the device writes: read them once, fresh. */
static uint16_t ring_load16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static uint16_t *avail_event(struct vblk_queue *q)
{
	return (uint16_t *)&q->vr.used->ring[q->num];
}

static uint16_t *used_event(struct vblk_queue *q)
{
	return &q->vr.avail->ring[q->num];
}

void vblk_queue_set_desc(struct vblk_queue *q, uint16_t i, uint64_t addr,
			 uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc *d = &q->vr.desc[i % q->num];

	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

int vblk_queue_take_descs(struct vblk_queue *q, unsigned int n, uint16_t *ids)
{
	unsigned int i;

	if (n > q->nfree)
		return -ENOSPC;
	for (i = 0; i < n; i++)
		ids[i] = q->free[--q->nfree];
	return 0;
}

void vblk_queue_put_descs(struct vblk_queue *q, unsigned int n,
			  const uint16_t *ids)
{
	unsigned int i;

	for (i = 0; i < n && q->nfree < q->num; i++)
		q->free[q->nfree++] = ids[i];
}

void vblk_queue_publish(struct vblk_queue *q, uint16_t head)
{
	q->vr.avail->ring[q->avail_idx % q->num] = htole16(head);
	q->avail_idx++;
	/* The entry (and the chain behind it) before the index. */
	__atomic_store_n(&q->vr.avail->idx, htole16(q->avail_idx),
			 __ATOMIC_RELEASE);
}

int vblk_queue_notify(struct vblk_queue *q)
{
	uint64_t one = 1;

	if (write(q->kick_fd, &one, sizeof(one)) != sizeof(one))
		return neg_errno();
	q->kicks++;
	return 0;
}

int vblk_queue_kick(struct vblk_queue *q)
{
	uint16_t old = q->kick_idx, new = q->avail_idx;
	bool need;
	int ret;

	/* The new avail->idx must be visible before we read the device's
	 * wish, or both sides could skip the notification. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->kick_idx = new;
	if (q->event_idx)
		need = vring_need_event(ring_load16(avail_event(q)), new, old);
	else
		need = !(ring_load16(&q->vr.used->flags) &
			 VRING_USED_F_NO_NOTIFY);
	if (!need) {
		q->kicks_suppressed++;
		return 0;
	}
	ret = vblk_queue_notify(q);
	return ret ? ret : 1;
}

unsigned int vblk_queue_used_pending(const struct vblk_queue *q)
{
	return (uint16_t)(ring_load16(&q->vr.used->idx) - q->used_idx);
}

/* 1 and the entry if one is there, 0 if none, -EPROTO if the index lies. */
static int pop_used(struct vblk_queue *q, struct vring_used_elem *elem)
{
	unsigned int pending = vblk_queue_used_pending(q);
	struct vring_used_elem *e;

	if (!pending)
		return 0;
	if (pending > q->num)
		return -EPROTO;
	e = &q->vr.used->ring[q->used_idx % q->num];
	elem->id = le32toh(e->id);
	elem->len = le32toh(e->len);
	q->used_idx++;
	return 1;
}

int vblk_queue_wait_used(struct vblk_queue *q, struct vring_used_elem *elem,
			 int timeout_ms)
{
	int64_t deadline = vblk_now_ms() + timeout_ms;
	struct pollfd pfd = { .fd = q->call_fd, .events = POLLIN };
	uint64_t v;
	int ret;

	for (;;) {
		ret = pop_used(q, elem);
		if (ret)
			return ret < 0 ? ret : 0;
		if (q->event_idx) {
			/* Ask for a call at the next entry, then look again:
			 * it may have arrived before the device saw this. */
			__atomic_store_n(used_event(q), htole16(q->used_idx),
					 __ATOMIC_RELAXED);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			ret = pop_used(q, elem);
			if (ret)
				return ret < 0 ? ret : 0;
		}
		timeout_ms = deadline - vblk_now_ms();
		if (timeout_ms <= 0)
			return -ETIMEDOUT;
		ret = poll(&pfd, 1, timeout_ms);
		if (ret < 0 && errno != EINTR)
			return neg_errno();
		if (ret > 0 && read(q->call_fd, &v, sizeof(v)) == sizeof(v))
			q->calls += v;
	}
}

uint64_t vblk_queue_errors(struct vblk_queue *q)
{
	uint64_t v;

	if (read(q->err_fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

int vblk_queue_wait_error(struct vblk_queue *q, int timeout_ms)
{
	struct pollfd pfd = { .fd = q->err_fd, .events = POLLIN };
	int ret;

	ret = poll(&pfd, 1, timeout_ms);
	if (ret < 0)
		return neg_errno();
	if (!ret)
		return -ETIMEDOUT;
	return (int)vblk_queue_errors(q);
}

int vblk_queue_device_avail(struct vblk_queue *q, uint16_t *idx)
{
	struct vhost_vring_state s = { .index = q->index };

	if (ioctl(q->dev->fd, VHOST_GET_VRING_BASE, &s))
		return neg_errno();
	*idx = s.num;
	return 0;
}

/* ------------------------------------------------------------------------
 * Requests
 */

void vblk_req_init(struct vblk_req *req, uint32_t type, uint64_t sector,
		   const struct vblk_buf *segs, unsigned int nsegs)
{
	memset(req, 0, sizeof(*req));
	req->type = type;
	req->sector = sector;
	req->segs = segs;
	req->nsegs = nsegs;
	req->status = VBLK_STATUS_NONE;
}

static unsigned int req_hdr_descs(const struct vblk_req *req)
{
	return req->hdr_descs ? req->hdr_descs : 1;
}

static unsigned int req_chain_len(const struct vblk_req *req)
{
	return req_hdr_descs(req) + req->nsegs + 1;
}

unsigned int vblk_req_ring_descs(const struct vblk_req *req)
{
	return req->indirect ? 1 : req_chain_len(req);
}

static bool req_data_in(const struct vblk_req *req)
{
	switch (req->dir) {
	case VBLK_DIR_IN:
		return true;
	case VBLK_DIR_OUT:
		return false;
	default:
		return req->type == VIRTIO_BLK_T_IN ||
		       req->type == VIRTIO_BLK_T_GET_ID;
	}
}

static uint8_t *meta_slot(struct vblk_queue *q, uint16_t head)
{
	return (uint8_t *)q->meta.hva + (size_t)head * VBLK_META_SLOT;
}

/* The indirect table of @head, grown to hold @n descriptors. */
static struct vblk_buf *indirect_table(struct vblk_queue *q, uint16_t head,
				       unsigned int n)
{
	struct vblk_buf *t = &q->tables[head];
	size_t want = ALIGN_UP((size_t)n, 32) * sizeof(struct vring_desc);

	if (t->len >= n * sizeof(struct vring_desc))
		return t;
	if (vblk_mem_alloc(&q->dev->mem, want, 16, t))
		return NULL;
	return t;
}

/* Piece @i of the chain of @req, whose header and status live at @gpa. */
static void req_piece(const struct vblk_req *req, unsigned int i, uint64_t gpa,
		      uint64_t *addr, uint32_t *len, uint16_t *flags)
{
	unsigned int hdrs = req_hdr_descs(req);
	unsigned int step = VBLK_HDR_SIZE / hdrs;

	if (i < hdrs) {
		*addr = gpa + i * step;
		*len = i + 1 < hdrs ? step : VBLK_HDR_SIZE - i * step;
		*flags = 0;
	} else if (i < hdrs + req->nsegs) {
		const struct vblk_buf *s = &req->segs[i - hdrs];

		*addr = s->gpa;
		*len = s->len;
		*flags = req_data_in(req) ? VRING_DESC_F_WRITE : 0;
	} else {
		*addr = gpa + VBLK_HDR_SIZE;
		*len = 1;
		*flags = VRING_DESC_F_WRITE;
	}
}

int vblk_queue_add(struct vblk_queue *q, struct vblk_req *req)
{
	unsigned int n = req_chain_len(req), i;
	struct virtio_blk_outhdr *hdr;
	struct vring_desc *table = NULL;
	uint16_t head, *ids;
	uint8_t *slot;

	if (req_hdr_descs(req) > VBLK_MAX_HDR_DESCS || n > 0xffff)
		return -EINVAL;
	for (i = 0; i < req->nsegs; i++)
		if (req->segs[i].len > UINT32_MAX)
			return -EINVAL;
	if (vblk_req_ring_descs(req) > q->nfree)
		return -ENOSPC;

	/* Descriptors come off the top of the free stack: ids[0] is the head. */
	ids = &q->free[q->nfree - 1];
	head = ids[0];
	if (req->indirect) {
		struct vblk_buf *t = indirect_table(q, head, n);

		if (!t)
			return -ENOMEM;
		table = t->hva;
		vblk_queue_set_desc(q, head, t->gpa,
				    n * sizeof(struct vring_desc),
				    VRING_DESC_F_INDIRECT, 0);
	}

	slot = meta_slot(q, head);
	hdr = (struct virtio_blk_outhdr *)slot;
	hdr->type = htole32(req->type);
	hdr->ioprio = htole32(req->ioprio);
	hdr->sector = htole64(req->sector);
	slot[VBLK_HDR_SIZE] = VBLK_STATUS_NONE;

	for (i = 0; i < n; i++) {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next = 0;

		req_piece(req, i, q->meta.gpa + (size_t)head * VBLK_META_SLOT,
			  &addr, &len, &flags);
		if (i + 1 < n) {
			flags |= VRING_DESC_F_NEXT;
			next = req->indirect ? i + 1 : *(ids - i - 1);
		}
		if (req->indirect) {
			table[i] = (struct vring_desc){
				.addr = htole64(addr), .len = htole32(len),
				.flags = htole16(flags), .next = htole16(next),
			};
		} else {
			vblk_queue_set_desc(q, *(ids - i), addr, len, flags,
					    next);
		}
	}
	q->nfree -= vblk_req_ring_descs(req);

	req->head = head;
	req->ndescs = vblk_req_ring_descs(req);
	req->done = false;
	req->status = VBLK_STATUS_NONE;
	req->used_len = 0;
	q->reqs[head] = req;
	q->inflight++;
	vblk_queue_publish(q, head);
	return 0;
}

int vblk_submit(struct vblk_queue *q, struct vblk_req *req)
{
	int ret = vblk_queue_add(q, req);

	if (ret)
		return ret;
	ret = vblk_queue_kick(q);
	return ret < 0 ? ret : 0;
}

int vblk_reap(struct vblk_queue *q, struct vblk_req **out, int timeout_ms)
{
	struct vring_used_elem e;
	struct vblk_req *req;
	uint16_t id;
	unsigned int i;
	int ret;

	ret = vblk_queue_wait_used(q, &e, timeout_ms);
	if (ret)
		return ret;
	/* The device may only return heads we made available. */
	if (e.id >= q->num || !q->reqs[e.id])
		return -EPROTO;
	req = q->reqs[e.id];
	q->reqs[e.id] = NULL;
	q->inflight--;

	id = req->head;
	for (i = 0; i < req->ndescs; i++) {
		q->free[q->nfree++] = id;
		id = le16toh(q->vr.desc[id].next);
	}
	req->status = meta_slot(q, req->head)[VBLK_HDR_SIZE];
	req->used_len = e.len;
	req->done = true;
	*out = req;
	return 0;
}

int vblk_wait(struct vblk_queue *q, struct vblk_req *req, int timeout_ms)
{
	int64_t deadline = vblk_now_ms() + timeout_ms;
	struct vblk_req *done;
	int ret;

	while (!req->done) {
		ret = vblk_reap(q, &done, deadline - vblk_now_ms());
		if (ret)
			return ret;
	}
	return 0;
}

int vblk_exec(struct vblk_queue *q, struct vblk_req *req)
{
	int ret;

	ret = vblk_submit(q, req);
	if (ret)
		return ret;
	ret = vblk_wait(q, req, q->dev->timeout_ms);
	return ret ? ret : req->status;
}

static int exec_one(struct vblk_queue *q, uint32_t type, uint64_t sector,
		    const struct vblk_buf *buf, unsigned int nsegs)
{
	struct vblk_req req;

	vblk_req_init(&req, type, sector, buf, nsegs);
	return vblk_exec(q, &req);
}

int vblk_read(struct vblk_queue *q, uint64_t sector, const struct vblk_buf *buf)
{
	return exec_one(q, VIRTIO_BLK_T_IN, sector, buf, 1);
}

int vblk_write(struct vblk_queue *q, uint64_t sector, const struct vblk_buf *buf)
{
	return exec_one(q, VIRTIO_BLK_T_OUT, sector, buf, 1);
}

int vblk_flush(struct vblk_queue *q)
{
	return exec_one(q, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
}

int vblk_get_id(struct vblk_queue *q, const struct vblk_buf *buf)
{
	return exec_one(q, VIRTIO_BLK_T_GET_ID, 0, buf, 1);
}

int vblk_ranges(struct vblk_queue *q, uint32_t type,
		const struct virtio_blk_discard_write_zeroes *ranges,
		unsigned int n)
{
	struct virtio_blk_discard_write_zeroes *r = q->scratch.hva;
	struct vblk_buf seg = vblk_buf_slice(&q->scratch, 0, n * sizeof(*r));
	unsigned int i;

	if (n * sizeof(*r) > q->scratch.len)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		r[i].sector = htole64(ranges[i].sector);
		r[i].num_sectors = htole32(ranges[i].num_sectors);
		r[i].flags = htole32(ranges[i].flags);
	}
	return exec_one(q, type, 0, &seg, 1);
}

int vblk_range(struct vblk_queue *q, uint32_t type, uint64_t sector,
	       uint32_t nsectors, uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes r = {
		.sector = sector, .num_sectors = nsectors, .flags = flags,
	};

	return vblk_ranges(q, type, &r, 1);
}

/* ------------------------------------------------------------------------
 * Devices
 */

static void queue_init(struct vblk_queue *q, struct vblk_dev *dev,
		       unsigned int index)
{
	memset(q, 0, sizeof(*q));
	q->dev = dev;
	q->index = index;
	q->kick_fd = -1;
	q->call_fd = -1;
	q->err_fd = -1;
}

int vblk_dev_open(struct vblk_dev *dev)
{
	unsigned int i;

	memset(dev, 0, sizeof(*dev));
	dev->mem.fd = -1;
	dev->timeout_ms = VBLK_TIMEOUT_MS;
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++)
		queue_init(&dev->queues[i], dev, i);
	dev->fd = open(VBLK_DEV_PATH, O_RDWR | O_CLOEXEC);
	if (dev->fd < 0)
		return neg_errno();
	dev->open = true;
	return 0;
}

static int dev_ioctl(struct vblk_dev *dev, unsigned long req, const void *arg)
{
	return ioctl(dev->fd, req, arg) ? neg_errno() : 0;
}

int vblk_dev_set_features(struct vblk_dev *dev, uint64_t features)
{
	int ret = dev_ioctl(dev, VHOST_SET_FEATURES, &features);

	if (!ret)
		dev->features = features;
	return ret;
}

int vblk_dev_new_worker(struct vblk_dev *dev, unsigned int *id)
{
	struct vhost_worker_state w = { 0 };
	int ret = dev_ioctl(dev, VHOST_NEW_WORKER, &w);

	if (!ret)
		*id = w.worker_id;
	return ret;
}

int vblk_dev_free_worker(struct vblk_dev *dev, unsigned int id)
{
	struct vhost_worker_state w = { .worker_id = id };

	return dev_ioctl(dev, VHOST_FREE_WORKER, &w);
}

int vblk_queue_attach_worker(struct vblk_dev *dev, unsigned int index,
			     unsigned int id)
{
	struct vhost_vring_worker w = { .index = index, .worker_id = id };

	return dev_ioctl(dev, VHOST_ATTACH_VRING_WORKER, &w);
}

int vblk_queue_get_worker(struct vblk_dev *dev, unsigned int index,
			  unsigned int *id)
{
	struct vhost_vring_worker w = { .index = index };
	int ret = dev_ioctl(dev, VHOST_GET_VRING_WORKER, &w);

	if (!ret)
		*id = w.worker_id;
	return ret;
}

int vblk_dev_get_features(struct vblk_dev *dev, uint64_t *features)
{
	return ioctl(dev->fd, VHOST_GET_FEATURES, features) ? neg_errno() : 0;
}

int vblk_dev_set_mem_table(struct vblk_dev *dev)
{
	struct vhost_memory *m;
	unsigned int i;
	int ret;

	m = calloc(1, sizeof(*m) + dev->mem.nregions * sizeof(m->regions[0]));
	if (!m)
		return -ENOMEM;
	m->nregions = dev->mem.nregions;
	for (i = 0; i < dev->mem.nregions; i++) {
		m->regions[i].guest_phys_addr = dev->mem.regions[i].gpa;
		m->regions[i].memory_size = dev->mem.regions[i].size;
		m->regions[i].userspace_addr =
			(uintptr_t)dev->mem.regions[i].hva;
	}
	ret = dev_ioctl(dev, VHOST_SET_MEM_TABLE, m);
	free(m);
	return ret;
}

int vblk_queue_set_addr(struct vblk_queue *q)
{
	struct vhost_vring_addr a = {
		.index = q->index,
		.flags = q->dev->logging ? 1U << VHOST_VRING_F_LOG : 0,
		/* The owner's addresses of the rings, not guest-physical. */
		.desc_user_addr = (uintptr_t)q->vr.desc,
		.avail_user_addr = (uintptr_t)q->vr.avail,
		.used_user_addr = (uintptr_t)q->vr.used,
		/* But the dirty log is indexed by guest-physical address. */
		.log_guest_addr = q->used_gpa,
	};

	return dev_ioctl(q->dev, VHOST_SET_VRING_ADDR, &a);
}

int vblk_queue_alloc(struct vblk_queue *q, unsigned int num)
{
	struct vblk_mem *mem = &q->dev->mem;
	unsigned int i;
	int ret;

	q->num = num;
	q->event_idx = q->dev->features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	ret = vblk_mem_alloc(mem, vring_size(num, VBLK_PAGE_SIZE),
			     VBLK_PAGE_SIZE, &q->ring);
	if (ret)
		return ret;
	vring_init(&q->vr, num, q->ring.hva, VBLK_PAGE_SIZE);
	q->used_gpa = vblk_mem_gpa(mem, q->vr.used);
	ret = vblk_mem_alloc(mem, (size_t)num * VBLK_META_SLOT, 64, &q->meta);
	if (ret)
		return ret;
	ret = vblk_mem_alloc(mem, VBLK_SCRATCH_SIZE, 64, &q->scratch);
	if (ret)
		return ret;
	q->free = calloc(num, sizeof(*q->free));
	q->reqs = calloc(num, sizeof(*q->reqs));
	q->tables = calloc(num, sizeof(*q->tables));
	if (!q->free || !q->reqs || !q->tables)
		return -ENOMEM;
	/* Stack, lowest index on top: chains start at descriptor 0. */
	for (i = 0; i < num; i++)
		q->free[i] = num - 1 - i;
	q->nfree = num;

	q->kick_fd = eventfd(0, EFD_CLOEXEC);
	q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->kick_fd < 0 || q->call_fd < 0 || q->err_fd < 0)
		return neg_errno();
	return 0;
}

/* VHOST_SET_VRING_KICK, _CALL and _ERR with the queue's eventfds. */
static int queue_set_eventfds(struct vblk_queue *q)
{
	const struct { unsigned long req; int fd; } fds[] = {
		{ VHOST_SET_VRING_KICK, q->kick_fd },
		{ VHOST_SET_VRING_CALL, q->call_fd },
		{ VHOST_SET_VRING_ERR, q->err_fd },
	};
	struct vhost_vring_file f = { .index = q->index };
	unsigned int i;
	int ret;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		f.fd = fds[i].fd;
		ret = dev_ioctl(q->dev, fds[i].req, &f);
		if (ret)
			return ret;
	}
	return 0;
}

int vblk_queue_setup(struct vblk_dev *dev, unsigned int index,
		     unsigned int num)
{
	struct vblk_queue *q;
	struct vhost_vring_state s;
	int ret;

	if (index >= VHOST_BLK_MAX_QUEUES || !num || num > 32768 ||
	    (num & (num - 1)))
		return -EINVAL;
	q = &dev->queues[index];
	if (q->ready)
		return -EBUSY;
	ret = vblk_queue_alloc(q, num);
	if (ret)
		return ret;

	s = (struct vhost_vring_state){ .index = index, .num = num };
	ret = dev_ioctl(dev, VHOST_SET_VRING_NUM, &s);
	if (ret)
		return ret;
	s.num = 0;
	ret = dev_ioctl(dev, VHOST_SET_VRING_BASE, &s);
	if (ret)
		return ret;
	ret = vblk_queue_set_addr(q);
	if (ret)
		return ret;
	ret = queue_set_eventfds(q);
	if (ret)
		return ret;
	q->ready = true;
	if (index >= dev->nqueues)
		dev->nqueues = index + 1;
	return 0;
}

int vblk_dev_setup(struct vblk_dev *dev, const struct vblk_opts *opts)
{
	static const struct vblk_opts defaults;
	unsigned int i, nqueues, qsize;
	int ret;

	if (!opts)
		opts = &defaults;
	nqueues = opts->nqueues ? opts->nqueues : 1;
	qsize = opts->queue_size ? opts->queue_size : VBLK_QUEUE_SIZE;
	if (nqueues > VHOST_BLK_MAX_QUEUES)
		return -EINVAL;

	ret = vblk_dev_open(dev);
	if (ret)
		return ret;
	/* More queues than a device has by default: ask for them first. */
	if (nqueues > VHOST_BLK_DEFAULT_QUEUES || opts->exact_queues) {
		ret = dev_ioctl(dev, VHOST_BLK_SET_NUM_QUEUES, &nqueues);
		if (ret)
			goto fail;
	}
	ret = dev_ioctl(dev, VHOST_SET_OWNER, NULL);
	if (ret)
		goto fail;
	/* Features first: the core sizes what it checks on them. */
	ret = vblk_dev_set_features(dev, (1ULL << VIRTIO_F_VERSION_1) |
					 opts->features);
	if (ret)
		goto fail;
	ret = vblk_mem_init(&dev->mem,
			    opts->mem_size ? opts->mem_size : VBLK_MEM_SIZE,
			    opts->nregions ? opts->nregions : 2);
	if (ret)
		goto fail;
	ret = vblk_dev_set_mem_table(dev);
	if (ret)
		goto fail;
	for (i = 0; i < nqueues; i++) {
		ret = vblk_queue_setup(dev, i, qsize);
		if (ret)
			goto fail;
	}
	/* Queue 0 keeps the worker VHOST_SET_OWNER made. */
	for (i = 1; opts->queue_workers && i < nqueues; i++) {
		unsigned int id;

		ret = vblk_dev_new_worker(dev, &id);
		/* A kernel with one worker per device. */
		if (ret == -ENOTTY && i == 1)
			break;
		if (!ret)
			ret = vblk_queue_attach_worker(dev, i, id);
		if (ret)
			goto fail;
		dev->nworkers++;
	}
	return 0;
fail:
	vblk_dev_close(dev);
	return ret;
}

int vblk_dev_start(struct vblk_dev *dev, const struct vblk_opts *opts,
		   const char *path, int open_flags)
{
	int fd, ret;

	ret = vblk_dev_setup(dev, opts);
	if (ret)
		return ret;
	fd = open(path, open_flags | O_CLOEXEC);
	if (fd < 0) {
		ret = neg_errno();
		goto fail;
	}
	ret = vblk_dev_set_backend(dev, fd);
	close(fd);
	if (!ret)
		return 0;
fail:
	vblk_dev_close(dev);
	return ret;
}

void vblk_dev_close(struct vblk_dev *dev)
{
	unsigned int i;

	if (!dev->open)
		return;
	/* Closing the device stops it before the memory goes away. */
	close(dev->fd);
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		struct vblk_queue *q = &dev->queues[i];

		if (q->kick_fd >= 0)
			close(q->kick_fd);
		if (q->call_fd >= 0)
			close(q->call_fd);
		if (q->err_fd >= 0)
			close(q->err_fd);
		free(q->free);
		free(q->reqs);
		free(q->tables);
		queue_init(q, dev, i);
	}
	vblk_mem_cleanup(&dev->mem);
	if (dev->log)
		munmap(dev->log, dev->log_size);
	memset(dev, 0, sizeof(*dev));
	dev->fd = -1;
	dev->mem.fd = -1;
}

int vblk_dev_set_backend(struct vblk_dev *dev, int fd)
{
	struct vhost_vring_file f = { .index = 0, .fd = fd };

	return dev_ioctl(dev, VHOST_BLK_SET_BACKEND, &f);
}

int vblk_dev_get_config(struct vblk_dev *dev, struct vhost_blk_config *cfg)
{
	return ioctl(dev->fd, VHOST_BLK_GET_CONFIG, cfg) ? neg_errno() : 0;
}

int vblk_dev_set_read_only(struct vblk_dev *dev, uint32_t ro)
{
	return dev_ioctl(dev, VHOST_BLK_SET_READ_ONLY, &ro);
}

int vblk_dev_set_serial(struct vblk_dev *dev, const char *serial)
{
	char id[VIRTIO_BLK_ID_BYTES] = { 0 };

	memcpy(id, serial, strnlen(serial, sizeof(id)));
	return dev_ioctl(dev, VHOST_BLK_SET_SERIAL, id);
}

static int set_addr_all(struct vblk_dev *dev)
{
	unsigned int i;
	int ret;

	for (i = 0; i < dev->nqueues; i++) {
		if (!dev->queues[i].ready)
			continue;
		ret = vblk_queue_set_addr(&dev->queues[i]);
		if (ret)
			return ret;
	}
	return 0;
}

int vblk_dev_log_start(struct vblk_dev *dev)
{
	uint64_t pages = DIV_ROUND_UP(vblk_mem_gpa_end(&dev->mem),
				      VBLK_PAGE_SIZE);
	uint64_t base;
	int ret;

	if (dev->logging)
		return -EBUSY;
	if (!dev->log) {
		dev->log_size = ALIGN_UP(DIV_ROUND_UP(pages, 8),
					 VBLK_PAGE_SIZE);
		dev->log = mmap(NULL, dev->log_size, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (dev->log == MAP_FAILED) {
			dev->log = NULL;
			return -ENOMEM;
		}
	}
	base = (uintptr_t)dev->log;
	ret = dev_ioctl(dev, VHOST_SET_LOG_BASE, &base);
	if (!ret)
		ret = vblk_dev_set_features(dev, dev->features |
						 (1ULL << VHOST_F_LOG_ALL));
	if (ret)
		return ret;
	dev->logging = true;
	return set_addr_all(dev);
}

int vblk_dev_log_stop(struct vblk_dev *dev)
{
	int ret;

	if (!dev->logging)
		return 0;
	ret = vblk_dev_set_features(dev, dev->features &
					 ~(1ULL << VHOST_F_LOG_ALL));
	if (ret)
		return ret;
	/* The bitmap stays mapped and readable until the device closes. */
	dev->logging = false;
	return set_addr_all(dev);
}

static bool log_bit(const struct vblk_dev *dev, uint64_t page)
{
	if (page / 8 >= dev->log_size)
		return false;
	return __atomic_load_n(&dev->log[page / 8], __ATOMIC_RELAXED) &
	       (1U << (page % 8));
}

/* Pages of [gpa, gpa + len) marked dirty, and how many pages it spans. */
static uint64_t log_count(const struct vblk_dev *dev, uint64_t gpa, size_t len,
			  uint64_t *pages)
{
	uint64_t p, first = gpa / VBLK_PAGE_SIZE, dirty = 0;

	*pages = len ? (gpa + len - 1) / VBLK_PAGE_SIZE - first + 1 : 0;
	if (!dev->log)
		return 0;
	for (p = first; p < first + *pages; p++)
		dirty += log_bit(dev, p);
	return dirty;
}

bool vblk_log_dirty(const struct vblk_dev *dev, uint64_t gpa, size_t len)
{
	uint64_t pages;

	return log_count(dev, gpa, len, &pages) > 0;
}

bool vblk_log_all_dirty(const struct vblk_dev *dev, uint64_t gpa, size_t len)
{
	uint64_t pages, dirty = log_count(dev, gpa, len, &pages);

	return pages && dirty == pages;
}

void vblk_log_clear(struct vblk_dev *dev)
{
	if (dev->log)
		memset(dev->log, 0, dev->log_size);
}

/* ------------------------------------------------------------------------
 * Data patterns
 */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Word @i / 8 of the pattern of @seed: bytes @i to @i + 7, little end first. */
static uint64_t pattern_word(uint64_t seed, size_t i)
{
	return splitmix64(seed * 0x100000001b3ULL + i / 8);
}

void vblk_pattern_fill(void *p, size_t len, uint64_t seed)
{
	uint8_t *b = p;
	uint64_t w = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (!(i % 8))
			w = pattern_word(seed, i);
		b[i] = w >> (8 * (i % 8));
	}
}

ssize_t vblk_pattern_check(const void *p, size_t len, uint64_t seed)
{
	const uint8_t *b = p;
	uint64_t w = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (!(i % 8))
			w = pattern_word(seed, i);
		if (b[i] != (uint8_t)(w >> (8 * (i % 8))))
			return i;
	}
	return -1;
}

ssize_t vblk_mem_check_byte(const void *p, size_t len, uint8_t c)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i] != c)
			return i;
	return -1;
}

ssize_t vblk_mem_diff(const void *a, const void *b, size_t len)
{
	const uint8_t *x = a, *y = b;
	size_t i;

	for (i = 0; i < len; i++)
		if (x[i] != y[i])
			return i;
	return -1;
}

/* ------------------------------------------------------------------------
 * Backends
 */

int vblk_child_ioctl(int fd, unsigned long req, void *arg)
{
	pid_t pid;
	int status;

	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid)
		_exit(ioctl(fd, req, arg) ? errno : 0);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int vblk_run(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int n, status;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 20, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd) - 20)
		return -ENAMETOOLONG;
	strcat(cmd, " >/dev/null 2>&1");
	status = system(cmd);
	if (status < 0)
		return neg_errno();
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Adds to @tids (up to @max) the threads in @dir/<id>/comm named @want. */
static unsigned int scan_comm(const char *dir, const char *want, pid_t *tids,
			      unsigned int n, unsigned int max)
{
	char path[300], comm[32];
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return n;
	while ((de = readdir(d))) {
		ssize_t len;
		int fd;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "%s/%s/comm", dir, de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (len <= 0)
			continue;
		comm[len] = 0;
		if (strcmp(comm, want))
			continue;
		if (n < max)
			tids[n] = atoi(de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

unsigned int vblk_vhost_workers(pid_t owner, pid_t *tids, unsigned int max)
{
	char want[32], dir[64];
	unsigned int n;

	snprintf(want, sizeof(want), "vhost-%d\n", (int)owner);
	/* Kernel threads before Linux 6.4, threads of the owner since. */
	n = scan_comm("/proc", want, tids, 0, max);
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)owner);
	return scan_comm(dir, want, tids, n, max);
}

/* Run time in ns of thread @tid (/proc/TID/task/TID/schedstat); 0 if gone. */
static unsigned long long thread_run_ns(pid_t tid)
{
	unsigned long long ns = 0;
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)tid, (int)tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

void vblk_threads_run_ns_settled(const pid_t *tids, unsigned int n,
				 unsigned long long *ns)
{
	unsigned int i, same = 0;
	unsigned long long now;
	int waited;

	for (i = 0; i < n; i++)
		ns[i] = thread_run_ns(tids[i]);
	for (waited = 0; same < n && waited < VBLK_TIMEOUT_MS; waited += 20) {
		usleep(20 * 1000);
		for (i = 0, same = 0; i < n; i++) {
			now = thread_run_ns(tids[i]);
			same += now == ns[i];
			ns[i] = now;
		}
	}
}

bool vblk_kernel_at_least(unsigned int major, unsigned int minor)
{
	unsigned int ma = 0, mi = 0;
	struct utsname u;

	if (uname(&u) || sscanf(u.release, "%u.%u", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

pid_t vblk_vhost_worker(pid_t owner)
{
	pid_t tid;

	return vblk_vhost_workers(owner, &tid, 1) ? tid : -1;
}

int vblk_write_file(const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	n = write(fd, val, len);
	if (n < 0) {
		n = neg_errno();
		close(fd);
		return n;
	}
	close(fd);
	return (size_t)n == len ? 0 : -EIO;
}

uint32_t vblk_dev_id(int fd)
{
	char path[64], line[128];
	unsigned int id = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "vhost-blk-id: %u", &id) == 1)
			break;
	fclose(f);
	return id;
}

int vblk_read_line(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	if (!len)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = neg_errno();
		close(fd);
		return n;
	}
	close(fd);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int write_attr(const char *dir, const char *attr, unsigned long long v)
{
	char path[256], val[32];

	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	snprintf(val, sizeof(val), "%llu", v);
	return vblk_write_file(path, val);
}

int vblk_sysfs_u64(const char *disk, const char *attr, uint64_t *val)
{
	char path[256], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/block/%s/%s", disk, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	*val = strtoull(buf, NULL, 0);
	return 0;
}

static bool module_loaded(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/module/%s", name);
	return access(path, F_OK) == 0;
}

/* Waits for a device node devtmpfs creates. */
static int wait_node(const char *path)
{
	int64_t deadline = vblk_now_ms() + BUSY_RETRY_MS;

	while (access(path, F_OK)) {
		if (vblk_now_ms() > deadline)
			return -ENOENT;
		sleep_ms(10);
	}
	return 0;
}

/* Retries @fn while the device is still busy, e.g. a last close pending. */
#define RETRY_BUSY(expr) ({						\
	int64_t __deadline = vblk_now_ms() + BUSY_RETRY_MS;			\
	int __ret;							\
	while ((__ret = (expr)) == -EBUSY || __ret == -EAGAIN) {	\
		if (vblk_now_ms() > __deadline)				\
			break;						\
		sleep_ms(20);						\
	}								\
	__ret;								\
})

static unsigned int backend_serial;

static void unique_name(char *buf, size_t len)
{
	snprintf(buf, len, "vblk%d_%u", (int)getpid(), backend_serial++);
}

#define NULLB_CONFIGFS	"/sys/kernel/config/nullb"

static int nullb_create(char *name, size_t namelen,
			const struct vblk_backend_opts *o, uint64_t size)
{
	char dir[128];
	int ret;

	if (!module_loaded("null_blk") &&
	    vblk_run("modprobe null_blk nr_devices=0"))
		return -ENODEV;
	unique_name(name, namelen);
	snprintf(dir, sizeof(dir), NULLB_CONFIGFS "/%s", name);
	if (mkdir(dir, 0755))
		return neg_errno();
	ret = write_attr(dir, "size", DIV_ROUND_UP(size, 1 << 20));
	if (!ret && o->block_size)
		ret = write_attr(dir, "blocksize", o->block_size);
	if (!ret)
		ret = write_attr(dir, "memory_backed", !o->no_memory);
	if (!ret && o->discard)
		ret = write_attr(dir, "discard", 1);
	if (!ret && o->hw_queue_depth)
		ret = write_attr(dir, "hw_queue_depth", o->hw_queue_depth);
	if (!ret && o->shared_tags)
		ret = write_attr(dir, "shared_tag_bitmap", 1);
	if (!ret && o->completion_nsec) {
		ret = write_attr(dir, "irqmode", 2);
		if (!ret)
			ret = write_attr(dir, "completion_nsec",
					 o->completion_nsec);
	}
	if (!ret)
		ret = write_attr(dir, "power", 1);
	if (ret) {
		rmdir(dir);
		name[0] = 0;
	}
	return ret;
}

static int nullb_destroy(char *name)
{
	char dir[128];
	int ret;

	if (!name[0])
		return 0;
	snprintf(dir, sizeof(dir), NULLB_CONFIGFS "/%s", name);
	ret = RETRY_BUSY(rmdir(dir) ? neg_errno() : 0);
	if (ret == -ENOENT)
		ret = 0;
	if (!ret)
		name[0] = 0;
	return ret;
}

static int unload_module(const char *name)
{
	int ret;

	ret = RETRY_BUSY(syscall(SYS_delete_module, name, O_NONBLOCK) ?
			 neg_errno() : 0);
	return ret == -ENOENT ? 0 : ret;
}

static int brd_create(struct vblk_backend *be, uint64_t size)
{
	int ret;

	/* One set of ramdisks per module load: start from a fresh one. */
	if (module_loaded("brd")) {
		ret = unload_module("brd");
		if (ret)
			return ret;
	}
	if (vblk_run("modprobe brd rd_nr=1 max_part=0 rd_size=%llu",
		     (unsigned long long)DIV_ROUND_UP(size, 1024)))
		return -ENODEV;
	snprintf(be->name, sizeof(be->name), "ram0");
	return 0;
}

static int loop_create(struct vblk_backend *be,
		       const struct vblk_backend_opts *o, uint64_t size)
{
	char file[] = "/tmp/vblk-loop-XXXXXX", path[32];
	struct loop_config cfg = { 0 };
	int ctl = -1, ffd, nr, tries, ret;

	if (access("/dev/loop-control", F_OK) && vblk_run("modprobe loop"))
		return -ENODEV;
	ffd = mkstemp(file);
	if (ffd < 0)
		return neg_errno();
	/* The loop device holds the file; nothing stays in /tmp. */
	unlink(file);
	if (ftruncate(ffd, size)) {
		ret = neg_errno();
		goto out;
	}
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		ret = neg_errno();
		goto out;
	}
	cfg.fd = ffd;
	cfg.block_size = o->block_size;
	for (tries = 0; tries < 10; tries++) {
		nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (nr < 0) {
			ret = neg_errno();
			goto out;
		}
		snprintf(path, sizeof(path), "/dev/loop%d", nr);
		ret = wait_node(path);
		if (ret)
			goto out;
		be->loop_fd = open(path, O_RDWR | O_CLOEXEC);
		if (be->loop_fd < 0) {
			ret = neg_errno();
			goto out;
		}
		if (!ioctl(be->loop_fd, LOOP_CONFIGURE, &cfg))
			break;
		ret = neg_errno();
		close(be->loop_fd);
		be->loop_fd = -1;
		if (ret != -EBUSY)
			goto out;
	}
	if (be->loop_fd < 0)
		goto out;
	snprintf(be->name, sizeof(be->name), "loop%d", nr);
	ret = 0;
out:
	if (ctl >= 0)
		close(ctl);
	if (ret)
		close(ffd);
	else
		be->file_fd = ffd;
	return ret;
}

static int loop_destroy(struct vblk_backend *be)
{
	int ctl, nr;

	if (be->loop_fd < 0)
		return 0;
	ioctl(be->loop_fd, LOOP_CLR_FD);
	close(be->loop_fd);
	be->loop_fd = -1;
	close(be->file_fd);
	be->file_fd = -1;
	/* Remove the now unbound node too, once its last user is gone. */
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl >= 0 && sscanf(be->name, "loop%d", &nr) == 1)
		RETRY_BUSY(ioctl(ctl, LOOP_CTL_REMOVE, nr) < 0 ?
			   neg_errno() : 0);
	if (ctl >= 0)
		close(ctl);
	return 0;
}

/* The dm-N name of the mapped device called @dm_name. */
static int dm_disk_name(const char *dm_name, char *name, size_t len)
{
	char path[300], buf[64];
	struct dirent *de;
	int ret = -ENOENT;
	DIR *d;

	d = opendir("/sys/block");
	if (!d)
		return neg_errno();
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "dm-", 3))
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/dm/name",
			 de->d_name);
		if (vblk_read_line(path, buf, sizeof(buf)))
			continue;
		if (!strcmp(buf, dm_name) && strlen(de->d_name) < len) {
			memcpy(name, de->d_name, strlen(de->d_name) + 1);
			ret = 0;
			break;
		}
	}
	closedir(d);
	return ret;
}

static int dm_create(struct vblk_backend *be,
		     const struct vblk_backend_opts *o, uint64_t size)
{
	unsigned long long sectors = size / VBLK_SECTOR_SIZE;
	char table[160], lower_path[64];
	int ret;

	if (be->kind == VBLK_BE_DM_FLAKEY) {
		struct vblk_backend_opts lower = *o;

		lower.completion_nsec = 0;
		ret = nullb_create(be->nullb, sizeof(be->nullb), &lower, size);
		if (ret)
			return ret;
		snprintf(lower_path, sizeof(lower_path), "/dev/%s", be->nullb);
		ret = wait_node(lower_path);
		if (ret)
			return ret;
		snprintf(table, sizeof(table), "0 %llu flakey %s 0 %u %u",
			 sectors, lower_path, o->flakey_up,
			 o->flakey_down ? o->flakey_down : 1);
	} else {
		snprintf(table, sizeof(table), "0 %llu error", sectors);
	}
	unique_name(be->dm_name, sizeof(be->dm_name));
	if (vblk_run("dmsetup create --noudevsync %s --table '%s'",
		     be->dm_name, table)) {
		be->dm_name[0] = 0;
		return -ENODEV;
	}
	return dm_disk_name(be->dm_name, be->name, sizeof(be->name));
}

static int dm_remove(const char *dm_name)
{
	return vblk_run("dmsetup remove --noudevsync %s", dm_name) ?
	       -EBUSY : 0;
}

static int dm_destroy(struct vblk_backend *be)
{
	int ret = 0;

	if (be->dm_name[0]) {
		ret = RETRY_BUSY(dm_remove(be->dm_name));
		if (!ret)
			be->dm_name[0] = 0;
	}
	if (!ret)
		ret = nullb_destroy(be->nullb);
	return ret;
}

int vblk_backend_create(struct vblk_backend *be, enum vblk_backend_kind kind,
			const struct vblk_backend_opts *opts)
{
	static const struct vblk_backend_opts defaults;
	uint64_t size;
	int ret;

	if (!opts)
		opts = &defaults;
	size = opts->size ? opts->size : 64ULL << 20;
	memset(be, 0, sizeof(*be));
	be->kind = kind;
	be->loop_fd = -1;
	be->file_fd = -1;
	be->size = size;
	be->created = true;

	switch (kind) {
	case VBLK_BE_NULLB:
		ret = nullb_create(be->nullb, sizeof(be->nullb), opts, size);
		if (!ret)
			snprintf(be->name, sizeof(be->name), "%s", be->nullb);
		break;
	case VBLK_BE_BRD:
		ret = brd_create(be, size);
		break;
	case VBLK_BE_LOOP:
		ret = loop_create(be, opts, size);
		break;
	case VBLK_BE_DM_ERROR:
	case VBLK_BE_DM_FLAKEY:
		ret = dm_create(be, opts, size);
		break;
	default:
		ret = -EINVAL;
	}
	if (!ret) {
		snprintf(be->path, sizeof(be->path), "/dev/%s", be->name);
		ret = wait_node(be->path);
	}
	if (ret)
		vblk_backend_destroy(be);
	return ret;
}

int vblk_backend_destroy(struct vblk_backend *be)
{
	int ret = 0;

	if (!be->created)
		return 0;
	switch (be->kind) {
	case VBLK_BE_NULLB:
		ret = nullb_destroy(be->nullb);
		break;
	case VBLK_BE_BRD:
		ret = unload_module("brd");
		break;
	case VBLK_BE_LOOP:
		ret = loop_destroy(be);
		break;
	case VBLK_BE_DM_ERROR:
	case VBLK_BE_DM_FLAKEY:
		ret = dm_destroy(be);
		break;
	}
	if (!ret)
		be->created = false;
	return ret;
}

int vblk_backend_resize(struct vblk_backend *be, uint64_t size)
{
	if (be->kind != VBLK_BE_LOOP || be->file_fd < 0)
		return -EOPNOTSUPP;
	if (ftruncate(be->file_fd, size) || ioctl(be->loop_fd, LOOP_SET_CAPACITY, 0))
		return neg_errno();
	be->size = size;
	return 0;
}

int vblk_backend_open(const struct vblk_backend *be, int flags)
{
	int fd = open(be->path, flags | O_CLOEXEC);

	return fd < 0 ? neg_errno() : fd;
}

static int backend_direct_io(const struct vblk_backend *be, void *buf,
			     size_t len, off_t off, bool write)
{
	void *bounce;
	ssize_t n;
	int fd, ret = 0;

	fd = vblk_backend_open(be, (write ? O_WRONLY : O_RDONLY) | O_DIRECT);
	if (fd < 0)
		return fd;
	if (posix_memalign(&bounce, VBLK_PAGE_SIZE,
			   ALIGN_UP(len, VBLK_PAGE_SIZE))) {
		close(fd);
		return -ENOMEM;
	}
	if (write) {
		memcpy(bounce, buf, len);
		n = pwrite(fd, bounce, len, off);
	} else {
		n = pread(fd, bounce, len, off);
		if (n == (ssize_t)len)
			memcpy(buf, bounce, len);
	}
	if (n < 0)
		ret = neg_errno();
	else if ((size_t)n != len)
		ret = -EIO;
	free(bounce);
	close(fd);
	return ret;
}

int vblk_backend_pread(const struct vblk_backend *be, void *buf, size_t len,
		       off_t off)
{
	return backend_direct_io(be, buf, len, off, false);
}

int vblk_backend_pwrite(const struct vblk_backend *be, const void *buf,
			size_t len, off_t off)
{
	return backend_direct_io(be, (void *)buf, len, off, true);
}

int vblk_backend_set_ro(const struct vblk_backend *be, bool ro)
{
	int fd, val = ro, ret = 0;

	fd = vblk_backend_open(be, O_RDONLY);
	if (fd < 0)
		return fd;
	if (ioctl(fd, BLKROSET, &val))
		ret = neg_errno();
	close(fd);
	return ret;
}
