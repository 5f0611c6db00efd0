// SPDX-License-Identifier: GPL-2.0
/*
 * conn: one vhost-user front-end connection, the state machine behind
 * `serve`. See conn.h.
 *
 * Per connection the helper opens a fresh /dev/vhost-blk with the queues it
 * serves, becomes its owner (the kernel workers then read and write guest
 * memory through the helper's mappings), gives the queues their workers,
 * attaches the block device and translates the control messages into vhost
 * ioctls. It never touches the rings itself.
 *
 * A ring is "started" when the kernel has its addresses. The helper gives
 * them to the kernel only once the ring is ready (size, addresses, kick fd,
 * and enabled) and takes them back (zero addresses) when it stops, because
 * VHOST_BLK_SET_BACKEND starts every ring the kernel knows the addresses
 * of: with that, attaching the backend again after any change restarts
 * exactly the started rings. The front-end's ring addresses are translated
 * into the helper's mappings when the ring starts, and again for every new
 * memory table while it runs, not when they arrive: the vhost-user
 * specification does not order SET_VRING_ADDR after the memory.
 *
 * RESET_DEVICE resets the device, not the connection: the rings stop and
 * forget their setup, while the memory table, the dirty log, the features
 * and the kernel device (owner, workers, settings) stay. QEMU 9 and later
 * send it at every virtio reset (each guest driver probe) and then, with
 * CONFIGURE_MEM_SLOTS, only the memory changes since: a back-end that
 * forgot its table there has no memory at the next start.
 *
 * The dirty log. The kernel sets a bit per 4 KiB guest page it writes, at
 * log base + page / 8, for every address of the memory table (with
 * VHOST_F_LOG_ALL) and of a logged ring's used ring; it checks no bound, so
 * a log shorter than that would have it set bits in whatever the helper
 * has mapped after the log. Hence, with c->log the log the front-end gave:
 *  - c->log, when set, covers every region and every logged ring's used
 *    ring (log_covers()): SET_LOG_BASE of a shorter log is refused, and so
 *    is a memory table or a logged ring address beyond the log while
 *    logging is wanted; when it is not, such a table lets the log go;
 *  - the kernel logs (VHOST_F_LOG_ALL, a ring's VHOST_VRING_F_LOG) only
 *    while c->log is set: asked for before SET_LOG_BASE, as QEMU does when
 *    it starts a device during a migration, logging starts with the log.
 */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vhost_blk.h>

#include "cli.h"
#include "conn.h"
#include "kdev.h"
#include "vu_msg.h"

#define PROTOCOL_FEATURES	((1ULL << VU_PROTOCOL_F_MQ) | \
				 (1ULL << VU_PROTOCOL_F_LOG_SHMFD) | \
				 (1ULL << VU_PROTOCOL_F_REPLY_ACK) | \
				 (1ULL << VU_PROTOCOL_F_BACKEND_REQ) | \
				 (1ULL << VU_PROTOCOL_F_CONFIG) | \
				 (1ULL << VU_PROTOCOL_F_RESET_DEVICE) | \
				 (1ULL << VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

/* The kernel's log: a bit per page, written in u64 units (log_write()). */
#define LOG_PAGE_SIZE		4096ULL
#define LOG_UNIT_BYTES		8ULL
#define LOG_UNIT_SPAN		(LOG_PAGE_SIZE * 8 * LOG_UNIT_BYTES)

struct ring {
	unsigned int num;		/* SET_VRING_NUM; 0 = not yet */
	bool addr_set;
	struct vu_vring_addr addr;	/* as the front-end sent it */
	struct vu_ring_hva hva;		/* translated to our mappings */
	bool kick;			/* the kernel has a kick eventfd */
	bool enabled;
	bool started;			/* the kernel has the addresses */
};

struct conn {
	const struct serve_opts *opts;
	const char *name;		/* for the log: the socket */
	int sock;
	int kfd;			/* /dev/vhost-blk */
	int backend_fd;			/* owned by serve_run */
	uint64_t features;		/* SET_FEATURES, with bit 30 */
	uint64_t protocol_features;
	struct vu_mem mem;
	struct ring rings[VHOST_BLK_MAX_QUEUES];
	void *log;
	size_t log_size;
	int backend_req;		/* SET_BACKEND_REQ_FD's socket, or -1 */
	uint64_t capacity;		/* sectors, as the front-end last read */
	char why[192];			/* the reason of the last failure */
};

/* Records why a request fails; returns @err. */
static int failf(struct conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int failf(struct conn *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	return err;
}

/* An ioctl on the device; on failure records "NAME: strerror". */
#define KIOCTL(c, req, arg)						\
	(ioctl((c)->kfd, (req), (arg)) < 0 ?				\
	 failf((c), -errno, "%s: %s", #req, strerror(errno)) : 0)

/* ------------------------------------------------------------------------
 * The kernel device
 */

static int kernel_set_backend(struct conn *c, int fd)
{
	struct vhost_vring_file f = { .index = 0, .fd = fd };

	return KIOCTL(c, VHOST_BLK_SET_BACKEND, &f);
}

/* Stops every ring and drains the requests in flight. */
static int kernel_stop(struct conn *c)
{
	return kernel_set_backend(c, -1);
}

/* Attaches the backend again: every started ring runs. */
static int kernel_start(struct conn *c)
{
	return kernel_set_backend(c, c->backend_fd);
}

/*
 * The queues' workers, once the device has its owner: VHOST_SET_OWNER made
 * one and attached every queue to it; it is worker 0, the others are new,
 * and queue i runs on worker i % workers. Workers are threads of this
 * process, in its cgroups, and live as long as the connection.
 */
static int kernel_workers(struct conn *c)
{
	unsigned int n = c->opts->workers, ids[VHOST_BLK_MAX_QUEUES], i;
	struct vhost_vring_worker vw = { .index = 0 };
	int ret;

	if (n <= 1)
		return 0;
	ret = KIOCTL(c, VHOST_GET_VRING_WORKER, &vw);
	ids[0] = vw.worker_id;
	for (i = 1; i < n && !ret; i++) {
		struct vhost_worker_state ws = { 0 };
		int err;

		if (ioctl(c->kfd, VHOST_NEW_WORKER, &ws)) {
			err = errno;
			return failf(c, -err, "VHOST_NEW_WORKER: %s",
				     err == EFAULT ? "refused: the vhost module runs workers as kernel threads (fork_from_owner_default is 0)" :
				     strerror(err));
		}
		ids[i] = ws.worker_id;
	}
	for (i = 1; i < c->opts->num_queues && !ret; i++) {
		if (!(i % n))
			continue;
		vw = (struct vhost_vring_worker){ .index = i, .worker_id = ids[i % n] };
		ret = KIOCTL(c, VHOST_ATTACH_VRING_WORKER, &vw);
	}
	return ret;
}

/*
 * Every queue's busy-poll time (--poll-us), once the device has its owner.
 * The vhost core keeps it until the owner goes, that is for the life of
 * the connection: RESET_DEVICE and ring restarts leave it, and the next
 * connection's device gets it here again. vhost-user has no message for
 * it, so the front-end cannot change it.
 */
static int kernel_poll(struct conn *c)
{
	unsigned int i;
	int ret = 0;

	if (!c->opts->poll_us)
		return 0;	/* a new device's queues do not poll */
	for (i = 0; i < c->opts->num_queues && !ret; i++) {
		struct vhost_vring_state s = { .index = i, .num = c->opts->poll_us };

		ret = KIOCTL(c, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &s);
	}
	return ret;
}

/*
 * Owner, workers, busy polling, settings and backend: a device ready for
 * GET_CONFIG.
 */
static int kernel_setup(struct conn *c)
{
	uint32_t ro = c->opts->read_only;
	int ret;

	ret = KIOCTL(c, VHOST_SET_OWNER, NULL);
	if (!ret)
		ret = kernel_workers(c);
	if (!ret)
		ret = kernel_poll(c);
	if (!ret && c->opts->serial) {
		char serial[VIRTIO_BLK_ID_BYTES] = { 0 };

		memcpy(serial, c->opts->serial,
		       strnlen(c->opts->serial, sizeof(serial)));
		ret = KIOCTL(c, VHOST_BLK_SET_SERIAL, serial);
	}
	if (!ret && ro)
		ret = KIOCTL(c, VHOST_BLK_SET_READ_ONLY, &ro);
	if (!ret)
		ret = kernel_start(c);
	return ret;
}

static int kernel_ring_addr(struct conn *c, unsigned int i, bool real)
{
	struct ring *r = &c->rings[i];
	struct vhost_vring_addr a = { .index = i };

	if (real) {
		/* The kernel logs the used ring only into a log of ours. */
		a.flags = c->log ? r->addr.flags :
			  r->addr.flags & ~(1U << VHOST_VRING_F_LOG);
		a.desc_user_addr = r->hva.desc;
		a.avail_user_addr = r->hva.avail;
		a.used_user_addr = r->hva.used;
		a.log_guest_addr = r->addr.log;
	}
	return KIOCTL(c, VHOST_SET_VRING_ADDR, &a);
}

static bool any_started(const struct conn *c)
{
	unsigned int i;

	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++)
		if (c->rings[i].started)
			return true;
	return false;
}

/* Takes ring @i away from the kernel, keeping the others running. */
static int ring_stop(struct conn *c, unsigned int i)
{
	int ret;

	ret = kernel_stop(c);
	if (!ret && c->rings[i].started)
		ret = kernel_ring_addr(c, i, false);
	if (!ret)
		c->rings[i].started = false;
	if (!ret)
		ret = kernel_start(c);
	return ret;
}

/* Starts or stops ring @i to match what the front-end set up. */
static int ring_update(struct conn *c, unsigned int i)
{
	struct ring *r = &c->rings[i];
	bool ready = r->num && r->addr_set && r->kick && r->enabled;
	const char *why;
	int ret;

	if (ready == r->started)
		return 0;
	if (!ready)
		return ring_stop(c, i);
	if (vu_ring_translate(&c->mem, &r->addr, r->num, &r->hva, &why))
		return failf(c, -EFAULT, "ring %u: %s", i, why);
	ret = kernel_ring_addr(c, i, true);
	if (ret)
		return ret;
	r->started = true;
	ret = kernel_start(c);
	if (ret) {
		/* A failed start leaves the device stopped: try without. */
		r->started = false;
		kernel_ring_addr(c, i, false);
		kernel_start(c);
	}
	return ret;
}

/* ------------------------------------------------------------------------
 * Dirty log bounds
 */

static bool ring_logged(const struct vu_vring_addr *a)
{
	return a->flags & (1U << VHOST_VRING_F_LOG);
}

/* Bytes of a used ring of @num entries, with the event index. */
static uint64_t used_ring_size(unsigned int num)
{
	return 4 + 8ULL * num + 2;
}

/*
 * Whether a log of @size bytes covers every region of @mem and the used
 * ring of every logged ring; ring @i (if < VHOST_BLK_MAX_QUEUES) counts
 * with the addresses @addr instead of its own. The kernel writes the byte
 * of page P at offset P / 8, in the u64 that holds it: the log must reach
 * to the end of that u64, as QEMU sizes its log.
 */
static bool log_covers(const struct conn *c, uint64_t size,
		       const struct vu_mem *mem, unsigned int i,
		       const struct vu_vring_addr *addr)
{
	uint64_t last = 0;
	unsigned int j;

	for (j = 0; j < mem->nregions; j++) {
		const struct vu_region_desc *d = &mem->regions[j].desc;

		/* vu_region_check() made sure this does not wrap. */
		if (d->gpa + d->size - 1 > last)
			last = d->gpa + d->size - 1;
	}
	for (j = 0; j < VHOST_BLK_MAX_QUEUES; j++) {
		const struct ring *r = &c->rings[j];
		const struct vu_vring_addr *a = j == i ? addr : &r->addr;
		uint64_t len = used_ring_size(r->num);

		if ((j != i && !r->addr_set) || !ring_logged(a))
			continue;
		if (a->log > UINT64_MAX - (len - 1))
			return false;
		if (a->log + len - 1 > last)
			last = a->log + len - 1;
	}
	return size / LOG_UNIT_BYTES > last / LOG_UNIT_SPAN;
}

/* Whether the front-end asked for logging: LOG_ALL or a logged ring. */
static bool logging_wanted(const struct conn *c)
{
	unsigned int i;

	if (c->features & (1ULL << VHOST_F_LOG_ALL))
		return true;
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++)
		if (c->rings[i].addr_set && ring_logged(&c->rings[i].addr))
			return true;
	return false;
}

/* The features the kernel gets: LOG_ALL only with a log. */
static uint64_t kernel_features(const struct conn *c, uint64_t features)
{
	features &= ~(1ULL << VU_F_PROTOCOL_FEATURES);
	if (!c->log)
		features &= ~(1ULL << VHOST_F_LOG_ALL);
	return features;
}

/* Forgets the log; the kernel must not be logging. */
static void log_drop(struct conn *c)
{
	uint64_t base = 0;

	if (!c->log)
		return;
	ioctl(c->kfd, VHOST_SET_LOG_BASE, &base);
	munmap(c->log, c->log_size);
	c->log = NULL;
	c->log_size = 0;
}

/*
 * Checks a new memory table against the log: refused when logging is
 * wanted and the log does not cover it; the log is let go when it is not.
 */
static int log_check_mem(struct conn *c, const struct vu_mem *next)
{
	if (!c->log || log_covers(c, c->log_size, next, VHOST_BLK_MAX_QUEUES, NULL))
		return 0;
	if (logging_wanted(c))
		return failf(c, -EFAULT, "guest memory beyond the %zu-byte dirty log",
			     c->log_size);
	log_drop(c);
	return 0;
}

/* ------------------------------------------------------------------------
 * Guest memory
 */

static bool mem_has_map(const struct vu_mem *mem, const void *map)
{
	unsigned int i;

	for (i = 0; i < mem->nregions; i++)
		if (mem->regions[i].map == map)
			return true;
	return false;
}

/* Unmaps the regions of @from that are not in @keep. */
static void mem_unmap_others(struct vu_mem *from, const struct vu_mem *keep)
{
	unsigned int i;

	for (i = 0; i < from->nregions; i++)
		if (!keep || !mem_has_map(keep, from->regions[i].map))
			vu_region_unmap(&from->regions[i]);
	from->nregions = 0;
}

/*
 * Makes @next the memory table: the started rings are translated again
 * (each must still be in guest memory), the kernel gets the table (started
 * rings stopped around it, as their addresses in our mappings change), and
 * replaced regions are unmapped afterwards. On failure the old table stays
 * and @next's new mappings are unmapped.
 */
static int mem_commit(struct conn *c, struct vu_mem *next)
{
	struct vu_ring_hva hva[VHOST_BLK_MAX_QUEUES];
	struct vhost_memory *km;
	const char *why;
	bool restart = any_started(c);
	unsigned int i;
	int ret;

	ret = log_check_mem(c, next);
	if (ret)
		goto fail;
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		struct ring *r = &c->rings[i];

		if (r->started &&
		    vu_ring_translate(next, &r->addr, r->num, &hva[i], &why)) {
			ret = failf(c, -EFAULT, "ring %u: %s in the new table",
				    i, why);
			goto fail;
		}
	}
	km = calloc(1, sizeof(*km) + next->nregions * sizeof(km->regions[0]));
	if (!km) {
		ret = failf(c, -ENOMEM, "out of memory");
		goto fail;
	}
	km->nregions = next->nregions;
	for (i = 0; i < next->nregions; i++) {
		km->regions[i].guest_phys_addr = next->regions[i].desc.gpa;
		km->regions[i].memory_size = next->regions[i].desc.size;
		km->regions[i].userspace_addr =
			(uint64_t)(uintptr_t)next->regions[i].hva;
	}
	if (restart)
		ret = kernel_stop(c);
	if (!ret)
		ret = KIOCTL(c, VHOST_SET_MEM_TABLE, km);
	free(km);
	if (ret) {
		if (restart)
			kernel_start(c);
		goto fail;
	}
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		struct ring *r = &c->rings[i];

		if (!r->started)
			continue;
		r->hva = hva[i];
		if (!ret)
			ret = kernel_ring_addr(c, i, true);
	}
	if (restart) {
		int ret2 = kernel_start(c);

		ret = ret ? ret : ret2;
	}
	mem_unmap_others(&c->mem, next);
	c->mem = *next;
	return ret;
fail:
	mem_unmap_others(next, &c->mem);
	return ret;
}

static void mem_copy(struct vu_mem *dst, const struct vu_mem *src)
{
	memcpy(dst, src, sizeof(*dst));
}

static int handle_set_mem_table(struct conn *c, struct vu_msg *m)
{
	const struct vu_mem_table *t = &m->payload.mem;
	struct vu_mem next = { .nregions = 0 };
	const char *why;
	unsigned int i;
	int ret;

	if (vu_mem_table_check(t, &why))
		return failf(c, -EINVAL, "%s", why);
	for (i = 0; i < t->nregions; i++) {
		ret = vu_region_map(&next.regions[i], &t->regions[i], m->fds[i]);
		if (ret) {
			mem_unmap_others(&next, NULL);
			return failf(c, ret, "region %u: mmap: %s", i,
				     strerror(-ret));
		}
		next.nregions = i + 1;
	}
	return mem_commit(c, &next);
}

static int handle_add_mem_reg(struct conn *c, struct vu_msg *m)
{
	const struct vu_region_desc *d = &m->payload.reg.region;
	struct vu_region_desc others[VU_MAX_MEM_SLOTS];
	struct vu_mem next;
	const char *why;
	unsigned int i;
	int ret;

	if (c->mem.nregions >= VU_MAX_MEM_SLOTS)
		return failf(c, -ENOSPC, "all %d memory slots in use",
			     VU_MAX_MEM_SLOTS);
	for (i = 0; i < c->mem.nregions; i++)
		others[i] = c->mem.regions[i].desc;
	if (vu_region_check(d, others, c->mem.nregions, &why))
		return failf(c, -EINVAL, "%s", why);
	mem_copy(&next, &c->mem);
	ret = vu_region_map(&next.regions[next.nregions], d, m->fds[0]);
	if (ret)
		return failf(c, ret, "mmap: %s", strerror(-ret));
	next.nregions++;
	return mem_commit(c, &next);
}

static int handle_rem_mem_reg(struct conn *c, struct vu_msg *m)
{
	struct vu_mem next;
	int i;

	i = vu_mem_find(&c->mem, &m->payload.reg.region);
	if (i < 0)
		return failf(c, -ENOENT, "no such region");
	mem_copy(&next, &c->mem);
	next.regions[i] = next.regions[--next.nregions];
	return mem_commit(c, &next);
}

static int handle_set_log_base(struct conn *c, struct vu_msg *m)
{
	const struct vu_log *l = &m->payload.log;
	uint64_t base;
	void *log;
	int ret;

	bool first = !c->log;
	unsigned int i;

	if (!l->mmap_size || l->mmap_size > SIZE_MAX ||
	    l->mmap_offset > (uint64_t)INT64_MAX)
		return failf(c, -EINVAL, "bad log size or offset");
	if (!log_covers(c, l->mmap_size, &c->mem, VHOST_BLK_MAX_QUEUES, NULL))
		return failf(c, -EINVAL,
			     "a log of %llu bytes does not cover the guest memory and rings",
			     (unsigned long long)l->mmap_size);
	log = mmap(NULL, l->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   m->fds[0], l->mmap_offset);
	if (log == MAP_FAILED)
		return failf(c, -errno, "mmap: %s", strerror(errno));
	base = (uint64_t)(uintptr_t)log;
	ret = KIOCTL(c, VHOST_SET_LOG_BASE, &base);
	if (ret) {
		munmap(log, l->mmap_size);
		return ret;
	}
	if (c->log)
		munmap(c->log, c->log_size);
	c->log = log;
	c->log_size = l->mmap_size;
	/* Logging asked for before there was a log starts now. */
	if (first && (c->features & (1ULL << VHOST_F_LOG_ALL))) {
		uint64_t f = kernel_features(c, c->features);

		ret = KIOCTL(c, VHOST_SET_FEATURES, &f);
	}
	for (i = 0; i < VHOST_BLK_MAX_QUEUES && first && !ret; i++)
		if (c->rings[i].started && ring_logged(&c->rings[i].addr))
			ret = kernel_ring_addr(c, i, true);
	if (ret)
		return ret;
	/* The front-end waits for this (empty) reply. */
	return vu_msg_reply(c->sock, VU_SET_LOG_BASE, NULL, 0);
}

/* ------------------------------------------------------------------------
 * Rings
 */

static int ring_index(struct conn *c, uint64_t index, unsigned int *i)
{
	*i = 0;
	if (index >= c->opts->num_queues)
		return failf(c, -ERANGE, "queue index %llu out of range (%u queues)",
			     (unsigned long long)index, c->opts->num_queues);
	*i = index;
	return 0;
}

static int handle_vring_num(struct conn *c, struct vu_msg *m)
{
	struct vhost_vring_state s = { .num = m->payload.state.num };
	unsigned int i, num = s.num;
	int ret;

	ret = ring_index(c, m->payload.state.index, &i);
	if (ret)
		return ret;
	if (!num || (num & (num - 1)) || num > c->opts->queue_size)
		return failf(c, -EINVAL, "ring %u: size %u is not a power of 2 up to %u",
			     i, num, c->opts->queue_size);
	if (c->rings[i].started)
		return failf(c, -EBUSY, "ring %u is running", i);
	s.index = i;
	ret = KIOCTL(c, VHOST_SET_VRING_NUM, &s);
	if (ret)
		return ret;
	c->rings[i].num = num;
	/* Addresses checked against the old size are checked again. */
	c->rings[i].addr_set = false;
	return 0;
}

static int handle_vring_base(struct conn *c, struct vu_msg *m)
{
	struct vhost_vring_state s = { .num = m->payload.state.num };
	unsigned int i;
	int ret;

	ret = ring_index(c, m->payload.state.index, &i);
	if (ret)
		return ret;
	if (c->rings[i].started)
		return failf(c, -EBUSY, "ring %u is running", i);
	if (s.num > 0xffff)
		return failf(c, -EINVAL, "ring %u: base %u beyond 16 bits", i,
			     s.num);
	s.index = i;
	return KIOCTL(c, VHOST_SET_VRING_BASE, &s);
}

static int handle_vring_addr(struct conn *c, struct vu_msg *m)
{
	const struct vu_vring_addr *a = &m->payload.addr;
	struct vu_ring_hva hva;
	struct ring *r;
	const char *why;
	unsigned int i;
	int ret;

	ret = ring_index(c, a->index, &i);
	if (ret)
		return ret;
	r = &c->rings[i];
	if (a->flags & ~(1U << VHOST_VRING_F_LOG))
		return failf(c, -EINVAL, "ring %u: unknown flags 0x%x", i,
			     a->flags);
	if (c->log && ring_logged(a) && !log_covers(c, c->log_size, &c->mem, i, a))
		return failf(c, -EFAULT, "ring %u: used ring log address 0x%llx beyond the %zu-byte dirty log",
			     i, (unsigned long long)a->log, c->log_size);
	if (r->started) {
		/* New addresses for a running ring: logging on or off. */
		struct vu_vring_addr old_addr = r->addr;
		struct vu_ring_hva old_hva = r->hva;

		if (vu_ring_translate(&c->mem, a, r->num, &hva, &why))
			return failf(c, -EFAULT, "ring %u: %s", i, why);
		r->addr = *a;
		r->hva = hva;
		ret = kernel_ring_addr(c, i, true);
		if (ret) {
			/* The kernel kept the old ones: so do we. */
			r->addr = old_addr;
			r->hva = old_hva;
		}
		return ret;
	}
	/* Translated when the ring starts. */
	r->addr = *a;
	r->addr_set = true;
	return ring_update(c, i);
}

static int handle_get_vring_base(struct conn *c, struct vu_msg *m)
{
	struct vhost_vring_state s;
	struct vu_vring_state reply;
	struct ring *r;
	unsigned int i;
	int ret;

	ret = ring_index(c, m->payload.state.index, &i);
	if (ret)
		return ret;
	r = &c->rings[i];
	/* Every request in flight, on every ring, ends in its used ring. */
	ret = kernel_stop(c);
	if (ret)
		return ret;
	s = (struct vhost_vring_state){ .index = i };
	ret = KIOCTL(c, VHOST_GET_VRING_BASE, &s);
	if (!ret && r->started)
		ret = kernel_ring_addr(c, i, false);
	if (!ret) {
		r->started = false;
		r->kick = false;
		if (c->features & (1ULL << VU_F_PROTOCOL_FEATURES))
			r->enabled = false;
	}
	/* The other rings go on; the backend stays attached. */
	if (kernel_start(c) && !ret)
		ret = -EIO;
	if (ret)
		return ret;
	reply = (struct vu_vring_state){ .index = i, .num = s.num };
	return vu_msg_reply(c->sock, VU_GET_VRING_BASE, &reply, sizeof(reply));
}

static int handle_vring_fd(struct conn *c, struct vu_msg *m)
{
	uint32_t req = m->hdr.request;
	struct vhost_vring_file f;
	unsigned int i;
	int ret;

	ret = ring_index(c, m->payload.u64 & VU_VRING_IDX_MASK, &i);
	if (ret)
		return ret;
	if (m->payload.u64 & ~(VU_VRING_IDX_MASK | VU_VRING_NOFD))
		return failf(c, -EINVAL, "unknown bits in 0x%llx",
			     (unsigned long long)m->payload.u64);
	f.index = i;
	f.fd = m->payload.u64 & VU_VRING_NOFD ? -1 : m->fds[0];
	switch (req) {
	case VU_SET_VRING_KICK:
		if (f.fd < 0)
			return failf(c, -EOPNOTSUPP,
				     "ring %u: polling without kick eventfd not supported", i);
		ret = KIOCTL(c, VHOST_SET_VRING_KICK, &f);
		if (ret)
			return ret;
		c->rings[i].kick = true;
		/* Without protocol features a ring starts at its kick. */
		if (!(c->features & (1ULL << VU_F_PROTOCOL_FEATURES)))
			c->rings[i].enabled = true;
		return ring_update(c, i);
	case VU_SET_VRING_CALL:
		return KIOCTL(c, VHOST_SET_VRING_CALL, &f);
	default:
		return KIOCTL(c, VHOST_SET_VRING_ERR, &f);
	}
}

static int handle_vring_enable(struct conn *c, struct vu_msg *m)
{
	unsigned int i;
	int ret;

	ret = ring_index(c, m->payload.state.index, &i);
	if (ret)
		return ret;
	if (m->payload.state.num > 1)
		return failf(c, -EINVAL, "ring %u: enable value %u", i,
			     m->payload.state.num);
	c->rings[i].enabled = m->payload.state.num;
	return ring_update(c, i);
}

/* ------------------------------------------------------------------------
 * Device
 */

static int reply_u64(struct conn *c, uint32_t req, uint64_t v)
{
	return vu_msg_reply(c->sock, req, &v, sizeof(v));
}

static int handle_get_features(struct conn *c)
{
	uint64_t f;
	int ret;

	ret = KIOCTL(c, VHOST_GET_FEATURES, &f);
	if (ret)
		return ret;
	return reply_u64(c, VU_GET_FEATURES, f | (1ULL << VU_F_PROTOCOL_FEATURES));
}

static int handle_set_features(struct conn *c, struct vu_msg *m)
{
	uint64_t f = m->payload.u64 & ~(1ULL << VU_F_PROTOCOL_FEATURES);
	uint64_t offered;
	unsigned int i;
	int ret;

	ret = KIOCTL(c, VHOST_GET_FEATURES, &offered);
	if (ret)
		return ret;
	if (f & ~offered)
		return failf(c, -EINVAL, "features 0x%llx not offered",
			     (unsigned long long)(f & ~offered));
	f = kernel_features(c, f);
	ret = KIOCTL(c, VHOST_SET_FEATURES, &f);
	if (ret)
		return ret;
	c->features = m->payload.u64;
	if (c->features & (1ULL << VU_F_PROTOCOL_FEATURES))
		return 0;
	/* Rings are enabled from the start, running once kicked. */
	for (i = 0; i < c->opts->num_queues && !ret; i++) {
		c->rings[i].enabled = true;
		ret = ring_update(c, i);
	}
	return ret;
}

static int handle_set_protocol_features(struct conn *c, struct vu_msg *m)
{
	uint64_t f = m->payload.u64;

	if (f & ~PROTOCOL_FEATURES)
		return failf(c, -EINVAL, "protocol features 0x%llx not offered",
			     (unsigned long long)(f & ~PROTOCOL_FEATURES));
	c->protocol_features = f;
	return 0;
}

/* The config is the ABI's 72 bytes in virtio-blk's layout (virtio 1.2, 5.2.4). */
static_assert(sizeof(struct vhost_blk_config) == VHOST_BLK_CONFIG_SIZE,
	      "struct vhost_blk_config is VHOST_BLK_CONFIG_SIZE bytes");
static_assert(offsetof(struct vhost_blk_config, blk_size) == 20, "blk_size");
static_assert(offsetof(struct vhost_blk_config, num_queues) == 34, "num_queues");
static_assert(offsetof(struct vhost_blk_config, max_discard_sectors) == 36,
	      "max_discard_sectors");
static_assert(offsetof(struct vhost_blk_config, write_zeroes_may_unmap) == 56,
	      "write_zeroes_may_unmap");
static_assert(offsetof(struct vhost_blk_config, max_secure_erase_sectors) == 60,
	      "max_secure_erase_sectors");
static_assert(offsetof(struct vhost_blk_config, secure_erase_sector_alignment) == 68,
	      "secure_erase_sector_alignment");

static int handle_get_config(struct conn *c, struct vu_msg *m)
{
	struct vu_config *req = &m->payload.config;
	/* The ABI's fixed size, whatever the system headers' struct is. */
	struct vhost_blk_config cfg;
	int ret;

	if (req->offset > sizeof(cfg) || req->size > sizeof(cfg) - req->offset)
		return failf(c, -EINVAL, "offset %u size %u beyond the %zu-byte config",
			     req->offset, req->size, sizeof(cfg));
	ret = KIOCTL(c, VHOST_BLK_GET_CONFIG, &cfg);
	if (ret)
		return ret;
	/* As many as we serve, also where the kernel has more (ABI 1: 16). */
	cfg.num_queues = htole16(c->opts->num_queues);
	memcpy(req->data, (uint8_t *)&cfg + req->offset, req->size);
	c->capacity = le64toh(cfg.capacity);
	return vu_msg_reply(c->sock, VU_GET_CONFIG, req,
			    VU_CONFIG_HDR_SIZE + req->size);
}

/*
 * The front-end's channel for the back-end's requests, which says when the
 * disk changed size. Kept until the next one or the end of the connection.
 */
static int handle_set_backend_req_fd(struct conn *c, struct vu_msg *m)
{
	int type, fd;
	socklen_t len = sizeof(type);

	if (!(c->protocol_features & (1ULL << VU_PROTOCOL_F_BACKEND_REQ)))
		return failf(c, -EPROTO, "BACKEND_REQ was not negotiated");
	if (getsockopt(m->fds[0], SOL_SOCKET, SO_TYPE, &type, &len) ||
	    type != SOCK_STREAM)
		return failf(c, -EINVAL, "the channel is not a stream socket");
	fd = fcntl(m->fds[0], F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return failf(c, -errno, "keeping the channel: %s", strerror(errno));
	if (c->backend_req >= 0)
		close(c->backend_req);
	c->backend_req = fd;
	return 0;
}

void conn_backend_changed(struct conn *c)
{
	struct vhost_blk_config cfg;
	uint64_t capacity;
	int ret;

	if (KIOCTL(c, VHOST_BLK_GET_CONFIG, &cfg)) {
		serve_log(c->name, "%s changed: %s", c->opts->backend, c->why);
		return;
	}
	capacity = le64toh(cfg.capacity);
	if (capacity == c->capacity)
		return;
	serve_log(c->name, "%s: %" PRIu64 " sectors, was %" PRIu64 "%s",
		  c->opts->backend, capacity, c->capacity,
		  c->backend_req < 0 ? "; the front-end has no back-end channel (BACKEND_REQ), the guest sees it after a reset" : "");
	c->capacity = capacity;
	if (c->backend_req < 0)
		return;
	ret = vu_msg_notify(c->backend_req, VU_BACKEND_CONFIG_CHANGE_MSG);
	if (ret)
		serve_log(c->name, "CONFIG_CHANGE_MSG: %s", strerror(-ret));
}

static void forget_state(struct conn *c)
{
	mem_unmap_others(&c->mem, NULL);
	if (c->log)
		munmap(c->log, c->log_size);
	c->log = NULL;
	c->log_size = 0;
	memset(c->rings, 0, sizeof(c->rings));
	c->features = 0;
}

/*
 * RESET_DEVICE, and the deprecated RESET_OWNER, which the specification
 * asks back-ends to ignore or to take as "disable all rings": every ring
 * stops and forgets its size, addresses and kick; the connection's state
 * (memory, log, features, the kernel device) stays. See the top of the file.
 */
static int handle_reset(struct conn *c)
{
	unsigned int i;
	int ret;

	ret = kernel_stop(c);
	for (i = 0; i < VHOST_BLK_MAX_QUEUES && !ret; i++)
		if (c->rings[i].started)
			ret = kernel_ring_addr(c, i, false);
	if (ret)
		return ret;
	memset(c->rings, 0, sizeof(c->rings));
	return kernel_start(c);
}

/* Requests whose reply is their answer: no REPLY_ACK on top. */
static bool has_reply(uint32_t req)
{
	switch (req) {
	case VU_GET_FEATURES:
	case VU_GET_PROTOCOL_FEATURES:
	case VU_GET_QUEUE_NUM:
	case VU_GET_VRING_BASE:
	case VU_GET_CONFIG:
	case VU_GET_MAX_MEM_SLOTS:
	case VU_SET_LOG_BASE:
		return true;
	default:
		return false;
	}
}

static int dispatch(struct conn *c, struct vu_msg *m)
{
	switch (m->hdr.request) {
	case VU_GET_FEATURES:
		return handle_get_features(c);
	case VU_SET_FEATURES:
		return handle_set_features(c, m);
	case VU_SET_OWNER:
		return 0;	/* we are the kernel device's owner already */
	case VU_RESET_OWNER:
	case VU_RESET_DEVICE:
		return handle_reset(c);
	case VU_GET_PROTOCOL_FEATURES:
		return reply_u64(c, VU_GET_PROTOCOL_FEATURES, PROTOCOL_FEATURES);
	case VU_SET_PROTOCOL_FEATURES:
		return handle_set_protocol_features(c, m);
	case VU_GET_QUEUE_NUM:
		return reply_u64(c, VU_GET_QUEUE_NUM, c->opts->num_queues);
	case VU_GET_MAX_MEM_SLOTS:
		return reply_u64(c, VU_GET_MAX_MEM_SLOTS, VU_MAX_MEM_SLOTS);
	case VU_SET_MEM_TABLE:
		return handle_set_mem_table(c, m);
	case VU_ADD_MEM_REG:
		return handle_add_mem_reg(c, m);
	case VU_REM_MEM_REG:
		return handle_rem_mem_reg(c, m);
	case VU_SET_LOG_BASE:
		return handle_set_log_base(c, m);
	case VU_SET_LOG_FD:
		return KIOCTL(c, VHOST_SET_LOG_FD, &m->fds[0]);
	case VU_SET_VRING_NUM:
		return handle_vring_num(c, m);
	case VU_SET_VRING_BASE:
		return handle_vring_base(c, m);
	case VU_SET_VRING_ADDR:
		return handle_vring_addr(c, m);
	case VU_GET_VRING_BASE:
		return handle_get_vring_base(c, m);
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		return handle_vring_fd(c, m);
	case VU_SET_VRING_ENABLE:
		return handle_vring_enable(c, m);
	case VU_GET_CONFIG:
		return handle_get_config(c, m);
	case VU_SET_CONFIG:
		return failf(c, -EPERM, "the device has no writable config");
	case VU_SET_BACKEND_REQ_FD:
		return handle_set_backend_req_fd(c, m);
	default:
		return failf(c, -EOPNOTSUPP, "request not supported");
	}
}

int conn_handle(struct conn *c, struct vu_msg *m)
{
	uint32_t req = m->hdr.request;
	const char *name = vu_request_name(req);
	bool ack = (m->hdr.flags & VU_FLAG_NEED_REPLY) &&
		   (c->protocol_features & (1ULL << VU_PROTOCOL_F_REPLY_ACK)) &&
		   !has_reply(req);
	const char *why;
	int ret;

	c->why[0] = 0;
	ret = vu_msg_check(&m->hdr, &m->payload, m->nfds, &why);
	if (ret)
		failf(c, ret, "%s", why);
	else
		ret = dispatch(c, m);
	vu_msg_close_fds(m);	/* the kernel and mmap hold what they need */

	if (ret && req >= VU_REQUEST_MAX)
		serve_log(c->name, "request %u: %s", req, c->why);
	else if (ret)
		serve_log(c->name, "%s: %s", name, c->why[0] ? c->why : strerror(-ret));
	if (ack) {
		if (reply_u64(c, req, ret ? 1 : 0))
			return -EPIPE;
		return 0;
	}
	if (!ret || req == VU_SET_CONFIG)
		return 0;
	if (req == VU_GET_CONFIG) {
		/* An empty reply is GET_CONFIG's error. */
		return vu_msg_reply(c->sock, req, NULL, 0) ? -EPIPE : 0;
	}
	/* The front-end cannot learn of the failure: end the connection. */
	return ret;
}

/* ------------------------------------------------------------------------
 * Connections
 */

struct conn *conn_open(const struct serve_opts *opts, const char *name,
		       int sock, int backend_fd)
{
	struct conn *c;
	const char *why;
	int ret;

	c = calloc(1, sizeof(*c));
	if (!c) {
		serve_log(name, "front-end refused: out of memory");
		close(sock);
		return NULL;
	}
	c->opts = opts;
	c->name = name;
	c->sock = sock;
	c->backend_fd = backend_fd;
	c->backend_req = -1;
	c->kfd = kdev_open(&why);
	if (c->kfd < 0) {
		serve_log(name, "%s: %s: %s; disconnecting", KDEV_PATH, why,
			  strerror(-c->kfd));
		goto fail;
	}
	/* Exactly the queues served, before the owner: they are allocated then. */
	ret = kdev_set_num_queues(c->kfd, opts->num_queues, &why);
	if (ret) {
		serve_log(name, "%s: %s%s%s; disconnecting", KDEV_PATH, why,
			  ret == -ENOTTY ? "" : ": ",
			  ret == -ENOTTY ? "" : strerror(-ret));
		goto fail;
	}
	if (kernel_setup(c)) {
		serve_log(name, "%s: %s; disconnecting", opts->backend, c->why);
		goto fail;
	}
	return c;
fail:
	conn_close(c);
	return NULL;
}

void conn_close(struct conn *c)
{
	if (c->kfd >= 0) {
		/* Drains every request in flight before the memory goes. */
		kernel_stop(c);
		close(c->kfd);
	}
	forget_state(c);
	if (c->backend_req >= 0)
		close(c->backend_req);
	close(c->sock);
	free(c);
}
