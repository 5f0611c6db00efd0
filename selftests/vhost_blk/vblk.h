/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vblk: a virtio-blk driver in a process, the "guest" of the vhost-blk
 * selftests and benchmarks.
 *
 * The process owns a vhost-blk device (it calls VHOST_SET_OWNER), maps the
 * guest memory, lays split virtqueues out in it and drives them the way a
 * guest driver would: descriptors carry guest-physical addresses that the
 * memory table translates, kicks go through the kick eventfd, completions
 * arrive on the call eventfd. Every wait is bounded by a timeout.
 *
 * Layers, each usable on its own:
 *   guest memory  vblk_mem_*: regions, a bump allocator, hva <-> gpa
 *   device        vblk_dev_*: open, owner, features, memory table, queues,
 *                 backend, the vhost-blk ioctls, the dirty log
 *   queue (raw)   vblk_queue_*: descriptors, avail ring, kicks, used ring,
 *                 for chains of any shape (malformed ones included)
 *   requests      vblk_req_*, vblk_submit/reap/exec and the synchronous
 *                 vblk_read/write/...: well-formed virtio-blk requests
 *   backends      vblk_backend_*: block devices created in the test machine
 *                 (null_blk, brd, loop, dm-error, dm-flakey) and sysfs
 *
 * Functions return 0 (or a count) on success and a negative errno on
 * failure; none prints. Nothing here is thread safe, except that different
 * queues of one device may be driven from different threads: the guest
 * memory allocator, which the request layer also uses (indirect tables grow
 * on demand), takes a lock.
 */
#ifndef VBLK_H
#define VBLK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/vhost_blk.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>

#define VBLK_DEV_PATH		"/dev/vhost-blk"

/* Guest memory defaults: two regions, the second above a hole. */
#define VBLK_MEM_SIZE		(64UL << 20)
#define VBLK_GPA_BASE		0x100000000ULL
#define VBLK_GPA_HOLE		0x200000ULL
#define VBLK_GPA_INVALID	(~0ULL)
#define VBLK_PAGE_SIZE		4096UL

#define VBLK_QUEUE_SIZE		256
#define VBLK_MAX_QUEUE_SIZE	1024
#define VBLK_TIMEOUT_MS		5000

#define VBLK_SECTOR_SIZE	512
#define VBLK_HDR_SIZE		16	/* struct virtio_blk_outhdr */
#define VBLK_MAX_HDR_DESCS	16	/* header split at most this fine */
/* The status byte before the device wrote it. */
#define VBLK_STATUS_NONE	0xff

/* A buffer in guest memory, seen from both sides. */
struct vblk_buf {
	void *hva;
	uint64_t gpa;
	size_t len;
};

/* ------------------------------------------------------------------------
 * Guest memory
 */

struct vblk_region {
	uint8_t *hva;
	uint64_t gpa;
	size_t size;
	size_t used;		/* bump allocator: bytes handed out */
};

/*
 * One memfd, mapped MAP_SHARED once, cut into one or two regions. With two,
 * the first region (lower gpa) is the upper half of the mapping and the
 * second region sits VBLK_GPA_HOLE above the first's end: hva order and gpa
 * order differ and a hole separates them, so a wrong translation shows.
 */
struct vblk_mem {
	pthread_mutex_t lock;	/* serialises the allocator */
	int fd;
	uint8_t *map;
	size_t size;
	struct vblk_region regions[2];
	unsigned int nregions;
};

/* A point to roll the allocator back to. */
struct vblk_mem_mark {
	size_t used[2];
};

int vblk_mem_init(struct vblk_mem *mem, size_t size, unsigned int nregions);
void vblk_mem_cleanup(struct vblk_mem *mem);
/* Zeroed, @align-aligned (power of two), never across a region boundary. */
int vblk_mem_alloc(struct vblk_mem *mem, size_t len, size_t align,
		   struct vblk_buf *buf);
/* The same, from region @region only. */
int vblk_mem_alloc_in(struct vblk_mem *mem, unsigned int region, size_t len,
		      size_t align, struct vblk_buf *buf);
struct vblk_mem_mark vblk_mem_mark(const struct vblk_mem *mem);
void vblk_mem_release(struct vblk_mem *mem, struct vblk_mem_mark mark);
/* VBLK_GPA_INVALID / NULL when outside guest memory. */
uint64_t vblk_mem_gpa(const struct vblk_mem *mem, const void *hva);
void *vblk_mem_hva(const struct vblk_mem *mem, uint64_t gpa);
/* Highest guest-physical address + 1. */
uint64_t vblk_mem_gpa_end(const struct vblk_mem *mem);

/* @len bytes of @buf from @off (clamped to the buffer). */
struct vblk_buf vblk_buf_slice(const struct vblk_buf *buf, size_t off,
			       size_t len);
/* Total length of @n buffers. */
size_t vblk_bufs_len(const struct vblk_buf *bufs, unsigned int n);
/* Copies the buffers' contents, in order, to @dst; or @src into them. */
void vblk_bufs_gather(const struct vblk_buf *bufs, unsigned int n, void *dst);
void vblk_bufs_scatter(const struct vblk_buf *bufs, unsigned int n,
		       const void *src);

/* ------------------------------------------------------------------------
 * Queues: the raw interface
 */

struct vblk_dev;
struct vblk_req;

struct vblk_queue {
	struct vblk_dev *dev;
	unsigned int index;
	unsigned int num;
	bool ready;		/* set up (rings, eventfds) */
	bool event_idx;
	struct vring vr;	/* desc/avail/used at their hvas */
	struct vblk_buf ring;	/* the guest memory holding the rings */
	uint64_t used_gpa;
	int kick_fd;
	int call_fd;
	int err_fd;
	uint16_t *free;		/* stack of free descriptor indices */
	unsigned int nfree;
	uint16_t avail_idx;	/* our copy of avail->idx */
	uint16_t kick_idx;	/* avail->idx when we last decided to kick */
	uint16_t used_idx;	/* next used entry to read */
	/* Request layer: per head, the request, its header and status slot. */
	struct vblk_req **reqs;
	struct vblk_buf meta;	/* num slots of VBLK_META_SLOT bytes */
	struct vblk_buf *tables;	/* indirect table per head, grown lazily */
	struct vblk_buf scratch;	/* range segments of synchronous calls */
	unsigned int inflight;
	/* Statistics, for tests of notification suppression. */
	unsigned long kicks;
	unsigned long kicks_suppressed;
	unsigned long calls;
};

#define VBLK_META_SLOT		32	/* header at 0, status byte at 16 */
#define VBLK_SCRATCH_SIZE	4096

/* Descriptor table access for hand-made chains. */
void vblk_queue_set_desc(struct vblk_queue *q, uint16_t i, uint64_t addr,
			 uint32_t len, uint16_t flags, uint16_t next);
/* Takes @n descriptors off the free list into @ids; -ENOSPC if too few. */
int vblk_queue_take_descs(struct vblk_queue *q, unsigned int n, uint16_t *ids);
void vblk_queue_put_descs(struct vblk_queue *q, unsigned int n,
			  const uint16_t *ids);
/* Puts @head in the avail ring and publishes the new avail->idx. */
void vblk_queue_publish(struct vblk_queue *q, uint16_t head);
/* Kicks if the device asked for it (NO_NOTIFY or avail_event); 1 if kicked. */
int vblk_queue_kick(struct vblk_queue *q);
/* Kicks unconditionally. */
int vblk_queue_notify(struct vblk_queue *q);
/* Next used entry, waiting up to @timeout_ms; -ETIMEDOUT, -EPROTO. */
int vblk_queue_wait_used(struct vblk_queue *q, struct vring_used_elem *elem,
			 int timeout_ms);
/* Used entries the device published that we have not read yet. */
unsigned int vblk_queue_used_pending(const struct vblk_queue *q);
/* Error eventfd signals since the last call (0 when none). */
uint64_t vblk_queue_errors(struct vblk_queue *q);
/* Waits up to @timeout_ms for an error signal; its count, or -ETIMEDOUT. */
int vblk_queue_wait_error(struct vblk_queue *q, int timeout_ms);
/* VHOST_GET_VRING_BASE: the device's next avail index. */
int vblk_queue_device_avail(struct vblk_queue *q, uint16_t *idx);

/* ------------------------------------------------------------------------
 * Requests
 */

enum vblk_dir {
	VBLK_DIR_AUTO,		/* from the type: IN and GET_ID write data */
	VBLK_DIR_OUT,		/* device reads the data segments */
	VBLK_DIR_IN,		/* device writes the data segments */
};

struct vblk_req {
	/* Set by the caller (vblk_req_init sets the common ones). */
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
	const struct vblk_buf *segs;	/* data segments, in guest memory */
	unsigned int nsegs;
	unsigned int hdr_descs;	/* split the header over this many; 0 = 1 */
	bool indirect;		/* whole chain in an indirect table */
	enum vblk_dir dir;
	void *priv;		/* the caller's */
	/* Set by the library at completion. */
	bool done;
	uint8_t status;
	uint32_t used_len;
	/* Library private while in flight. */
	uint16_t head;
	unsigned int ndescs;	/* ring descriptors the chain uses */
};

void vblk_req_init(struct vblk_req *req, uint32_t type, uint64_t sector,
		   const struct vblk_buf *segs, unsigned int nsegs);
/* Descriptors @req needs in the ring (1 when indirect). */
unsigned int vblk_req_ring_descs(const struct vblk_req *req);
/* Builds the chain and publishes it, without kicking; -ENOSPC if no room. */
int vblk_queue_add(struct vblk_queue *q, struct vblk_req *req);
/* vblk_queue_add, then vblk_queue_kick. */
int vblk_submit(struct vblk_queue *q, struct vblk_req *req);
/* Next completed request of the queue, waiting up to @timeout_ms. */
int vblk_reap(struct vblk_queue *q, struct vblk_req **req, int timeout_ms);
/* Reaps until @req is done (others completing meanwhile are marked done). */
int vblk_wait(struct vblk_queue *q, struct vblk_req *req, int timeout_ms);
/* Submits and waits: the status (VIRTIO_BLK_S_*) or a negative errno. */
int vblk_exec(struct vblk_queue *q, struct vblk_req *req);

/* Synchronous one-segment requests: the status or a negative errno. */
int vblk_read(struct vblk_queue *q, uint64_t sector, const struct vblk_buf *buf);
int vblk_write(struct vblk_queue *q, uint64_t sector, const struct vblk_buf *buf);
int vblk_flush(struct vblk_queue *q);
int vblk_get_id(struct vblk_queue *q, const struct vblk_buf *buf);
/* DISCARD, WRITE_ZEROES or SECURE_ERASE over @n ranges (at most 256). */
int vblk_ranges(struct vblk_queue *q, uint32_t type,
		const struct virtio_blk_discard_write_zeroes *ranges,
		unsigned int n);
int vblk_range(struct vblk_queue *q, uint32_t type, uint64_t sector,
	       uint32_t nsectors, uint32_t flags);

/* ------------------------------------------------------------------------
 * Devices
 */

struct vblk_opts {
	/* Transport features wanted besides VIRTIO_F_VERSION_1:
	 * VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC bits. */
	uint64_t features;
	unsigned int nqueues;	/* 0 = 1 */
	unsigned int queue_size;	/* 0 = VBLK_QUEUE_SIZE */
	size_t mem_size;	/* 0 = VBLK_MEM_SIZE */
	unsigned int nregions;	/* 0 = 2 */
	/*
	 * A worker of its own for every queue where the kernel has worker
	 * ioctls (Linux 6.5): queue 0 keeps the device's first worker, the
	 * others get one each (VHOST_NEW_WORKER); one for the device elsewhere.
	 */
	bool queue_workers;
	/*
	 * The device gets exactly nqueues queues (VHOST_BLK_SET_NUM_QUEUES);
	 * otherwise it has VHOST_BLK_DEFAULT_QUEUES, or nqueues when more.
	 */
	bool exact_queues;
};

struct vblk_dev {
	bool open;
	int fd;
	uint64_t features;	/* acknowledged with VHOST_SET_FEATURES */
	struct vblk_mem mem;
	struct vblk_queue queues[VHOST_BLK_MAX_QUEUES];
	unsigned int nqueues;
	unsigned int nworkers;	/* VHOST_NEW_WORKER calls of vblk_opts.queue_workers */
	int timeout_ms;		/* for the synchronous calls */
	bool logging;		/* VHOST_F_LOG_ALL acknowledged */
	uint8_t *log;		/* dirty bitmap, from the first log start */
	size_t log_size;
};

/* Opens VBLK_DEV_PATH; nothing else. */
int vblk_dev_open(struct vblk_dev *dev);
/*
 * Opens the device and sets it up up to, not including, the backend: owner,
 * features, memory table, every queue.
 */
int vblk_dev_setup(struct vblk_dev *dev, const struct vblk_opts *opts);
/*
 * vblk_dev_setup, then attaches the block device at @path opened with
 * @open_flags (the device keeps its own reference; ours is closed).
 */
int vblk_dev_start(struct vblk_dev *dev, const struct vblk_opts *opts,
		   const char *path, int open_flags);
/* Closes the device (stopping it) and frees everything; idempotent. */
void vblk_dev_close(struct vblk_dev *dev);

int vblk_dev_set_features(struct vblk_dev *dev, uint64_t features);
/* VHOST_NEW_WORKER: a new worker thread of the owner, its id in @id. */
int vblk_dev_new_worker(struct vblk_dev *dev, unsigned int *id);
/* VHOST_FREE_WORKER. */
int vblk_dev_free_worker(struct vblk_dev *dev, unsigned int id);
/* VHOST_ATTACH_VRING_WORKER: queue @index runs on worker @id from now on. */
int vblk_queue_attach_worker(struct vblk_dev *dev, unsigned int index,
			     unsigned int id);
/* VHOST_GET_VRING_WORKER: the worker of queue @index, in @id. */
int vblk_queue_get_worker(struct vblk_dev *dev, unsigned int index,
			  unsigned int *id);
int vblk_dev_get_features(struct vblk_dev *dev, uint64_t *features);
int vblk_dev_set_mem_table(struct vblk_dev *dev);
/*
 * The rings, request slots and eventfds of @q (its dev and index set), in
 * guest memory, without any vhost ioctl: for frontends that hand the rings
 * to a backend some other way (vhost-user).
 */
int vblk_queue_alloc(struct vblk_queue *q, unsigned int num);
/* vblk_queue_alloc, then NUM, BASE 0, ADDR, KICK, CALL, ERR. */
int vblk_queue_setup(struct vblk_dev *dev, unsigned int index,
		     unsigned int num);
/* Re-sends VHOST_SET_VRING_ADDR (with VHOST_VRING_F_LOG while logging). */
int vblk_queue_set_addr(struct vblk_queue *q);

/* VHOST_BLK_SET_BACKEND with @fd (-1 stops). */
int vblk_dev_set_backend(struct vblk_dev *dev, int fd);
int vblk_dev_get_config(struct vblk_dev *dev, struct vhost_blk_config *cfg);
int vblk_dev_set_read_only(struct vblk_dev *dev, uint32_t ro);
/* @serial: up to VIRTIO_BLK_ID_BYTES characters, NUL-padded here. */
int vblk_dev_set_serial(struct vblk_dev *dev, const char *serial);

/*
 * Dirty logging: a bitmap of one bit per 4 KiB guest-physical page (bit
 * gpa / 4096 % 8 of byte gpa / 4096 / 8), VHOST_SET_LOG_BASE, VHOST_F_LOG_ALL
 * in the features and VHOST_VRING_F_LOG on every queue.
 */
int vblk_dev_log_start(struct vblk_dev *dev);
int vblk_dev_log_stop(struct vblk_dev *dev);
/* Whether any page of [gpa, gpa + len) is marked dirty. */
bool vblk_log_dirty(const struct vblk_dev *dev, uint64_t gpa, size_t len);
/* Whether every page of [gpa, gpa + len) is marked dirty. */
bool vblk_log_all_dirty(const struct vblk_dev *dev, uint64_t gpa, size_t len);
void vblk_log_clear(struct vblk_dev *dev);

/* ------------------------------------------------------------------------
 * Data patterns
 */

/* Fills @len bytes with a pattern that depends on @seed and the offset. */
void vblk_pattern_fill(void *p, size_t len, uint64_t seed);
/* Offset of the first byte that differs from the pattern, or -1. */
ssize_t vblk_pattern_check(const void *p, size_t len, uint64_t seed);
/* Offset of the first byte that is not @c, or -1. */
ssize_t vblk_mem_check_byte(const void *p, size_t len, uint8_t c);
/* Offset of the first byte where @a and @b differ, or -1. */
ssize_t vblk_mem_diff(const void *a, const void *b, size_t len);

/* ------------------------------------------------------------------------
 * Backends: block devices created in the test machine
 */

enum vblk_backend_kind {
	VBLK_BE_NULLB,		/* null_blk over configfs, memory backed */
	VBLK_BE_BRD,		/* the single brd ramdisk, /dev/ram0 */
	VBLK_BE_LOOP,		/* loop over an unlinked file in /tmp */
	VBLK_BE_DM_ERROR,	/* dm "error" target: every I/O fails */
	VBLK_BE_DM_FLAKEY,	/* dm-flakey over a null_blk */
};

struct vblk_backend_opts {
	uint64_t size;		/* bytes; 0 = 64 MiB */
	unsigned int block_size;	/* logical block size; 0 = 512 */
	bool discard;		/* null_blk: discard=1 */
	bool no_memory;		/* null_blk: not memory backed */
	/* null_blk: complete every request after this many ns (timer). */
	unsigned long completion_nsec;
	/* null_blk: tags per hardware queue (0 = its default, 64)... */
	unsigned int hw_queue_depth;
	/* ...and one set of them for all its hardware queues. */
	bool shared_tags;
	/* dm-flakey: seconds up, then seconds failing every I/O. */
	unsigned int flakey_up, flakey_down;
};

struct vblk_backend {
	enum vblk_backend_kind kind;
	bool created;
	char name[32];		/* kernel disk name: /sys/block/<name> */
	char path[64];		/* its device node */
	char nullb[32];		/* null_blk configfs item (also under dm) */
	char dm_name[32];
	int loop_fd;		/* loop: held open until destroy */
	int file_fd;		/* loop: its unlinked file, for resizing */
	uint64_t size;
};

int vblk_backend_create(struct vblk_backend *be, enum vblk_backend_kind kind,
			const struct vblk_backend_opts *opts);
/* Removes the device, retrying while it is still busy; idempotent. */
int vblk_backend_destroy(struct vblk_backend *be);
/*
 * Grows or shrinks a loop backend to @size bytes (its file, then
 * LOOP_SET_CAPACITY, which tells the kernel and sends a uevent);
 * -EOPNOTSUPP for the other kinds.
 */
int vblk_backend_resize(struct vblk_backend *be, uint64_t size);
/* open(2) of the device node. */
int vblk_backend_open(const struct vblk_backend *be, int flags);
/* Direct I/O through the device node, bypassing the page cache. */
int vblk_backend_pread(const struct vblk_backend *be, void *buf, size_t len,
		       off_t off);
int vblk_backend_pwrite(const struct vblk_backend *be, const void *buf,
			size_t len, off_t off);
/* BLKROSET on the device node. */
int vblk_backend_set_ro(const struct vblk_backend *be, bool ro);
/* /sys/block/<name>/<attr> as a number. */
int vblk_sysfs_u64(const char *disk, const char *attr, uint64_t *val);

/*
 * ioctl(@fd, @req, @arg) in a forked child, a process that is not the
 * owner: 0 when it succeeded, else its errno; -1 if the child died.
 */
int vblk_child_ioctl(int fd, unsigned long req, void *arg);
/* Runs a shell command with its output discarded; its exit status. */
int vblk_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The threads named "vhost-<@owner>", the workers of the devices @owner
 * owns: kernel threads before Linux 6.4, threads of @owner since. Returns
 * how many there are and stores up to @max of their ids in @tids.
 */
unsigned int vblk_vhost_workers(pid_t owner, pid_t *tids, unsigned int max);
/* The first of them; -1 if none. */
pid_t vblk_vhost_worker(pid_t owner);
/*
 * The run times in ns (schedstat) of the threads @tids, a worker's kernel
 * thread or any process's thread, in @ns, once none of them runs any more:
 * two readings 20 ms apart that agree (a worker may still finish its loop
 * after the completion it signalled was seen).
 */
void vblk_threads_run_ns_settled(const pid_t *tids, unsigned int n,
				 unsigned long long *ns);
/* Whether the running kernel is release @major.@minor or later. */
bool vblk_kernel_at_least(unsigned int major, unsigned int minor);
/* The netlink family's id of the open device @fd (its fdinfo); 0 if none. */
uint32_t vblk_dev_id(int fd);
/* CLOCK_MONOTONIC in milliseconds, for deadlines. */
int64_t vblk_now_ms(void);
/* Writes @val to the file @path. */
int vblk_write_file(const char *path, const char *val);
/* The first line of the file @path, without its newline, in @buf. */
int vblk_read_line(const char *path, char *buf, size_t len);

#endif /* VBLK_H */
