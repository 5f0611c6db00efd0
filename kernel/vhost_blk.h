/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhost-blk: private definitions shared by the files of the module.
 *
 * main.c     the character device: open/release, ioctls, start and stop
 * backend.c  the block device behind a vhost-blk device: attach, limits,
 *            config space
 * request.c  one request's life: parse the chain, build bios, complete
 * netlink.c  the "vhost_blk" generic netlink family: every device's state
 *            and counters
 */
#ifndef _VHOST_BLK_H
#define _VHOST_BLK_H

#include <linux/bio.h>
#include <linux/llist.h>
#include <linux/u64_stats_sync.h>
#include <linux/vhost_blk.h>
#include <linux/vhost_blk_nl.h>
#include <linux/workqueue.h>

#include "compat.h"
#include "vhost.h"

/*
 * VHOST_BLK_NO_DATA_LOG builds the live-migration test's control, never a
 * module for use: vhost_blk_nolog.ko, /dev/vhost-blk-nolog, which leaves the
 * data pages of reads out of the dirty log (the status byte and the rings
 * are still logged). The test must fail against it (scripts/build-module
 * --control, selftests/vhost_blk/migration_test.sh).
 */
#ifdef VHOST_BLK_NO_DATA_LOG
#define VHOST_BLK_MISC_NAME	"vhost-blk-nolog"
#define VHOST_BLK_NL_FAMILY	"vhost_blk_nolog"
#define VHOST_BLK_LOG_DATA	false
#else
#define VHOST_BLK_MISC_NAME	"vhost-blk"
#define VHOST_BLK_NL_FAMILY	VHOST_BLK_GENL_NAME
#define VHOST_BLK_LOG_DATA	true
#endif

/* Pages of a request that fit the preallocated bio and page array. */
#define VHOST_BLK_INLINE_PAGES	32

/**
 * struct vhost_blk_backend - the block device a vhost-blk device serves
 * @file: the open block device file; holding it keeps the device open
 * @bdev: its block device
 *
 * Immutable from attach to detach; started virtqueues point at it through
 * their private_data, so it is only freed once every queue is stopped.
 */
struct vhost_blk_backend {
	struct file *file;
	struct block_device *bdev;
};

/* What a request is counted as (struct vhost_blk_stats). */
enum vhost_blk_req_kind {
	VHOST_BLK_KIND_IN,
	VHOST_BLK_KIND_OUT,
	VHOST_BLK_KIND_FLUSH,
	VHOST_BLK_KIND_GET_ID,
	VHOST_BLK_KIND_DISCARD,
	VHOST_BLK_KIND_WRITE_ZEROES,
	VHOST_BLK_KIND_SECURE_ERASE,
	VHOST_BLK_KIND_OTHER,
	VHOST_BLK_NR_KINDS
};

/*
 * A queue's counters, in the order STATS_GET sends them: requests in the
 * used ring by enum vhost_blk_req_kind; 512-byte sectors of the IN and OUT
 * requests that succeeded; requests answered IOERR, UNSUPP; requests whose
 * data went through bounce pages, and those data bytes; passes of the kick
 * handler; signals of the call eventfd; updates of the used ring; chains
 * refused as malformed; reads and writes completed by polling; then
 * requests by time from the avail ring to the used ring, log2 buckets of
 * microseconds (VHOST_BLK_A_STAT_LATENCY_HIST).
 */
enum vhost_blk_counter {
	VHOST_BLK_C_REQ,
	VHOST_BLK_C_SECTORS_READ = VHOST_BLK_C_REQ + VHOST_BLK_NR_KINDS,
	VHOST_BLK_C_SECTORS_WRITTEN,
	VHOST_BLK_C_ERR_IOERR,
	VHOST_BLK_C_ERR_UNSUPP,
	VHOST_BLK_C_BOUNCED_REQS,
	VHOST_BLK_C_BOUNCED_BYTES,
	VHOST_BLK_C_KICKS,
	VHOST_BLK_C_INTERRUPTS,
	VHOST_BLK_C_USED_BATCHES,
	VHOST_BLK_C_DRIVER_ERRORS,
	VHOST_BLK_C_POLLED,
	VHOST_BLK_C_LATENCY,
	VHOST_BLK_NR_COUNTERS = VHOST_BLK_C_LATENCY + VHOST_BLK_LAT_BUCKETS
};

/**
 * struct vhost_blk_stats - what one queue did, for the netlink family
 * @syncp: the readers' retry point (a no-op on 64-bit kernels)
 * @c: the counters, by enum vhost_blk_counter
 *
 * Written only under the queue mutex (by the queue's worker, or by the
 * stop that reports a dead owner's requests), in short sections with
 * interrupts off (vhost_blk_stats_add()): a batch counts on its stack
 * first, since it sleeps. Read without any lock; the request path takes no
 * lock and no atomic for them. Kept from open to release.
 */
struct vhost_blk_stats {
	struct u64_stats_sync syncp;
	u64_stats_t c[VHOST_BLK_NR_COUNTERS];
};

/* What a batch counted, added to its queue's stats at its end. */
struct vhost_blk_counts {
	u64 c[VHOST_BLK_NR_COUNTERS];
};

/* Adds @counts to @s. Caller holds the queue's mutex. */
static inline void vhost_blk_stats_add(struct vhost_blk_stats *s,
				       const struct vhost_blk_counts *counts)
{
	unsigned long flags;
	unsigned int i;

	flags = u64_stats_update_begin_irqsave(&s->syncp);
	for (i = 0; i < VHOST_BLK_NR_COUNTERS; i++)
		if (counts->c[i])
			u64_stats_add(&s->c[i], counts->c[i]);
	u64_stats_update_end_irqrestore(&s->syncp, flags);
}

/* Adds one to counter @c of @s. Caller holds the queue's mutex. */
static inline void vhost_blk_stats_inc(struct vhost_blk_stats *s,
				       enum vhost_blk_counter c)
{
	unsigned long flags;

	flags = u64_stats_update_begin_irqsave(&s->syncp);
	u64_stats_inc(&s->c[c]);
	u64_stats_update_end_irqrestore(&s->syncp, flags);
}

/**
 * struct vhost_blk_req - one request between avail ring and used ring
 * @node: link in the queue's completion list
 * @bvq: the queue the request came from
 * @head: its descriptor head, also its index in @bvq->reqs
 * @status: the virtio-blk status to report (VIRTIO_BLK_S_*)
 * @kind: what it is counted as (enum vhost_blk_req_kind)
 * @busy: taken from the avail ring and not yet finished; a driver that
 *        offers the head again before that has its queue stopped
 * @to_guest: the device writes guest memory (IN): pages become dirty
 * @bounced: @bvecs hold bounce pages owned by the request, not pinned
 *           guest pages
 * @logged: dirty logging was on when the request started: @status_log (and
 *          @log, when the device writes data) go to the log at completion
 * @status_addr: where the status byte goes, in the owner's address space;
 *               NULL when the chain has no device-writable byte
 * @written: data bytes written to the guest on success (IN, GET_ID)
 * @type: its virtio-blk type, for the tracepoints (0 until parsed)
 * @sector: its first sector, likewise
 * @data_len: data bytes of an IN or OUT request, for the counters
 * @start_ns: when it was taken from the avail ring (ktime_get_ns())
 * @log: the device-writable buffers' guest-physical ranges, only while
 *       dirty logging and only for requests that write data (IN, GET_ID);
 *       allocated per request
 * @log_num: entries in @log
 * @status_log: the status byte's guest-physical address, while logging: it
 *              is logged even when @log could not be allocated
 * @mem: bytes charged to the queue's budget (@bvq->mem_used) for the
 *       request's bounce pages, bio_vec table and @log
 * @bvecs: the data pages: @inline_vecs, or allocated for large requests
 * @nvecs: entries in @bvecs
 * @bounce_iov: for a bounced read: the guest buffers to copy to; allocated
 * @bounce_nr: entries in @bounce_iov
 * @polled: its read or write was submitted REQ_POLLED and is on
 *          @bvq->polled until reported; completes only when polled
 * @retry: the block layer refused a polled bio without blocking
 *         (BLK_STS_AGAIN or BLK_STS_NOTSUPP): it goes on @bvq->parked and
 *         is submitted again, without REQ_POLLED. Set by the bio
 *         completion, read by the worker after the completed list
 * @poll_node: link in @bvq->polled or @bvq->parked
 * @opf: what its read or write is submitted as, but for REQ_POLLED and
 *       REQ_NOWAIT: kept for a resubmission, since the bio's own fields
 *       belong to the block layer until it ends
 * @bdev: the block device it goes to, likewise
 * @bio: the request's data or flush bio, over @bvecs
 * @inline_vecs: vectors for requests of up to VHOST_BLK_INLINE_PAGES pages
 *
 * Lives in the queue's @reqs table from start to stop. The worker fills it
 * under the queue mutex; once its I/O is submitted only the bio completion
 * touches it (@status), then the completion work finishes it under the
 * queue mutex.
 */
struct vhost_blk_req {
	struct llist_node node;
	struct vhost_blk_vq *bvq;
	u16 head;
	u8 status;
	u8 kind;
	bool busy;
	bool to_guest;
	bool bounced;
	bool logged;
	u8 __user *status_addr;
	u32 written;
	u32 type;
	u64 sector;
	u32 data_len;
	u64 start_ns;
	bool polled;
	bool retry;
	struct list_head poll_node;
	blk_opf_t opf;
	struct block_device *bdev;
	struct vhost_log *log;
	unsigned int log_num;
	struct vhost_log status_log;
	size_t mem;
	struct bio_vec *bvecs;
	unsigned int nvecs;
	struct iovec *bounce_iov;
	unsigned int bounce_nr;
	struct bio bio;
	struct bio_vec inline_vecs[VHOST_BLK_INLINE_PAGES];
};

/**
 * struct vhost_blk_vq - a virtqueue and the requests taken from it
 * @vq: the vhost core's queue; its mutex protects everything below except
 *      @completed, @inflight and @serving (see there)
 * @blk: the device
 * @reqs: one request slot per descriptor head, allocated at start
 * @completed: requests whose I/O ended, pushed lock-free from bio
 *             completion, drained by @complete_work
 * @complete_work: reports @completed in the used ring, on the worker
 * @inflight: requests taken from the avail ring and not yet in the used
 *            ring; stop waits for zero
 * @serving: the worker is in vhost_blk_serve() and looks at @completed
 *           before it leaves, so a completion need not queue
 *           @complete_work (and wake the worker) for it. Written by the
 *           worker under the queue mutex, read without lock by bio
 *           completion; both sides order it against @completed with a
 *           full barrier
 * @orphaned: a completion found the queue without a worker (its owner was
 *            killed, 6.10 and later): stop reports what is left itself.
 *            Set without lock by bio completion (smp_store_mb, then the
 *            wake-up), read by stop, cleared under the queue mutex at
 *            start, when no completion can run
 * @mem_budget: bytes the requests in flight may hold in bounce pages,
 *              bio_vec tables and log copies (module parameter
 *              queue_mem_kb, read at start)
 * @mem_used: bytes they hold now
 * @mem_wanted: what the request waiting in the avail ring needs, 0 when
 *              none waits; the completion work requeues the kick handler
 *              once it fits
 * @stats: its counters; under the queue mutex for writers, none for readers
 * @worker_tid: the thread (global pid) that last ran the kick handler: the
 *              queue's vhost worker; written by it, read locklessly
 * @errors_base: @stats' driver errors when the queue last started, under the
 *               queue mutex; more since then make the device's state
 *               QUEUE_ERROR
 * @polled: requests whose bios went REQ_POLLED, oldest first, until they
 *          are reported; nothing but bio_poll() completes them, so while
 *          there are any the worker submits nothing that may sleep in the
 *          block layer (request.c, "Polled I/O")
 * @npolled: entries in @polled; read without lock by stop
 * @parked: requests whose bios wait for @polled to empty: polled reads
 *          and writes the block layer refused (@retry), and reads and
 *          writes that cannot be polled
 * @nparked: entries in @parked; read without lock by stop
 * @held: the avail ring holds a request that waits for @polled to empty
 *        before it is taken (one that would submit a bio that may sleep)
 */
struct vhost_blk_vq {
	struct vhost_virtqueue vq;
	struct vhost_blk *blk;
	struct vhost_blk_req *reqs;
	size_t mem_budget;
	size_t mem_used;
	size_t mem_wanted;
	struct llist_head completed;
	struct vhost_work complete_work;
	atomic_t inflight;
	bool serving;
	bool orphaned;
	struct vhost_blk_stats stats;
	pid_t worker_tid;
	u64 errors_base;
	struct list_head polled;
	unsigned int npolled;
	struct list_head parked;
	unsigned int nparked;
	bool held;
};

/**
 * struct vhost_blk - one virtio-blk device, the state of one open file
 * @dev: the vhost core device; once @ready, its mutex serialises every
 *       ioctl
 * @init_lock: serialises VHOST_BLK_SET_NUM_QUEUES with the setup of the
 *             queues
 * @nvqs: the number of virtqueues; @init_lock until @ready, then fixed
 * @ready: @vqs and @dev are set up; set once, by the first VHOST_SET_OWNER
 *         (store-release, read with load-acquire), until release
 * @vqs: the virtqueues, @nvqs of them
 * @vq_ptrs: the array of @vqs pointers the core indexes
 * @backend: the attached block device or NULL; dev.mutex
 * @running: its queues are served (started, no stop begun); dev.mutex,
 *           read without it by the netlink family
 * @force_ro: VHOST_BLK_SET_READ_ONLY
 * @serial: GET_ID's answer
 * @memcg: the owner's memory cgroup, taken at VHOST_SET_OWNER and dropped
 *         when the owner goes; what requests allocate is charged to it
 * @owner: the owner's thread group, held from VHOST_SET_OWNER until the
 *         owner goes; the device stops when it dies (vhost_blk_file_flush())
 * @owner_comm: the owner's command name at VHOST_SET_OWNER
 * @features: the features the owner set (VHOST_SET_FEATURES)
 * @id: the device's number in the netlink family, from open to release
 * @info_lock: the netlink family's readers' lock: @backend, @owner,
 *             @owner_comm and @features change under it too (and under
 *             dev.mutex), so a reader needs it alone
 * @free_work: frees the device a grace period after release, when no
 *             netlink reader can still be looking at it
 *
 * @force_ro, @serial, @memcg and @owner change under dev.mutex and only
 * while every queue is stopped, so the worker reads them under its queue
 * mutex alone.
 *
 * Allocated in open, the queues at the first VHOST_SET_OWNER; everything
 * it holds is let go in release, and its memory freed one RCU grace period
 * later (vhost_blk_release()).
 */
struct vhost_blk {
	struct vhost_dev dev;
	struct mutex init_lock;	/* serialises the setup of the queues */
	unsigned int nvqs;
	bool ready;
	struct vhost_blk_vq *vqs;
	struct vhost_virtqueue **vq_ptrs;
	struct vhost_blk_backend *backend;
	bool running;
	bool force_ro;
	u8 serial[VIRTIO_BLK_ID_BYTES];
	struct mem_cgroup *memcg;
	struct pid *owner;
	char owner_comm[TASK_COMM_LEN];
	u64 features;
	u32 id;
	spinlock_t info_lock;	/* see above */
	struct rcu_work free_work;
};

/* main.c */
extern unsigned int vhost_blk_queue_mem_kb;
extern struct workqueue_struct *vhost_blk_wq;

/* backend.c */
struct vhost_blk_backend *vhost_blk_backend_open(int fd);
void vhost_blk_backend_close(struct vhost_blk_backend *be);
bool vhost_blk_backend_read_only(const struct vhost_blk_backend *be);
unsigned int vhost_blk_backend_write_zeroes_sectors(const struct vhost_blk_backend *be);
unsigned int vhost_blk_backend_secure_erase_sectors(const struct vhost_blk_backend *be);
u64 vhost_blk_backend_features(const struct vhost_blk_backend *be);
void vhost_blk_backend_config(const struct vhost_blk_backend *be,
			      struct vhost_blk_config *config);

/* request.c */
void vhost_blk_handle_kick(struct vhost_work *work);
void vhost_blk_complete_work(struct vhost_work *work);
void vhost_blk_finish_stopped(struct vhost_blk_vq *bvq);

/* netlink.c */
int vhost_blk_nl_register(struct vhost_blk *blk);
void vhost_blk_nl_unregister(struct vhost_blk *blk);
int vhost_blk_netlink_init(void);
void vhost_blk_netlink_exit(void);

#endif /* _VHOST_BLK_H */
