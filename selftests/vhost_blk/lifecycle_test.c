// SPDX-License-Identifier: GPL-2.0
/*
 * A device's life with requests in flight: stopping it (VHOST_BLK_SET_BACKEND
 * with -1), restarting it, changing its settings, VHOST_RESET_OWNER, closing
 * it, its owner being killed, its guest memory going away. Each must wait
 * for every request the device took from an avail ring, report it in the
 * used ring (where the ring is still there), and let go of the block device,
 * so that nothing holds the block device afterwards and a new device can be
 * set up on it.
 *
 * The block device is a null_blk that completes every request SLOW_NS after
 * it was submitted, so that requests really are in flight; a load is
 * PER_QUEUE requests on each of NQUEUES queues, writes and reads of a known
 * pattern on sectors of their own. "Nothing holds it" is checked on the
 * null_blk module's reference count, which each open of one of its disks
 * raises, and on the device's worker thread, "vhost-<owner pid>".
 *
 * Needs root, the vhost_blk module loaded and null_blk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define KiB		1024UL
#define MiB		(1024UL * 1024)

#define NQUEUES		4
#define PER_QUEUE	32
#define NREQ		(NQUEUES * PER_QUEUE)
#define REQ_LEN		(8 * KiB)
#define LOAD_LEN	(NREQ * REQ_LEN)
#define SLOW_NS		100000000UL
/* Tries of a test that needs requests still in flight after a step. */
#define MAX_TRIES	5
#define DISK_SIZE	(16 * MiB)
#define CYCLES		16
/* The pattern the sectors of the load's reads hold. */
#define READ_SEED	0x5eed0000ULL
/* How long the kernel may take to let go of something after a close. */
#define RELEASE_MS	5000

#define F_EVENT_IDX	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_INDIRECT	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)

static void sleep_ms(unsigned int ms)
{
	usleep(ms * 1000);
}

/* A number from a file such as /sys/module/<name>/refcnt; -1 if none. */
static long read_number(const char *path)
{
	char buf[32] = "";
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

static long null_blk_refs(void)
{
	return read_number("/sys/module/null_blk/refcnt");
}

static long vhost_blk_refs(void)
{
	return read_number("/sys/module/vhost_blk/refcnt");
}

/* Threads named "vhost-<pid>": the workers of devices @pid owns or owned. */
static unsigned int vhost_workers(pid_t pid)
{
	return vblk_vhost_workers(pid, NULL, 0);
}

static unsigned int open_fds(void)
{
	unsigned int n = 0;
	DIR *d = opendir("/proc/self/fd");

	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/*
 * Waits until the null_blk module is back at @refs references and no
 * worker of @pid is left: nothing holds the block device any more.
 */
static int wait_released(long refs, pid_t pid)
{
	int64_t deadline = vblk_now_ms() + RELEASE_MS;

	while (null_blk_refs() != refs || vhost_workers(pid)) {
		if (vblk_now_ms() > deadline)
			return -ETIMEDOUT;
		sleep_ms(10);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * A load of requests in flight
 */

struct load {
	struct vblk_buf bufs[NREQ];
	struct vblk_req reqs[NREQ];
	uint64_t seed;		/* of the writes' data */
};

static bool is_write(unsigned int i)
{
	return !(i % 2);
}

static uint64_t req_sector(unsigned int i)
{
	return (uint64_t)i * REQ_LEN / VBLK_SECTOR_SIZE;
}

/* What request @i's sectors hold once it is done. */
static uint64_t req_seed(const struct load *l, unsigned int i)
{
	return (is_write(i) ? l->seed : READ_SEED) + i;
}

/* The sectors of the load's reads, on the block device. */
static int seed_reads(const struct vblk_backend *be)
{
	uint8_t *data = malloc(LOAD_LEN);
	unsigned int i;
	int ret;

	if (!data)
		return -ENOMEM;
	memset(data, 0, LOAD_LEN);
	for (i = 1; i < NREQ; i += 2)
		vblk_pattern_fill(data + i * REQ_LEN, REQ_LEN, READ_SEED + i);
	ret = vblk_backend_pwrite(be, data, LOAD_LEN, 0);
	free(data);
	return ret;
}

static int alloc_load(struct vblk_dev *dev, struct load *l)
{
	unsigned int i;
	int ret;

	for (i = 0; i < NREQ; i++) {
		ret = vblk_mem_alloc_in(&dev->mem, i % 2, REQ_LEN,
					VBLK_PAGE_SIZE, &l->bufs[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/* Publishes the load, request i on queue i % NQUEUES, one kick a queue. */
static int submit_load(struct vblk_dev *dev, struct load *l, uint64_t seed,
		       bool indirect)
{
	unsigned int i;
	int ret;

	l->seed = seed;
	for (i = 0; i < NREQ; i++) {
		struct vblk_req *req = &l->reqs[i];

		if (is_write(i))
			vblk_pattern_fill(l->bufs[i].hva, REQ_LEN, req_seed(l, i));
		else
			memset(l->bufs[i].hva, 0, REQ_LEN);
		vblk_req_init(req, is_write(i) ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
			      req_sector(i), &l->bufs[i], 1);
		req->indirect = indirect;
		ret = vblk_queue_add(&dev->queues[i % NQUEUES], req);
		if (ret)
			return ret;
	}
	for (i = 0; i < NQUEUES; i++) {
		ret = vblk_queue_kick(&dev->queues[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Waits until the device took every published request of every queue. */
static int wait_taken(struct vblk_dev *dev)
{
	int64_t deadline = vblk_now_ms() + VBLK_TIMEOUT_MS;
	unsigned int i;
	uint16_t idx;
	int ret;

	for (i = 0; i < NQUEUES; i++) {
		struct vblk_queue *q = &dev->queues[i];

		for (;;) {
			ret = vblk_queue_device_avail(q, &idx);
			if (ret || idx == q->avail_idx)
				break;
			if (vblk_now_ms() > deadline)
				return -ETIMEDOUT;
			sleep_ms(1);
		}
		if (ret)
			return ret;
	}
	return 0;
}

/* Used entries the device published on all queues, not read yet. */
static unsigned int used_pending(struct vblk_dev *dev)
{
	unsigned int i, n = 0;

	for (i = 0; i < NQUEUES; i++)
		n += vblk_queue_used_pending(&dev->queues[i]);
	return n;
}

/* Reaps the whole load, then checks every request and the device. */
static void check_load(struct __test_metadata *_metadata,
		       const struct vblk_backend *be, struct vblk_dev *dev,
		       struct load *l)
{
	uint8_t *data = malloc(LOAD_LEN);
	struct vblk_req *done;
	unsigned int i;

	ASSERT_NE(NULL, data);
	for (i = 0; i < NREQ; i++)
		ASSERT_EQ(0, vblk_reap(&dev->queues[i % NQUEUES], &done,
				       VBLK_TIMEOUT_MS)) TH_LOG("reap %u", i);
	ASSERT_EQ(0, vblk_backend_pread(be, data, LOAD_LEN, 0));
	for (i = 0; i < NREQ; i++) {
		const struct vblk_req *req = &l->reqs[i];
		uint32_t used = is_write(i) ? 1 : REQ_LEN + 1;

		ASSERT_TRUE(req->done) TH_LOG("request %u", i);
		EXPECT_EQ(VIRTIO_BLK_S_OK, req->status) TH_LOG("request %u", i);
		EXPECT_EQ(used, req->used_len) TH_LOG("request %u", i);
		EXPECT_EQ(-1, vblk_pattern_check(data + i * REQ_LEN, REQ_LEN,
						 req_seed(l, i)))
			TH_LOG("request %u: device", i);
		if (!is_write(i))
			EXPECT_EQ(-1, vblk_pattern_check(l->bufs[i].hva, REQ_LEN,
							 req_seed(l, i)))
				TH_LOG("request %u: data read", i);
	}
	free(data);
}

/* Runs @type on every queue at once, one request each; the first failure. */
static int exec_on_all(struct vblk_dev *dev, unsigned int nqueues,
		       uint32_t type, struct vblk_buf *bufs)
{
	struct vblk_req reqs[NQUEUES];
	unsigned int i;
	int ret;

	for (i = 0; i < nqueues; i++) {
		vblk_req_init(&reqs[i], type, req_sector(NREQ + i), &bufs[i], 1);
		ret = vblk_submit(&dev->queues[i], &reqs[i]);
		if (ret)
			return ret;
	}
	for (i = 0; i < nqueues; i++) {
		ret = vblk_wait(&dev->queues[i], &reqs[i], VBLK_TIMEOUT_MS);
		if (ret)
			return ret;
		if (reqs[i].status != VIRTIO_BLK_S_OK)
			return -EIO;
	}
	return 0;
}

/* A write and a read back on every queue, all queues at once, checked. */
static void check_serves(struct __test_metadata *_metadata,
			 struct vblk_dev *dev, unsigned int nqueues,
			 uint64_t seed)
{
	struct vblk_buf bufs[NQUEUES];
	unsigned int i;

	for (i = 0; i < nqueues; i++) {
		ASSERT_EQ(0, vblk_mem_alloc(&dev->mem, REQ_LEN, VBLK_PAGE_SIZE,
					    &bufs[i]));
		vblk_pattern_fill(bufs[i].hva, REQ_LEN, seed + i);
	}
	ASSERT_EQ(0, exec_on_all(dev, nqueues, VIRTIO_BLK_T_OUT, bufs));
	for (i = 0; i < nqueues; i++)
		memset(bufs[i].hva, 0, REQ_LEN);
	ASSERT_EQ(0, exec_on_all(dev, nqueues, VIRTIO_BLK_T_IN, bufs));
	for (i = 0; i < nqueues; i++)
		ASSERT_EQ(-1, vblk_pattern_check(bufs[i].hva, REQ_LEN, seed + i))
			TH_LOG("queue %u", i);
}

/* ------------------------------------------------------------------------
 * One device on a slow block device
 */

FIXTURE(in_flight) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_opts opts;
	struct load load;
	long refs;		/* null_blk's before the device opened it */
};

FIXTURE_VARIANT(in_flight) {
	uint64_t features;
	bool queue_workers;
};

FIXTURE_VARIANT_ADD(in_flight, plain) {
	.features = 0,
};

FIXTURE_VARIANT_ADD(in_flight, event_idx_indirect) {
	.features = F_EVENT_IDX | F_INDIRECT,
};

/* A worker per queue where the kernel has them (6.5), else as plain. */
FIXTURE_VARIANT_ADD(in_flight, queue_workers) {
	.features = 0,
	.queue_workers = true,
};

FIXTURE_SETUP(in_flight)
{
	struct vblk_backend_opts bo = { .size = DISK_SIZE,
					.completion_nsec = SLOW_NS };
	int ret;

	self->opts = (struct vblk_opts){
		.features = variant->features, .nqueues = NQUEUES,
		.queue_workers = variant->queue_workers,
	};
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	ret = seed_reads(&self->be);
	self->refs = null_blk_refs();
	if (!ret)
		ret = vblk_dev_start(&self->dev, &self->opts, self->be.path, O_RDWR);
	if (!ret)
		ret = alloc_load(&self->dev, &self->load);
	if (ret) {
		vblk_dev_close(&self->dev);
		vblk_backend_destroy(&self->be);
	}
	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
	ASSERT_LT(0, self->refs);
}

FIXTURE_TEARDOWN(in_flight)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

/* Submits the load and waits until the device took all of it: the last
 * requests are still in flight. */
static void start_load(struct __test_metadata *_metadata,
		       FIXTURE_DATA(in_flight) *self,
		       const FIXTURE_VARIANT(in_flight) *variant, uint64_t seed)
{
	ASSERT_EQ(0, submit_load(&self->dev, &self->load, seed,
				 variant->features & F_INDIRECT));
	ASSERT_EQ(0, wait_taken(&self->dev));
	ASSERT_GT((unsigned int)NREQ, used_pending(&self->dev)) TH_LOG("nothing in flight");
}

TEST_F(in_flight, stop_returns_only_after_every_request_taken_is_in_the_used_ring)
{
	unsigned int i;

	start_load(_metadata, self, variant, 1000);
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	/* Right away, without waiting. */
	for (i = 0; i < NQUEUES; i++)
		EXPECT_EQ((unsigned int)PER_QUEUE,
			  vblk_queue_used_pending(&self->dev.queues[i]))
			TH_LOG("queue %u", i);
	check_load(_metadata, &self->be, &self->dev, &self->load);
	/* The device let go of the block device. */
	EXPECT_EQ(self->refs, null_blk_refs());
}

TEST_F(in_flight, stop_during_submission_reports_what_it_took_and_a_restart_serves_the_rest)
{
	int fd = vblk_backend_open(&self->be, O_RDWR);
	unsigned int i, taken = 0;
	uint16_t idx;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, submit_load(&self->dev, &self->load, 2000,
				 variant->features & F_INDIRECT));
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	/* Whatever the device took is in the used ring; the rest waits. */
	for (i = 0; i < NQUEUES; i++) {
		struct vblk_queue *q = &self->dev.queues[i];

		ASSERT_EQ(0, vblk_queue_device_avail(q, &idx));
		EXPECT_EQ((unsigned int)idx, vblk_queue_used_pending(q))
			TH_LOG("queue %u", i);
		taken += idx;
	}
	EXPECT_EQ(taken, used_pending(&self->dev));
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, fd));
	close(fd);
	check_load(_metadata, &self->be, &self->dev, &self->load);
	check_serves(_metadata, &self->dev, NQUEUES, 2100);
}

/* Sends @req for the queue at @q->index with @num. */
static int vring_state(struct vblk_queue *q, unsigned long req,
		       unsigned int num)
{
	struct vhost_vring_state s = { .index = q->index, .num = num };

	return ioctl(q->dev->fd, req, &s) ? -errno : 0;
}

static int vring_file(struct vblk_queue *q, unsigned long req, int fd)
{
	struct vhost_vring_file f = { .index = q->index, .fd = fd };

	return ioctl(q->dev->fd, req, &f) ? -errno : 0;
}

/* The count of @q's call eventfd, read and reset; 0 when it is not set. */
static uint64_t calls_pending(struct vblk_queue *q)
{
	uint64_t v;

	if (read(q->call_fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* VHOST_BLK_SET_BACKEND with the block device at @path. */
static int attach(struct vblk_dev *dev, const char *path)
{
	int fd, ret;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = vblk_dev_set_backend(dev, fd);
	close(fd);
	return ret;
}

/* A stop and a start. */
static int restart(struct vblk_dev *dev, const char *path)
{
	int ret = vblk_dev_set_backend(dev, -1);

	return ret ? ret : attach(dev, path);
}

/*
 * A completion reported while the driver could not hear it (a vhost-user
 * back-end restarting) must not leave it waiting: each start is one
 * interrupt per queue, virtio allows spurious ones.
 */
TEST_F(in_flight, every_start_signals_each_queue_once)
{
	unsigned int i;

	/* The fixture's start, before any request. */
	for (i = 0; i < NQUEUES; i++)
		EXPECT_EQ(1U, calls_pending(&self->dev.queues[i])) TH_LOG("queue %u", i);
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	for (i = 0; i < NQUEUES; i++)
		EXPECT_EQ(0U, calls_pending(&self->dev.queues[i])) TH_LOG("queue %u", i);
	ASSERT_EQ(0, restart(&self->dev, self->be.path));
	for (i = 0; i < NQUEUES; i++)
		EXPECT_EQ(1U, calls_pending(&self->dev.queues[i])) TH_LOG("queue %u", i);

	/* A queue without a call eventfd starts all the same. */
	ASSERT_EQ(0, vring_file(&self->dev.queues[0], VHOST_SET_VRING_CALL, -1));
	ASSERT_EQ(0, restart(&self->dev, self->be.path));
	EXPECT_EQ(0U, calls_pending(&self->dev.queues[0]));
	EXPECT_EQ(1U, calls_pending(&self->dev.queues[1]));
	ASSERT_EQ(0, vring_file(&self->dev.queues[0], VHOST_SET_VRING_CALL,
				self->dev.queues[0].call_fd));
	check_serves(_metadata, &self->dev, NQUEUES, 9900);
}

/*
 * The queue as the library set it up, emptied: rings zeroed, every
 * descriptor free, indices at 0, and the ring settings sent again.
 */
static int requeue(struct vblk_queue *q)
{
	unsigned int i;
	int ret;

	memset(q->ring.hva, 0, q->ring.len);
	for (i = 0; i < q->num; i++) {
		q->free[i] = q->num - 1 - i;
		q->reqs[i] = NULL;
	}
	q->nfree = q->num;
	q->avail_idx = q->kick_idx = q->used_idx = 0;
	q->inflight = 0;
	ret = vring_state(q, VHOST_SET_VRING_NUM, q->num);
	if (!ret)
		ret = vring_state(q, VHOST_SET_VRING_BASE, 0);
	if (!ret)
		ret = vblk_queue_set_addr(q);
	if (!ret)
		ret = vring_file(q, VHOST_SET_VRING_KICK, q->kick_fd);
	if (!ret)
		ret = vring_file(q, VHOST_SET_VRING_CALL, q->call_fd);
	if (!ret)
		ret = vring_file(q, VHOST_SET_VRING_ERR, q->err_fd);
	return ret;
}

/* After VHOST_RESET_OWNER: everything the device forgot, set up again on
 * the same guest memory and eventfds, then the block device at @path. */
static int set_up_again(struct vblk_dev *dev, const char *path)
{
	unsigned int i;
	int ret;

	if (ioctl(dev->fd, VHOST_SET_OWNER))
		return -errno;
	ret = vblk_dev_set_features(dev, dev->features);
	if (!ret)
		ret = vblk_dev_set_mem_table(dev);
	for (i = 0; !ret && i < dev->nqueues; i++)
		ret = requeue(&dev->queues[i]);
	return ret ? ret : attach(dev, path);
}

TEST_F(in_flight, reset_owner_drains_and_a_new_owner_can_set_up_again)
{
	start_load(_metadata, self, variant, 3000);
	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_RESET_OWNER));
	EXPECT_EQ((unsigned int)NREQ, used_pending(&self->dev));
	check_load(_metadata, &self->be, &self->dev, &self->load);
	EXPECT_EQ(self->refs, null_blk_refs());
	EXPECT_EQ(0U, vhost_workers(getpid()));

	/* No owner, no backend: it takes no backend until it has an owner. */
	EXPECT_EQ(-EPERM, vblk_dev_set_backend(&self->dev, -1));
	ASSERT_EQ(0, set_up_again(&self->dev, self->be.path));
	check_serves(_metadata, &self->dev, NQUEUES, 3100);
	/* And the load once more, on the new setup. */
	start_load(_metadata, self, variant, 3200);
	check_load(_metadata, &self->be, &self->dev, &self->load);
}

/* The data of every write of @l is on the block device. */
static void check_writes_landed(struct __test_metadata *_metadata,
				const struct vblk_backend *be,
				const struct load *l)
{
	uint8_t *data = malloc(LOAD_LEN);
	unsigned int i;

	ASSERT_NE(NULL, data);
	ASSERT_EQ(0, vblk_backend_pread(be, data, LOAD_LEN, 0));
	for (i = 0; i < NREQ; i += 2)
		EXPECT_EQ(-1, vblk_pattern_check(data + i * REQ_LEN, REQ_LEN,
						 req_seed(l, i)))
			TH_LOG("write %u", i);
	free(data);
}

TEST_F(in_flight, close_drains_and_releases_the_block_device)
{
	start_load(_metadata, self, variant, 4000);
	/*
	 * Once close returns, every request taken is in the used ring: the
	 * guest memory stays ours to look at (null_blk copies data when a
	 * request starts, so the device's contents alone prove nothing).
	 */
	close(self->dev.fd);
	self->dev.fd = -1;
	EXPECT_EQ((unsigned int)NREQ, used_pending(&self->dev));
	check_load(_metadata, &self->be, &self->dev, &self->load);
	vblk_dev_close(&self->dev);
	EXPECT_EQ(0, wait_released(self->refs, getpid()))
		TH_LOG("null_blk refs %ld, was %ld; workers %u", null_blk_refs(),
		       self->refs, vhost_workers(getpid()));
	/* Every write the device took reached the block device. */
	check_writes_landed(_metadata, &self->be, &self->load);
	EXPECT_EQ(0, vblk_backend_destroy(&self->be));
}

TEST_F(in_flight, settings_changes_drain_the_device_first)
{
	struct vblk_buf id;
	struct vblk_req req;

	/* A new serial: every request taken is reported when it returns. */
	start_load(_metadata, self, variant, 9000);
	ASSERT_EQ(0, vblk_dev_set_serial(&self->dev, "after-the-drain"));
	EXPECT_EQ((unsigned int)NREQ, used_pending(&self->dev));
	check_load(_metadata, &self->be, &self->dev, &self->load);
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, VIRTIO_BLK_ID_BYTES, 1, &id));
	vblk_req_init(&req, VIRTIO_BLK_T_GET_ID, 0, &id, 1);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_exec(&self->dev.queues[3], &req));
	EXPECT_EQ(0, memcmp(id.hva, "after-the-drain", 16));

	/* Read-only: the writes taken before it still succeed. */
	start_load(_metadata, self, variant, 9100);
	ASSERT_EQ(0, vblk_dev_set_read_only(&self->dev, 1));
	EXPECT_EQ((unsigned int)NREQ, used_pending(&self->dev));
	check_load(_metadata, &self->be, &self->dev, &self->load);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR,
		  vblk_write(&self->dev.queues[0], 0, &self->load.bufs[0]));
	ASSERT_EQ(0, vblk_dev_set_read_only(&self->dev, 0));
	check_serves(_metadata, &self->dev, NQUEUES, 9200);
}

struct toggler {
	struct vblk_dev *dev;
	int fd;			/* the block device */
	unsigned int rounds;
	int ret;
	volatile bool done;
};

/* Stops and restarts the device, again and again. */
static void *toggle_backend(void *arg)
{
	struct toggler *t = arg;
	unsigned int i;

	for (i = 0; i < t->rounds && !t->ret; i++) {
		t->ret = vblk_dev_set_backend(t->dev, -1);
		sleep_ms(10);
		if (!t->ret)
			t->ret = vblk_dev_set_backend(t->dev, t->fd);
		sleep_ms(40);
	}
	t->done = true;
	return NULL;
}

TEST_F(in_flight, stops_and_restarts_under_load_lose_no_request)
{
	struct toggler t = { .dev = &self->dev, .rounds = 10 };
	unsigned int round = 0;
	pthread_t thread;

	t.fd = vblk_backend_open(&self->be, O_RDWR);
	ASSERT_LE(0, t.fd);
	ASSERT_EQ(0, pthread_create(&thread, NULL, toggle_backend, &t));
	/* Loads, each checked, until the toggling ends; then one more. */
	do {
		ASSERT_EQ(0, submit_load(&self->dev, &self->load, 10000 + round * NREQ,
					 variant->features & F_INDIRECT));
		check_load(_metadata, &self->be, &self->dev, &self->load);
		round++;
	} while (!t.done || round < 2);
	ASSERT_EQ(0, pthread_join(thread, NULL));
	close(t.fd);
	EXPECT_EQ(0, t.ret) TH_LOG("toggling: %s", strerror(-t.ret));
}

/*
 * With the load in flight, the guest memory goes away under the device:
 * @vanish unmaps or truncates it. The requests still end: the device
 * cannot write their status bytes or used entries and says so on the
 * error eventfds, the writes reach the block device, and the device closes
 * and lets go of everything; then a new device works.
 */
static void lose_guest_memory(struct __test_metadata *_metadata,
			      FIXTURE_DATA(in_flight) *self,
			      const FIXTURE_VARIANT(in_flight) *variant,
			      int (*vanish)(struct vblk_mem *mem), uint64_t seed)
{
	int64_t deadline;
	uint64_t errors = 0;
	unsigned int i;

	/* start_load checked that requests are still in flight. */
	start_load(_metadata, self, variant, seed);
	ASSERT_EQ(0, vanish(&self->dev.mem));
	/* From here on, nothing may touch the rings: only the eventfds. */
	deadline = vblk_now_ms() + VBLK_TIMEOUT_MS;
	while (!errors && vblk_now_ms() < deadline) {
		sleep_ms(10);
		for (i = 0; i < NQUEUES; i++)
			errors += vblk_queue_errors(&self->dev.queues[i]);
	}
	vblk_dev_close(&self->dev);
	EXPECT_LT(0ULL, (unsigned long long)errors) TH_LOG("no error signalled");
	EXPECT_EQ(0, wait_released(self->refs, getpid()))
		TH_LOG("null_blk refs %ld, was %ld; workers %u", null_blk_refs(),
		       self->refs, vhost_workers(getpid()));
	check_writes_landed(_metadata, &self->be, &self->load);

	ASSERT_EQ(0, vblk_dev_start(&self->dev, &self->opts, self->be.path,
				    O_RDWR));
	check_serves(_metadata, &self->dev, NQUEUES, seed + 100);
}

static int unmap_memory(struct vblk_mem *mem)
{
	return munmap(mem->map, mem->size) ? -errno : 0;
}

static int truncate_memory(struct vblk_mem *mem)
{
	return ftruncate(mem->fd, 0) ? -errno : 0;
}

TEST_F(in_flight, guest_memory_unmapped_with_io_in_flight_ends_cleanly)
{
	lose_guest_memory(_metadata, self, variant, unmap_memory, 7000);
}

TEST_F(in_flight, guest_memory_truncated_with_io_in_flight_ends_cleanly)
{
	lose_guest_memory(_metadata, self, variant, truncate_memory, 8000);
}

/*
 * The child: owns a device of its own on @path, submits a load, tells the
 * parent through @fd how many requests had completed once the device took
 * all of them, and waits to be killed. Exits with the step that failed.
 */
static void owner_child(const char *path, const struct vblk_opts *opts,
			int fd, uint64_t seed)
{
	static struct load l;
	struct vblk_dev dev;
	unsigned int done;

	if (vblk_dev_start(&dev, opts, path, O_RDWR))
		_exit(2);
	if (alloc_load(&dev, &l))
		_exit(3);
	if (submit_load(&dev, &l, seed, opts->features & F_INDIRECT))
		_exit(4);
	if (wait_taken(&dev))
		_exit(5);
	/* How many completed by now: the rest is in flight. */
	done = used_pending(&dev);
	if (write(fd, &done, sizeof(done)) != sizeof(done))
		_exit(6);
	for (;;)
		pause();
}

TEST_F(in_flight, owner_killed_with_io_in_flight_releases_everything)
{
	struct pollfd pfd = { .events = POLLIN };
	struct load l = { .seed = 5000 };
	/* The device's first worker, and those the child makes per queue. */
	unsigned int workers = 1 + self->dev.nworkers;
	unsigned int done = NREQ;
	int pipefd[2], status;
	pid_t child;
	ssize_t n;

	/* The child's device alone: the fixture's is closed. */
	vblk_dev_close(&self->dev);
	ASSERT_EQ(0, wait_released(self->refs, getpid()));
	ASSERT_EQ(0, pipe(pipefd));
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		close(pipefd[0]);
		owner_child(self->be.path, &self->opts, pipefd[1], l.seed);
	}
	close(pipefd[1]);
	pfd.fd = pipefd[0];
	EXPECT_EQ(1, poll(&pfd, 1, 4 * VBLK_TIMEOUT_MS));
	n = read(pipefd[0], &done, sizeof(done));
	close(pipefd[0]);
	EXPECT_EQ(workers, vhost_workers(child));
	ASSERT_EQ(0, kill(child, SIGKILL));
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_EQ((ssize_t)sizeof(done), n)
		TH_LOG("child failed at step %d",
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_GT((unsigned int)NREQ, done) TH_LOG("nothing in flight");

	EXPECT_EQ(0, wait_released(self->refs, child))
		TH_LOG("null_blk refs %ld, was %ld; workers %u", null_blk_refs(),
		       self->refs, vhost_workers(child));
	/* The child's writes were taken, so they completed. */
	check_writes_landed(_metadata, &self->be, &l);

	/* A new device works, and then the block device can go. */
	ASSERT_EQ(0, vblk_dev_start(&self->dev, &self->opts, self->be.path,
				    O_RDWR));
	check_serves(_metadata, &self->dev, NQUEUES, 5100);
	vblk_dev_close(&self->dev);
	EXPECT_EQ(0, wait_released(self->refs, getpid()));
	EXPECT_EQ(0, vblk_backend_destroy(&self->be));
}

/*
 * What a vhost-user back-end's death looks like to its front-end: the
 * back-end's end of the socket closes when its files are released, and
 * the front-end then reads each used index as final. The child tells the
 * parent where they are: its guest memory (the memfd, passed along) and
 * the offset of each queue's used index in it.
 */
struct rings_msg {
	unsigned int done;
	size_t used_idx_off[NQUEUES];
};

/*
 * The child: a device of its own with the load in flight, and @sock, its
 * end of the "front-end connection", below the device's descriptors or,
 * with @sock_above, above them all (files of a dead process are released
 * in no order to rely on; 6.1 and 6.12 release the highest first).
 */
static void back_end_child(const char *path, const struct vblk_opts *opts,
			   int sock, bool sock_above, uint64_t seed)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	static struct load l;
	struct rings_msg m = { 0 };
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	struct vblk_dev dev;
	unsigned int i;

	if (vblk_dev_start(&dev, opts, path, O_RDWR))
		_exit(2);
	if (sock_above) {
		int fd = fcntl(sock, F_DUPFD_CLOEXEC, 512);

		if (fd < 0)
			_exit(3);
		close(sock);
		sock = fd;
	}
	if (alloc_load(&dev, &l) || submit_load(&dev, &l, seed, opts->features & F_INDIRECT))
		_exit(4);
	if (wait_taken(&dev))
		_exit(5);
	m.done = used_pending(&dev);
	for (i = 0; i < NQUEUES; i++)
		m.used_idx_off[i] = (uint8_t *)&dev.queues[i].vr.used->idx - dev.mem.map;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &dev.mem.fd, sizeof(int));
	if (sendmsg(sock, &msg, 0) != sizeof(m))
		_exit(6);
	for (;;)
		pause();
}

/* The child's message and its guest memory, mapped; -1 on failure. */
static int recv_rings(int sock, struct rings_msg *m, const uint8_t **map,
		      size_t *size)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	struct cmsghdr *c;
	struct stat st;
	int fd;

	if (poll(&pfd, 1, 4 * VBLK_TIMEOUT_MS) != 1 ||
	    recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != sizeof(*m))
		return -1;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	if (fstat(fd, &st)) {
		close(fd);
		return -1;
	}
	*size = st.st_size;
	*map = mmap(NULL, *size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	return *map == MAP_FAILED ? -1 : 0;
}

/* The requests the used rings of @m report. */
static unsigned int rings_reported(const struct rings_msg *m, const uint8_t *map)
{
	unsigned int i, n = 0;

	for (i = 0; i < NQUEUES; i++)
		n += *(volatile const uint16_t *)(map + m->used_idx_off[i]);
	return n;
}

TEST_F(in_flight, owner_killed_reports_every_request_before_its_socket_closes)
{
	struct pollfd pfd = { .events = POLLIN };
	unsigned int order, i, reported, tries;
	struct load l = { 0 };
	struct rings_msg m;
	const uint8_t *map;
	int sv[2], status;
	size_t size;
	pid_t child;
	char c;

	vblk_dev_close(&self->dev);
	ASSERT_EQ(0, wait_released(self->refs, getpid()));
	for (order = 0, tries = 0; order < 2; order++) {
		l.seed = 7000 + order * 1000 + tries;
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
		child = fork();
		ASSERT_LE(0, child);
		if (!child) {
			close(sv[0]);
			back_end_child(self->be.path, &self->opts, sv[1], order, l.seed);
		}
		close(sv[1]);
		ASSERT_EQ(0, recv_rings(sv[0], &m, &map, &size)) {
			kill(child, SIGKILL);
			waitpid(child, &status, 0);
			TH_LOG("child failed at step %d",
			       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		}
		ASSERT_EQ(0, kill(child, SIGKILL));
		/*
		 * A child slower than SLOW_NS (a loaded host) saw every request
		 * complete before the kill, which proves nothing: again.
		 */
		if (m.done == NREQ && ++tries < MAX_TRIES) {
			ASSERT_EQ(child, waitpid(child, &status, 0));
			munmap((void *)map, size);
			close(sv[0]);
			ASSERT_EQ(0, wait_released(self->refs, child));
			order--;
			continue;
		}
		ASSERT_GT((unsigned int)NREQ, m.done)
			TH_LOG("nothing in flight in %u tries", tries);

		/* The disconnect, and right then what the front-end reads. */
		pfd.fd = sv[0];
		EXPECT_EQ(1, poll(&pfd, 1, 4 * VBLK_TIMEOUT_MS));
		EXPECT_EQ(0, read(sv[0], &c, 1));
		for (i = 0; i < NQUEUES; i++)
			ASSERT_GT(size, m.used_idx_off[i]);
		reported = rings_reported(&m, map);
		EXPECT_EQ((unsigned int)NREQ, reported)
			TH_LOG("socket %s the device's descriptors: %u done before the kill",
			       order ? "above" : "below", m.done);

		ASSERT_EQ(child, waitpid(child, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status));
		munmap((void *)map, size);
		close(sv[0]);
		EXPECT_EQ(0, wait_released(self->refs, child));
		check_writes_landed(_metadata, &self->be, &l);
	}
}

/* ------------------------------------------------------------------------
 * A disk that completes nothing until it is resumed: a dm device (flakey,
 * up all the time, so a plain mapping of null_blk) suspended with --noflush,
 * which queues the bios it gets. So does a disk whose server is the dying
 * owner itself (FUSE, NBD): the owner's exit must not wait for it for good.
 */

#define PARAM_EXIT_WAIT	"/sys/module/vhost_blk/parameters/exit_wait_ms"

FIXTURE(suspended_disk) {
	struct vblk_backend be;
	struct vblk_opts opts;
	long exit_wait_ms;	/* the module parameter before the test */
	bool suspended;
};

FIXTURE_SETUP(suspended_disk)
{
	struct vblk_backend_opts bo = { .size = DISK_SIZE, .flakey_up = 86400 };
	int ret;

	self->opts = (struct vblk_opts){ .nqueues = NQUEUES };
	self->exit_wait_ms = read_number(PARAM_EXIT_WAIT);
	ASSERT_LE(0, self->exit_wait_ms) TH_LOG("no %s", PARAM_EXIT_WAIT);
	ret = vblk_backend_create(&self->be, VBLK_BE_DM_FLAKEY, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create dm-flakey: %s", strerror(-ret));
	ASSERT_EQ(0, seed_reads(&self->be));
	ASSERT_EQ(0, vblk_write_file(PARAM_EXIT_WAIT, "1000"));
	ASSERT_EQ(0, vblk_run("dmsetup suspend --noflush %s", self->be.dm_name));
	self->suspended = true;
}

FIXTURE_TEARDOWN(suspended_disk)
{
	char val[24];

	if (self->suspended)
		vblk_run("dmsetup resume %s", self->be.dm_name);
	snprintf(val, sizeof(val), "%ld", self->exit_wait_ms);
	vblk_write_file(PARAM_EXIT_WAIT, val);
	vblk_backend_destroy(&self->be);
}

TEST_F(suspended_disk, owner_exit_waits_a_bounded_time_and_the_release_reports_the_rest)
{
	struct pollfd pfd = { .events = POLLIN };
	struct load l = { .seed = 9000 };
	const uint8_t *map;
	struct rings_msg m;
	int sv[2], status, ret;
	unsigned int i;
	size_t size;
	pid_t child;
	char c;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		close(sv[0]);
		/*
		 * The socket above the device's descriptors: it is released
		 * first, so that only the exit's wait stands between the kill
		 * and the disconnect.
		 */
		back_end_child(self->be.path, &self->opts, sv[1], true, l.seed);
	}
	close(sv[1]);
	ASSERT_EQ(0, recv_rings(sv[0], &m, &map, &size)) {
		kill(child, SIGKILL);
		vblk_run("dmsetup resume %s", self->be.dm_name);
		waitpid(child, &status, 0);
		TH_LOG("child failed at step %d",
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	for (i = 0; i < NQUEUES; i++)
		ASSERT_GT(size, m.used_idx_off[i]);
	ASSERT_EQ(0U, m.done) TH_LOG("the suspended disk completed requests");
	ASSERT_EQ(0, kill(child, SIGKILL));

	/* The owner's exit gives up on the disk, and the socket closes. */
	pfd.fd = sv[0];
	ret = poll(&pfd, 1, 4 * VBLK_TIMEOUT_MS);
	EXPECT_EQ(1, ret)
		TH_LOG("the owner's exit waits for a disk that completes nothing");
	if (ret == 1)
		EXPECT_EQ(0, read(sv[0], &c, 1));
	EXPECT_EQ(0U, rings_reported(&m, map));

	/* Resumed, the disk completes them, and the release reports them. */
	ASSERT_EQ(0, vblk_run("dmsetup resume %s", self->be.dm_name));
	self->suspended = false;
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ((unsigned int)NREQ, rings_reported(&m, map));
	munmap((void *)map, size);
	close(sv[0]);
	check_writes_landed(_metadata, &self->be, &l);
}

/* One device's life: set up, verified I/O, and an end that varies with
 * @cycle: a plain close, a close with requests in flight, or
 * VHOST_RESET_OWNER before the close. */
static void one_cycle(struct __test_metadata *_metadata,
		      FIXTURE_DATA(in_flight) *self, unsigned int cycle)
{
	struct vblk_opts o = self->opts;

	o.nqueues = NQUEUES - cycle % NQUEUES;
	if (o.nqueues < 2)
		o.nqueues = NQUEUES;
	ASSERT_EQ(0, vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR));
	check_serves(_metadata, &self->dev, o.nqueues, 6000 + cycle * 10);
	switch (cycle % 3) {
	case 1:
		if (o.nqueues == NQUEUES) {
			ASSERT_EQ(0, alloc_load(&self->dev, &self->load));
			ASSERT_EQ(0, submit_load(&self->dev, &self->load, cycle,
						 o.features & F_INDIRECT));
		}
		break;
	case 2:
		ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_RESET_OWNER));
		break;
	}
	vblk_dev_close(&self->dev);
}

TEST_F(in_flight, many_setup_and_close_cycles_leave_nothing_behind)
{
	long module_refs;
	unsigned int fds, i;

	vblk_dev_close(&self->dev);
	ASSERT_EQ(0, wait_released(self->refs, getpid()));
	module_refs = vhost_blk_refs();
	fds = open_fds();
	for (i = 0; i < CYCLES; i++)
		one_cycle(_metadata, self, i);
	EXPECT_EQ(0, wait_released(self->refs, getpid()))
		TH_LOG("null_blk refs %ld, was %ld; workers %u", null_blk_refs(),
		       self->refs, vhost_workers(getpid()));
	EXPECT_EQ(module_refs, vhost_blk_refs());
	EXPECT_EQ(fds, open_fds());
	EXPECT_EQ(0, vblk_backend_destroy(&self->be));
}

TEST_HARNESS_MAIN
