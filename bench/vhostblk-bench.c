// SPDX-License-Identifier: GPL-2.0
/*
 * vhostblk-bench: drive a virtio-blk device the way a guest driver does,
 * without a guest, and measure it. The device is either /dev/vhost-blk with
 * a block device attached (the kernel path, no process in between) or a
 * vhost-user-blk back-end at a socket (vhostblk-setup serve, or
 * qemu-storage-daemon's export): then this program is the front-end and
 * shares its memory and rings with the back-end, as QEMU would. Built on the
 * selftests' guest-in-a-process library (selftests/vhost_blk/vblk.h, vu.h).
 *
 * Or, with --bare, no virtio device at all: the same driver loop on the
 * block device itself through io_uring (liburing; O_DIRECT, registered file
 * and buffers), the reference that the virtio modes are compared with. The
 * same threads, queue depths, offsets, batching, latency and CPU accounting
 * (see bare_thread), so that the only difference is the device in between.
 *
 *   vhostblk-bench (--device DEV | --vhost-user SOCKET | --bare DEV)
 *                  [--rw randread|randwrite|read|write] [--bs BYTES]
 *                  [--depth N] [--queues N] [--queue-workers] [--poll-us N]
 *                  [--seconds N] [--watch PID]...
 *
 * One thread per queue keeps DEPTH requests in flight until the time is up.
 * With --device, --poll-us gives every queue that busy-poll time
 * (VHOST_SET_VRING_BUSYLOOP_TIMEOUT, microseconds).
 * Prints one JSON object: IOPS, bandwidth, mean and p99 latency (from the
 * request's publication to its reaping), and the CPU seconds spent during
 * the run by this process ("cpu_driver_s", the guest driver's share; with
 * --bare all of it, the kernel's submission and completion included) and by
 * the device side ("cpu_device_s", 0 with --bare: there is none): each
 * --watch process (a vhost-user back-end) and the vhost worker threads of
 * this process and of the watched ones (threads named "vhost-<owner pid>":
 * kernel threads before Linux 6.4, threads of the owner since, then left out
 * of the owner's own share), and with --queue-workers one per queue
 * (--device, Linux 6.5). Of it the watched processes' own threads alone
 * ("cpu_daemon_s": a back-end's share outside the kernel's worker; null
 * with --bare). The device side's threads are sampled while the device is
 * open: a worker ends with its device.
 *
 * And what the kernel device counted during the run (the vhost_blk netlink
 * family, read as root): requests, used-ring updates, interrupts, kick
 * passes and reads and writes reaped by polling, "dev_*" keys; of this process's device with --device, of the
 * watched processes' devices with --vhost-user (a vhostblk-setup serve).
 * null where there is no such device (--bare) or the family cannot be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <liburing.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "nlclient.h"
#include "vblk.h"
#include "vu.h"

struct bench_opts {
	const char *device;
	const char *socket;
	const char *bare;	/* block device driven through io_uring */
	bool write;
	bool random;
	unsigned int bs;
	unsigned int depth;
	unsigned int queues;
	bool queue_workers;	/* --device: a worker per queue (Linux 6.5) */
	unsigned int poll_us;	/* --device: each queue's busy-poll time */
	unsigned int seconds;
	pid_t watch[8];
	unsigned int nwatch;
};

/* One queue's worker: its requests, buffers and latency samples. */
struct bench_queue {
	const struct bench_opts *opts;
	struct vblk_queue *q;
	uint64_t blocks;	/* device capacity in units of bs */
	uint64_t deadline_ns;
	struct vblk_req *reqs;
	struct vblk_buf *bufs;
	uint64_t *start_ns;	/* per request */
	uint64_t *lat_ns;	/* one sample per completed request */
	size_t nlat, cap;
	uint64_t next_block;	/* sequential position, or xorshift state */
	int err;
	/* --bare: the queue's own io_uring and its registered buffers. */
	struct io_uring ring;
	bool ring_ok;		/* ring set up: io_uring_queue_exit it */
	struct iovec *iov;	/* one buffer per request */
	void *buf_mem;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint64_t pick_block(struct bench_queue *bq)
{
	uint64_t x = bq->next_block;

	if (!bq->opts->random) {
		bq->next_block = (x + 1) % bq->blocks;
		return x;
	}
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	bq->next_block = x;
	return x % bq->blocks;
}

static int submit(struct bench_queue *bq, unsigned int i)
{
	struct vblk_req *req = &bq->reqs[i];
	uint64_t sector = pick_block(bq) * (bq->opts->bs / 512);

	vblk_req_init(req, bq->opts->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
		      sector, &bq->bufs[i], 1);
	req->priv = &bq->start_ns[i];
	bq->start_ns[i] = now_ns();
	return vblk_queue_add(bq->q, req);
}

static int record(struct bench_queue *bq, uint64_t lat)
{
	uint64_t *p;

	if (bq->nlat == bq->cap) {
		bq->cap = bq->cap ? 2 * bq->cap : 65536;
		p = realloc(bq->lat_ns, bq->cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		bq->lat_ns = p;
	}
	bq->lat_ns[bq->nlat++] = lat;
	return 0;
}

static void *queue_thread(void *arg)
{
	struct bench_queue *bq = arg;
	unsigned int i, inflight = 0;
	struct vblk_req *req;
	uint64_t t;
	int ret = 0;

	for (i = 0; i < bq->opts->depth && !ret; i++, inflight++)
		ret = submit(bq, i);
	if (!ret)
		ret = vblk_queue_kick(bq->q) < 0 ? -EIO : 0;
	while (!ret && inflight) {
		ret = vblk_reap(bq->q, &req, 10000);
		if (ret)
			break;
		inflight--;
		t = now_ns();
		if (req->status != VIRTIO_BLK_S_OK) {
			ret = -EIO;
			break;
		}
		ret = record(bq, t - *(uint64_t *)req->priv);
		if (!ret && t < bq->deadline_ns) {
			ret = submit(bq, req - bq->reqs);
			inflight++;
		}
		/*
		 * Kick once per batch: when nothing more is ready to reap. Also
		 * past the deadline, for the requests of the last batch.
		 */
		if (!ret && !vblk_queue_used_pending(bq->q))
			ret = vblk_queue_kick(bq->q) < 0 ? -EIO : 0;
	}
	bq->err = ret;
	return NULL;
}

/*
 * --bare: request @i's read or write at the next offset, drawn as submit()
 * draws it, in the ring's submission queue. Like vblk_queue_add it only
 * publishes: the kernel sees it at the next bare_kick. Its latency runs from
 * here, as submit()'s from vblk_queue_add.
 */
static int bare_submit(struct bench_queue *bq, unsigned int i)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&bq->ring);
	uint64_t off = pick_block(bq) * bq->opts->bs;

	if (!sqe)
		return -EBUSY;	/* not with depth entries for depth requests */
	if (bq->opts->write)
		io_uring_prep_write_fixed(sqe, 0, bq->iov[i].iov_base, bq->opts->bs,
					  off, i);
	else
		io_uring_prep_read_fixed(sqe, 0, bq->iov[i].iov_base, bq->opts->bs,
					 off, i);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, i);
	bq->start_ns[i] = now_ns();
	return 0;
}

/* The kick: hands the published requests to the kernel; none, no syscall. */
static int bare_kick(struct bench_queue *bq)
{
	int ret = io_uring_submit(&bq->ring);

	return ret < 0 ? ret : 0;
}

/*
 * The next completion, waiting up to @timeout_s as vblk_reap does: a ready
 * one without a syscall, else one io_uring_enter that sleeps until one comes
 * (the virtio modes' poll on the call eventfd). Its request in @i.
 */
static int bare_reap(struct bench_queue *bq, unsigned int *i, long timeout_s)
{
	struct __kernel_timespec ts = { .tv_sec = timeout_s };
	struct io_uring_cqe *cqe;
	int ret, res;

	do
		ret = io_uring_wait_cqe_timeout(&bq->ring, &cqe, &ts);
	while (ret == -EINTR);
	if (ret)
		return ret == -ETIME ? -ETIMEDOUT : ret;
	*i = io_uring_cqe_get_data64(cqe);
	res = cqe->res;
	io_uring_cqe_seen(&bq->ring, cqe);
	if (*i >= bq->opts->depth)
		return -EPROTO;
	if (res < 0)
		return res;
	return (unsigned int)res == bq->opts->bs ? 0 : -EIO;
}

/*
 * --bare's queue_thread, step for step: DEPTH requests published, one kick;
 * then reap one, record its latency, publish its successor at once (until
 * the deadline), and kick when nothing more is ready to reap, so that a
 * kick carries every request refilled since the last one. What io_uring
 * changes: the kick (io_uring_submit, one io_uring_enter) also does the
 * submission, in this thread, where the vhost worker does it in its own;
 * and with null_blk or brd the completion too. io_uring_submit_and_wait
 * could merge a kick with the next wait; it is not used, so that the
 * system calls per batch are the virtio modes' (a kick, a wait).
 */
static void *bare_thread(void *arg)
{
	struct bench_queue *bq = arg;
	unsigned int i, inflight = 0;
	uint64_t t;
	int ret = 0;

	for (i = 0; i < bq->opts->depth && !ret; i++, inflight++)
		ret = bare_submit(bq, i);
	if (!ret)
		ret = bare_kick(bq);
	while (!ret && inflight) {
		ret = bare_reap(bq, &i, 10);
		if (ret)
			break;
		inflight--;
		t = now_ns();
		ret = record(bq, t - bq->start_ns[i]);
		if (!ret && t < bq->deadline_ns) {
			ret = bare_submit(bq, i);
			inflight++;
		}
		if (!ret && !io_uring_cq_ready(&bq->ring))
			ret = bare_kick(bq);
	}
	bq->err = ret;
	return NULL;
}

/*
 * CPU ticks (user + system) of process @pid, all its threads, or with
 * @thread of that thread alone; 0 if it is gone.
 */
static uint64_t task_ticks(pid_t pid, bool thread)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	if (thread)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* After "pid (comm) ": state is field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return 0;
	return ut + st;
}

/*
 * Ticks of the threads named "vhost-<owner>", a device's workers: kernel
 * threads before Linux 6.4, threads of @owner since.
 */
static uint64_t worker_ticks(pid_t owner)
{
	pid_t tids[VHOST_BLK_MAX_QUEUES + 1];
	unsigned int n, i;
	uint64_t ticks = 0;

	n = vblk_vhost_workers(owner, tids, VHOST_BLK_MAX_QUEUES + 1);
	for (i = 0; i < n && i <= VHOST_BLK_MAX_QUEUES; i++)
		ticks += task_ticks(tids[i], true);
	return ticks;
}

/* CPU ticks so far of the watched processes' own threads, not their workers. */
static uint64_t daemon_ticks(const struct bench_opts *o)
{
	uint64_t ticks = 0, own;
	unsigned int i;

	for (i = 0; i < o->nwatch; i++) {
		own = task_ticks(o->watch[i], false) - worker_ticks(o->watch[i]);
		ticks += (int64_t)own > 0 ? own : 0;
	}
	return ticks;
}

/* Device-side CPU ticks so far: watched processes and vhost workers. */
static uint64_t device_ticks(const struct bench_opts *o)
{
	uint64_t ticks = worker_ticks(getpid()) + daemon_ticks(o);
	unsigned int i;

	for (i = 0; i < o->nwatch; i++)
		ticks += worker_ticks(o->watch[i]);
	return ticks;
}

static double rusage_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int usage(FILE *f, int status)
{
	fprintf(f,
		"usage: vhostblk-bench (--device DEV | --vhost-user SOCKET | --bare DEV)\n"
		"                      [--rw randread|randwrite|read|write] [--bs BYTES]\n"
		"                      [--depth N] [--queues N] [--queue-workers] [--poll-us N]\n"
		"                      [--seconds N] [--watch PID]...\n");
	return status;
}

static int parse_uint(const char *name, const char *s, unsigned int min,
		      unsigned int max, unsigned int *v)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || x < min || x > max) {
		fprintf(stderr, "vhostblk-bench: %s: '%s' is not a number from %u to %u\n",
			name, s, min, max);
		return -1;
	}
	*v = x;
	return 0;
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "vhost-user", required_argument, NULL, 'u' },
		{ "bare", required_argument, NULL, 'B' },
		{ "rw", required_argument, NULL, 'r' },
		{ "bs", required_argument, NULL, 'b' },
		{ "depth", required_argument, NULL, 'q' },
		{ "queues", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 't' },
		{ "watch", required_argument, NULL, 'w' },
		{ "queue-workers", no_argument, NULL, 'W' },
		{ "poll-us", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	unsigned int pid;
	int c;

	*o = (struct bench_opts){ .random = true, .bs = 4096, .depth = 1,
				  .queues = 1, .seconds = 10 };
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->device = optarg;
			break;
		case 'u':
			o->socket = optarg;
			break;
		case 'B':
			o->bare = optarg;
			break;
		case 'W':
			o->queue_workers = true;
			break;
		case 'P':
			if (parse_uint("--poll-us", optarg, 0, 1000000, &o->poll_us))
				return -1;
			break;
		case 'r':
			o->random = !strncmp(optarg, "rand", 4);
			o->write = !strcmp(optarg + (o->random ? 4 : 0), "write");
			if (!o->write && strcmp(optarg + (o->random ? 4 : 0), "read")) {
				fprintf(stderr, "vhostblk-bench: --rw: '%s' is not randread, randwrite, read or write\n",
					optarg);
				return -1;
			}
			break;
		case 'b':
			if (parse_uint("--bs", optarg, 512, 1 << 20, &o->bs))
				return -1;
			if (o->bs % 512) {
				fprintf(stderr, "vhostblk-bench: --bs: not a multiple of 512\n");
				return -1;
			}
			break;
		case 'q':
			if (parse_uint("--depth", optarg, 1, 128, &o->depth))
				return -1;
			break;
		case 'n':
			if (parse_uint("--queues", optarg, 1, VHOST_BLK_MAX_QUEUES,
				       &o->queues))
				return -1;
			break;
		case 't':
			if (parse_uint("--seconds", optarg, 1, 3600, &o->seconds))
				return -1;
			break;
		case 'w':
			if (parse_uint("--watch", optarg, 1, 1 << 22, &pid))
				return -1;
			if (o->nwatch == sizeof(o->watch) / sizeof(o->watch[0])) {
				fprintf(stderr, "vhostblk-bench: too many --watch\n");
				return -1;
			}
			o->watch[o->nwatch++] = pid;
			break;
		case 'h':
			exit(usage(stdout, 0));
		default:
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vhostblk-bench: '%s': unexpected argument\n", argv[optind]);
		return -1;
	}
	if (!!o->device + !!o->socket + !!o->bare != 1) {
		fprintf(stderr, "vhostblk-bench: %s\n", o->device || o->socket || o->bare ?
			"--device, --vhost-user and --bare exclude each other" :
			"no device: give --device DEV, --vhost-user SOCKET or --bare DEV (--help)");
		return -1;
	}
	if (o->bare && o->nwatch) {
		fprintf(stderr, "vhostblk-bench: --watch: not with --bare (no device process to watch)\n");
		return -1;
	}
	if (o->poll_us && !o->device) {
		fprintf(stderr, "vhostblk-bench: --poll-us: only with --device (a vhost-user back-end is told by its own options)\n");
		return -1;
	}
	if (o->queue_workers && !o->device) {
		fprintf(stderr, "vhostblk-bench: --queue-workers: only with --device (a vhost-user back-end makes its own workers)\n");
		return -1;
	}
	return 0;
}

/* The device: vhost-blk directly, or through a vhost-user back-end. */
struct bench_dev {
	struct vblk_dev kdev;
	struct vu_frontend fe;
	struct vblk_dev *dev;	/* NULL with --bare */
	int bare_fd;		/* --bare's block device, or -1 */
	uint64_t capacity;	/* sectors */
};

/*
 * Ring size for @depth requests in flight: each takes three descriptors
 * (header, data, status; no indirect tables). At least 256, as QEMU's
 * virtio-blk default.
 */
static unsigned int ring_size(unsigned int depth)
{
	unsigned int size = 256;

	while (size < 3 * depth)
		size *= 2;
	return size;
}

/*
 * --bare: opens the block device for direct I/O, its capacity in
 * @bd->capacity. Prints why it cannot.
 */
static int bare_open(struct bench_dev *bd, const struct bench_opts *o)
{
	const char *what;
	struct stat st;
	uint64_t bytes;
	int lbs;

	/* O_DIRECT once it is known to be a block device: elsewhere it can fail. */
	bd->bare_fd = open(o->bare, (o->write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (bd->bare_fd < 0) {
		what = "open";
		goto fail;
	}
	if (fstat(bd->bare_fd, &st)) {
		what = "stat";
		goto fail;
	}
	if (!S_ISBLK(st.st_mode)) {
		fprintf(stderr, "vhostblk-bench: %s: not a block device\n", o->bare);
		return -ENOTBLK;
	}
	if (fcntl(bd->bare_fd, F_SETFL, O_DIRECT)) {
		what = "O_DIRECT";
		goto fail;
	}
	if (ioctl(bd->bare_fd, BLKGETSIZE64, &bytes)) {
		what = "BLKGETSIZE64";
		goto fail;
	}
	if (ioctl(bd->bare_fd, BLKSSZGET, &lbs)) {
		what = "BLKSSZGET";
		goto fail;
	}
	/* Direct I/O in units of the logical block, as a virtio-blk device's. */
	if (lbs <= 0 || o->bs % lbs) {
		fprintf(stderr, "vhostblk-bench: %s: --bs %u is not a multiple of its %d-byte logical blocks\n",
			o->bare, o->bs, lbs);
		return -EINVAL;
	}
	bd->capacity = bytes / 512;
	return 0;
fail:
	fprintf(stderr, "vhostblk-bench: %s: %s: %s\n", o->bare, what, strerror(errno));
	return -errno;
}

/*
 * --bare: queue @bq's own io_uring, DEPTH entries, with the device as its
 * registered file 0 and DEPTH registered buffers of --bs bytes, page
 * aligned (the virtio modes' buffers are too). Prints why it cannot.
 */
static int bare_queue_init(struct bench_queue *bq, const struct bench_opts *o,
			   int fd)
{
	const char *what = "io_uring_queue_init";
	unsigned int i;
	int ret;

	bq->start_ns = calloc(o->depth, sizeof(*bq->start_ns));
	bq->iov = calloc(o->depth, sizeof(*bq->iov));
	ret = ENOMEM;
	if (bq->start_ns && bq->iov)
		ret = posix_memalign(&bq->buf_mem, 4096, (size_t)o->depth * o->bs);
	if (ret) {
		bq->buf_mem = NULL;
		fprintf(stderr, "vhostblk-bench: %s: buffers: %s\n", o->bare, strerror(ret));
		return -ret;
	}
	memset(bq->buf_mem, 0, (size_t)o->depth * o->bs);
	for (i = 0; i < o->depth; i++) {
		bq->iov[i].iov_base = (char *)bq->buf_mem + (size_t)i * o->bs;
		bq->iov[i].iov_len = o->bs;
	}
	ret = io_uring_queue_init(o->depth, &bq->ring, 0);
	if (!ret) {
		bq->ring_ok = true;
		what = "io_uring_register_files";
		ret = io_uring_register_files(&bq->ring, &fd, 1);
	}
	if (!ret) {
		what = "io_uring_register_buffers";
		ret = io_uring_register_buffers(&bq->ring, bq->iov, o->depth);
	}
	if (ret)
		fprintf(stderr, "vhostblk-bench: %s: %s: %s\n", o->bare, what, strerror(-ret));
	return ret;
}

static int bench_open(struct bench_dev *bd, const struct bench_opts *o)
{
	struct vblk_opts vo = {
		.features = (1ULL << VIRTIO_RING_F_EVENT_IDX),
		.nqueues = o->queues,
		.queue_size = ring_size(o->depth),
		.mem_size = (size_t)o->queues * o->depth * o->bs + (16UL << 20),
		.nregions = 1,
		.queue_workers = o->queue_workers,
	};
	struct vhost_blk_config cfg;
	unsigned int i;
	int ret;

	if (o->bare)
		return bare_open(bd, o);
	if (o->device) {
		ret = vblk_dev_start(&bd->kdev, &vo, o->device, O_RDWR);
		if (ret)
			return ret;
		bd->dev = &bd->kdev;
		for (i = 0; o->poll_us && i < o->queues; i++) {
			struct vhost_vring_state st = { .index = i, .num = o->poll_us };

			if (ioctl(bd->kdev.fd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &st)) {
				ret = -errno;
				fprintf(stderr, "vhostblk-bench: %s: busy-poll time of queue %u: %s\n",
					o->device, i, strerror(errno));
				return ret;
			}
		}
		ret = vblk_dev_get_config(bd->dev, &cfg);
		if (ret)
			return ret;
		bd->capacity = cfg.capacity;
		return 0;
	}
	ret = vu_frontend_open(&bd->fe, o->socket, &(struct vu_opts){ .vblk = vo });
	if (ret)
		return ret;
	bd->dev = &bd->fe.dev;
	bd->capacity = bd->fe.config.capacity;
	return 0;
}

static void bench_close(struct bench_dev *bd)
{
	if (bd->bare_fd >= 0)
		close(bd->bare_fd);
	if (bd->dev == &bd->kdev)
		vblk_dev_close(&bd->kdev);
	else if (bd->dev)
		vu_frontend_close(&bd->fe);
}

/* What the kernel devices of the run counted so far. */
struct dev_counts {
	bool ok;
	uint64_t reqs, batches, interrupts, kicks, polled;
};

static void add_counts(struct dev_counts *dc, const struct nlc_counters *c)
{
	dc->reqs += nlc_requests(c);
	dc->batches += c->v[VHOST_BLK_A_STAT_USED_BATCHES];
	dc->interrupts += c->v[VHOST_BLK_A_STAT_INTERRUPTS];
	dc->kicks += c->v[VHOST_BLK_A_STAT_KICKS];
	dc->polled += c->v[VHOST_BLK_A_STAT_POLLED];
}

static bool watched(const struct bench_opts *o, uint32_t pid)
{
	unsigned int i;

	for (i = 0; i < o->nwatch; i++)
		if ((uint32_t)o->watch[i] == pid)
			return true;
	return false;
}

/*
 * The counters of this process's device (--device), or of the devices the
 * watched processes own: dc->ok once read.
 */
static void device_counts(const struct bench_dev *bd, const struct bench_opts *o,
			  struct dev_counts *dc)
{
	static struct nlc_stats st;
	struct nlc_dev *devs = NULL;
	struct nlc *nlc;
	int n, i;

	memset(dc, 0, sizeof(*dc));
	if (o->bare || nlc_open(&nlc))
		return;
	if (o->device) {
		dc->ok = !nlc_stats_get(nlc, vblk_dev_id(bd->dev->fd), &st);
		if (dc->ok)
			add_counts(dc, &st.total);
	} else {
		n = nlc_dev_dump(nlc, &devs);
		for (i = 0; i < n; i++) {
			if (!devs[i].has_owner_pid || !watched(o, devs[i].owner_pid) ||
			    nlc_stats_get(nlc, devs[i].id, &st))
				continue;
			add_counts(dc, &st.total);
			dc->ok = true;
		}
		free(devs);
	}
	nlc_close(nlc);
}

/* The counters' growth from @before to @after, as JSON members. */
static void print_counts(const struct dev_counts *before,
			 const struct dev_counts *after)
{
	if (!before->ok || !after->ok) {
		printf(", \"dev_requests\": null, \"dev_used_batches\": null, "
		       "\"dev_interrupts\": null, \"dev_kicks\": null, \"dev_polled\": null");
		return;
	}
	printf(", \"dev_requests\": %" PRIu64 ", \"dev_used_batches\": %" PRIu64
	       ", \"dev_interrupts\": %" PRIu64 ", \"dev_kicks\": %" PRIu64
	       ", \"dev_polled\": %" PRIu64,
	       after->reqs - before->reqs, after->batches - before->batches,
	       after->interrupts - before->interrupts, after->kicks - before->kicks,
	       after->polled - before->polled);
}

int main(int argc, char **argv)
{
	struct bench_queue bqs[VHOST_BLK_MAX_QUEUES] = { 0 };
	struct dev_counts counts_before, counts_after;
	struct bench_dev bd = { .bare_fd = -1 };
	struct bench_opts o;
	pthread_t threads[VHOST_BLK_MAX_QUEUES];
	uint64_t start, elapsed, total = 0, sum = 0, *all, dev_ticks, dmn_ticks;
	double driver_s;
	unsigned int qi, i, workers;
	size_t n;
	int ret;

	if (parse_args(argc, argv, &o))
		return 2;
	ret = bench_open(&bd, &o);
	if (ret) {
		/* bare_open said why. */
		if (!o.bare)
			fprintf(stderr, "vhostblk-bench: %s: %s\n",
				o.device ? o.device : o.socket, strerror(-ret));
		bench_close(&bd);
		return 1;
	}
	if (bd.capacity < o.bs / 512) {
		fprintf(stderr, "vhostblk-bench: the device is smaller than one block\n");
		bench_close(&bd);
		return 1;
	}
	for (qi = 0; qi < o.queues; qi++) {
		struct bench_queue *bq = &bqs[qi];

		bq->opts = &o;
		bq->blocks = bd.capacity / (o.bs / 512);
		bq->next_block = o.random ? 0x9e3779b97f4a7c15ULL * (qi + 1) :
			bq->blocks / o.queues * qi;
		if (o.bare) {
			ret = bare_queue_init(bq, &o, bd.bare_fd);
			if (ret)
				break;
			continue;
		}
		bq->q = &bd.dev->queues[qi];
		bq->reqs = calloc(o.depth, sizeof(*bq->reqs));
		bq->bufs = calloc(o.depth, sizeof(*bq->bufs));
		bq->start_ns = calloc(o.depth, sizeof(*bq->start_ns));
		if (!bq->reqs || !bq->bufs || !bq->start_ns) {
			ret = -ENOMEM;
			break;
		}
		for (i = 0; i < o.depth && !ret; i++)
			ret = vblk_mem_alloc(&bd.dev->mem, o.bs, 4096, &bq->bufs[i]);
		if (ret)
			break;
	}
	if (ret) {
		/* bare_queue_init said why. */
		if (!o.bare)
			fprintf(stderr, "vhostblk-bench: buffers: %s\n", strerror(-ret));
		goto out;
	}
	/* This process's workers are its threads since 6.4: not the driver's. */
	driver_s = rusage_s() - (double)worker_ticks(getpid()) / sysconf(_SC_CLK_TCK);
	dev_ticks = device_ticks(&o);
	dmn_ticks = daemon_ticks(&o);
	device_counts(&bd, &o, &counts_before);
	start = now_ns();
	for (qi = 0; qi < o.queues && !ret; qi++) {
		bqs[qi].deadline_ns = start + o.seconds * 1000000000ULL;
		if (pthread_create(&threads[qi], NULL, o.bare ? bare_thread : queue_thread,
				   &bqs[qi]))
			ret = -EAGAIN;
	}
	while (qi--)
		pthread_join(threads[qi], NULL);
	elapsed = now_ns() - start;
	driver_s = rusage_s() - (double)worker_ticks(getpid()) / sysconf(_SC_CLK_TCK) -
		   driver_s;
	dev_ticks = device_ticks(&o) - dev_ticks;
	dmn_ticks = daemon_ticks(&o) - dmn_ticks;
	device_counts(&bd, &o, &counts_after);
	/* The device side's workers, while it is open. */
	workers = vblk_vhost_workers(getpid(), NULL, 0);
	for (qi = 0; qi < o.nwatch; qi++)
		workers += vblk_vhost_workers(o.watch[qi], NULL, 0);
	for (qi = 0; qi < o.queues && !ret; qi++) {
		ret = bqs[qi].err;
		total += bqs[qi].nlat;
	}
	if (ret) {
		fprintf(stderr, "vhostblk-bench: I/O failed: %s\n", strerror(-ret));
		goto out;
	}
	all = malloc((total ? total : 1) * sizeof(*all));
	if (!all) {
		ret = -ENOMEM;
		goto out;
	}
	for (qi = 0, n = 0; qi < o.queues; qi++) {
		memcpy(all + n, bqs[qi].lat_ns, bqs[qi].nlat * sizeof(*all));
		n += bqs[qi].nlat;
	}
	for (n = 0; n < total; n++)
		sum += all[n];
	qsort(all, total, sizeof(*all), cmp_u64);
	printf("{\"ios\": %" PRIu64 ", \"seconds\": %.3f, \"iops\": %.1f, \"mib_s\": %.2f, "
	       "\"lat_mean_us\": %.1f, \"lat_p99_us\": %.1f, \"cpu_driver_s\": %.3f, "
	       "\"cpu_device_s\": %.2f, ",
	       total, elapsed / 1e9, total / (elapsed / 1e9),
	       total * (double)o.bs / (1 << 20) / (elapsed / 1e9),
	       total ? sum / 1e3 / total : 0.0,
	       total ? all[(total - 1) * 99 / 100] / 1e3 : 0.0,
	       driver_s, (double)dev_ticks / sysconf(_SC_CLK_TCK));
	/* --bare: no back-end process, whose share this would be. */
	if (o.bare)
		printf("\"cpu_daemon_s\": null");
	else
		printf("\"cpu_daemon_s\": %.2f", (double)dmn_ticks / sysconf(_SC_CLK_TCK));
	printf(", \"workers\": %u", workers);
	print_counts(&counts_before, &counts_after);
	printf("}\n");
	free(all);
out:
	for (qi = 0; qi < o.queues; qi++) {
		free(bqs[qi].reqs);
		free(bqs[qi].bufs);
		free(bqs[qi].start_ns);
		free(bqs[qi].lat_ns);
		if (bqs[qi].ring_ok)
			io_uring_queue_exit(&bqs[qi].ring);
		free(bqs[qi].iov);
		free(bqs[qi].buf_mem);
	}
	bench_close(&bd);
	return ret ? 1 : 0;
}
