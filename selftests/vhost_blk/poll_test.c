// SPDX-License-Identifier: GPL-2.0
/*
 * Busy polling: VHOST_SET_VRING_BUSYLOOP_TIMEOUT gives a queue's worker a
 * time, in microseconds, to keep polling the avail ring (and its
 * completions) after a batch, notifications off, before it sleeps. GET
 * returns what SET stored, per queue; a polling queue serves a request the
 * driver offers without a kick, because the device asked for none; and a
 * worker that polls gives way at once when the device is stopped, reset
 * or closed, or its owner killed: each test below polls for far longer
 * than the harness lets a test run.
 *
 * On a block device with poll queues (null_blk has one) a polling queue's
 * reads and writes go REQ_POLLED and its worker reaps them: the POLLED
 * counter of the netlink family says how many. Nothing else completes
 * them, so the worker must never sleep in the block layer while they are
 * in flight: more requests than the device has tags, and a discard behind
 * polled writes on tags shared with the poll queue, all complete.
 *
 * Needs root, the vhost_blk module loaded, null_blk and loop devices.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "nlclient.h"
#include "vblk.h"

#define NQUEUES		2
#define REQ_LEN		(4 * 1024)
/* Longer than any test may run: only giving way ends such a poll. */
#define LONG_POLL_US	600000000U
/* Tries to catch the worker polling; one is enough. */
#define TRIES		20

static int set_poll(int fd, unsigned int index, unsigned int us)
{
	struct vhost_vring_state s = { .index = index, .num = us };

	return ioctl(fd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &s) ? -errno : 0;
}

static int get_poll(int fd, unsigned int index, unsigned int *us)
{
	struct vhost_vring_state s = { .index = index };

	if (ioctl(fd, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &s))
		return -errno;
	*us = s.num;
	return 0;
}

/*
 * A polling worker gives way to any task that wants its CPU, the test
 * itself waking from its sleep or a loop device's kworker included: this
 * process goes on CPU 0 and the vhost workers of @owner on CPU 1, where
 * there are two. Return: 0 or a negative errno.
 */
static int pin_apart(pid_t owner)
{
	pid_t tids[2 * VHOST_BLK_MAX_QUEUES];
	unsigned int i, n;
	cpu_set_t set;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return -errno;
	CPU_ZERO(&set);
	CPU_SET(1, &set);
	n = vblk_vhost_workers(owner, tids, ARRAY_SIZE(tids));
	for (i = 0; i < n && i < ARRAY_SIZE(tids); i++)
		if (sched_setaffinity(tids[i], sizeof(set), &set))
			return -errno;
	return n ? 0 : -ESRCH;
}

/*
 * Writes the pattern of @seed at @sector with a request offered the way a
 * driver does (kicking only when the device asks for it), after giving the
 * worker time to settle after the last request, and waits for it.
 *
 * Return: 1 when the device asked for no kick (its worker was polling),
 * 0 when it was kicked, or a negative errno; the request's status in
 * *@status.
 */
static int offer_write(struct vblk_queue *q, struct vblk_buf *buf,
		       uint64_t sector, uint64_t seed, uint8_t *status)
{
	struct vblk_buf seg = *buf;
	struct vblk_req req;
	int kicked, ret;

	vblk_pattern_fill(buf->hva, buf->len, seed);
	vblk_req_init(&req, VIRTIO_BLK_T_OUT, sector, &seg, 1);
	usleep(20 * 1000);
	ret = vblk_queue_add(q, &req);
	if (ret)
		return ret;
	kicked = vblk_queue_kick(q);
	if (kicked < 0)
		return kicked;
	ret = vblk_wait(q, &req, VBLK_TIMEOUT_MS);
	if (ret)
		return ret;
	*status = req.status;
	return !kicked;
}

FIXTURE(polling) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_buf buf;
};

FIXTURE_VARIANT(polling) {
	uint64_t features;
};

/* Notifications off is VRING_USED_F_NO_NOTIFY in the used ring... */
FIXTURE_VARIANT_ADD(polling, flags) {
	.features = 0,
};

/* ...or an avail_event the driver has passed. */
FIXTURE_VARIANT_ADD(polling, event_idx) {
	.features = 1ULL << VIRTIO_RING_F_EVENT_IDX,
};

FIXTURE_SETUP(polling)
{
	struct vblk_backend_opts bo = { .size = 16ULL << 20 };
	struct vblk_opts o = {
		.features = variant->features,
		.nqueues = NQUEUES,
		.exact_queues = true,
	};
	int ret;

	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("backend: %s", strerror(-ret));
	ret = vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR);
	ASSERT_EQ(0, ret) TH_LOG("device: %s", strerror(-ret));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, REQ_LEN, VBLK_PAGE_SIZE,
				    &self->buf));
	ret = pin_apart(getpid());
	ASSERT_EQ(0, ret) TH_LOG("CPU affinity: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(polling)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

/*
 * Writes on queue 0 until a request is offered while the worker polls (the
 * device asked for no kick), at most TRIES, request i the pattern of seed
 * 100 + i at sector 8 * i.
 *
 * Return: the requests written when the last was offered without a kick,
 * 0 when the device wanted a kick for every one, or a negative errno (-EIO
 * for a status other than OK).
 */
static int catch_polling(struct vblk_dev *dev, struct vblk_buf *buf)
{
	uint8_t status;
	int i, ret;

	for (i = 0; i < TRIES; i++) {
		ret = offer_write(&dev->queues[0], buf, 8 * i, 100 + i, &status);
		if (ret < 0)
			return ret;
		if (status != VIRTIO_BLK_S_OK)
			return -EIO;
		if (ret)
			return i + 1;
	}
	return 0;
}

#define ASSERT_CAUGHT_POLLING(dev, buf) ({				\
	int __n = catch_polling(dev, buf);				\
									\
	ASSERT_LT(0, __n) TH_LOG("%s", __n ? strerror(-__n) :		\
		"the device wanted a kick for every request");		\
	__n;								\
})

TEST_F(polling, get_returns_what_set_stored_for_each_queue)
{
	unsigned int us = ~0U, q;

	for (q = 0; q < NQUEUES; q++) {
		ASSERT_EQ(0, get_poll(self->dev.fd, q, &us));
		EXPECT_EQ(0U, us) TH_LOG("queue %u polls from the start", q);
	}
	ASSERT_EQ(0, set_poll(self->dev.fd, 0, 50));
	ASSERT_EQ(0, set_poll(self->dev.fd, 1, LONG_POLL_US));
	ASSERT_EQ(0, get_poll(self->dev.fd, 0, &us));
	EXPECT_EQ(50U, us);
	ASSERT_EQ(0, get_poll(self->dev.fd, 1, &us));
	EXPECT_EQ(LONG_POLL_US, us);
	ASSERT_EQ(0, set_poll(self->dev.fd, 1, 0));
	ASSERT_EQ(0, get_poll(self->dev.fd, 1, &us));
	EXPECT_EQ(0U, us);
	ASSERT_EQ(0, get_poll(self->dev.fd, 0, &us));
	EXPECT_EQ(50U, us);
}

TEST_F(polling, a_queue_past_the_last_is_refused)
{
	unsigned int us = 0;

	EXPECT_EQ(-ENOBUFS, set_poll(self->dev.fd, NQUEUES, 50));
	EXPECT_EQ(-ENOBUFS, get_poll(self->dev.fd, NQUEUES, &us));
	EXPECT_EQ(-ENOBUFS, set_poll(self->dev.fd, ~0U, 50));
}

TEST_F(polling, only_the_owner_sets_or_gets_it)
{
	int status;
	pid_t child;

	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		unsigned int us = 0;

		/* Another address space than the owner's. */
		_exit(set_poll(self->dev.fd, 0, 50) != -EPERM ? 1 :
		      get_poll(self->dev.fd, 0, &us) != -EPERM ? 2 : 0);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_F(polling, without_a_timeout_the_device_wants_every_kick)
{
	uint8_t status = VBLK_STATUS_NONE;
	int i, ret;

	for (i = 0; i < 4; i++) {
		ret = offer_write(&self->dev.queues[0], &self->buf, 8 * i, i, &status);
		ASSERT_EQ(0, ret) TH_LOG("request %d: %d", i, ret);
		ASSERT_EQ(VIRTIO_BLK_S_OK, status);
	}
}

/* Writes eight patterns on queue 0 of @dev, polling, and reads them back. */
static void polled_round_trip(struct __test_metadata *_metadata,
			      struct vblk_dev *dev, struct vblk_buf *buf)
{
	struct vblk_queue *q = &dev->queues[0];
	int i;

	ASSERT_EQ(0, set_poll(dev->fd, 0, LONG_POLL_US));
	for (i = 0; i < 8; i++) {
		vblk_pattern_fill(buf->hva, REQ_LEN, 500 + i);
		ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(q, 8 * i, buf));
	}
	for (i = 0; i < 8; i++) {
		memset(buf->hva, 0, REQ_LEN);
		ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(q, 8 * i, buf));
		EXPECT_EQ(-1, vblk_pattern_check(buf->hva, REQ_LEN, 500 + i))
			TH_LOG("request %d", i);
	}
}

TEST_F(polling, reads_and_writes_of_a_polling_queue_return_the_data)
{
	polled_round_trip(_metadata, &self->dev, &self->buf);
}

/*
 * A loop device, whose I/O runs on a kworker that may wake on the polling
 * worker's CPU and make it give way at any request: only the data is
 * checked there, not whether a request finds the worker polling.
 */
FIXTURE(polling_loop) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_buf buf;
};

FIXTURE_SETUP(polling_loop)
{
	struct vblk_backend_opts bo = { .size = 16ULL << 20 };
	struct vblk_opts o = { .features = 1ULL << VIRTIO_RING_F_EVENT_IDX };
	int ret;

	ret = vblk_backend_create(&self->be, VBLK_BE_LOOP, &bo);
	ASSERT_EQ(0, ret) TH_LOG("loop device: %s", strerror(-ret));
	ret = vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR);
	ASSERT_EQ(0, ret) TH_LOG("device: %s", strerror(-ret));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, REQ_LEN, VBLK_PAGE_SIZE,
				    &self->buf));
}

FIXTURE_TEARDOWN(polling_loop)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

TEST_F(polling_loop, reads_and_writes_of_a_polling_queue_return_the_data)
{
	polled_round_trip(_metadata, &self->dev, &self->buf);
}

TEST_F(polling, a_request_offered_without_a_kick_is_served_while_polling)
{
	int i, n;

	ASSERT_EQ(0, set_poll(self->dev.fd, 0, LONG_POLL_US));
	n = ASSERT_CAUGHT_POLLING(&self->dev, &self->buf);
	/* Everything written, while polling or not, reads back. */
	ASSERT_EQ(0, set_poll(self->dev.fd, 0, 0));
	for (i = 0; i < n; i++) {
		ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&self->dev.queues[0], 8 * i,
						     &self->buf));
		EXPECT_EQ(-1, vblk_pattern_check(self->buf.hva, REQ_LEN, 100 + i))
			TH_LOG("request %d", i);
	}
}

TEST_F(polling, the_other_queue_is_served_while_one_polls)
{
	uint8_t status = VBLK_STATUS_NONE;

	ASSERT_EQ(0, set_poll(self->dev.fd, 0, LONG_POLL_US));
	ASSERT_CAUGHT_POLLING(&self->dev, &self->buf);
	/* Queue 1 shares queue 0's worker unless the kernel has per-queue ones. */
	ASSERT_LE(0, offer_write(&self->dev.queues[1], &self->buf, 1024, 7, &status));
	ASSERT_EQ(VIRTIO_BLK_S_OK, status);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&self->dev.queues[1], 1024, &self->buf));
	EXPECT_EQ(-1, vblk_pattern_check(self->buf.hva, REQ_LEN, 7));
}

TEST_F(polling, a_stop_ends_the_poll)
{
	int fd, ret;

	ASSERT_EQ(0, set_poll(self->dev.fd, 0, LONG_POLL_US));
	ASSERT_CAUGHT_POLLING(&self->dev, &self->buf);
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	/* And the queue serves again after a restart. */
	ASSERT_EQ(0, set_poll(self->dev.fd, 0, 0));
	fd = open(self->be.path, O_RDWR);
	ASSERT_LE(0, fd);
	ret = vblk_dev_set_backend(&self->dev, fd);
	close(fd);
	ASSERT_EQ(0, ret);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&self->dev.queues[0], 0, &self->buf));
}

TEST_F(polling, a_reset_ends_the_poll)
{
	ASSERT_EQ(0, set_poll(self->dev.fd, 0, LONG_POLL_US));
	ASSERT_CAUGHT_POLLING(&self->dev, &self->buf);
	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_RESET_OWNER));
}

TEST_F(polling, a_close_ends_the_poll)
{
	ASSERT_EQ(0, set_poll(self->dev.fd, 0, LONG_POLL_US));
	ASSERT_CAUGHT_POLLING(&self->dev, &self->buf);
	vblk_dev_close(&self->dev);
}

TEST_F(polling, the_owner_can_be_killed_while_its_worker_polls)
{
	struct pollfd pfd = { .events = POLLIN };
	struct vblk_opts o = { .features = variant->features };
	int pipefd[2], status;
	struct vblk_dev dev;
	struct vblk_buf buf;
	pid_t child;
	char step;

	vblk_dev_close(&self->dev);
	ASSERT_EQ(0, pipe(pipefd));
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		close(pipefd[0]);
		step = 1;
		if (vblk_dev_start(&dev, &o, self->be.path, O_RDWR) ||
		    vblk_mem_alloc(&dev.mem, REQ_LEN, VBLK_PAGE_SIZE, &buf) ||
		    set_poll(dev.fd, 0, LONG_POLL_US) || pin_apart(getpid()))
			_exit(1);
		if (catch_polling(&dev, &buf) <= 0)
			_exit(2);
		if (write(pipefd[1], &step, 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(pipefd[1]);
	pfd.fd = pipefd[0];
	EXPECT_EQ(1, poll(&pfd, 1, 4 * VBLK_TIMEOUT_MS));
	EXPECT_EQ(1, read(pipefd[0], &step, 1));
	close(pipefd[0]);
	ASSERT_EQ(0, kill(child, SIGKILL));
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status))
		TH_LOG("child failed at step %d", WEXITSTATUS(status));
	/* The block device is free again: a new device can take it. */
	ASSERT_EQ(0, vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, REQ_LEN, VBLK_PAGE_SIZE,
				    &self->buf));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&self->dev.queues[0], 0, &self->buf));
}

/*
 * Polled bios on null_blk, whose one poll queue has TAGS tags: apart from
 * the other hardware queue's, or shared with it.
 */
#define TAGS		2
#define BURST		32	/* requests offered at once, far more than TAGS */
/* Where request i of a burst goes: apart, so that no two merge into one. */
#define BURST_SECTOR(i)	(16 * (uint64_t)(i))

FIXTURE(polled_bios) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_buf bufs[BURST];
	struct nlc *nlc;
};

FIXTURE_VARIANT(polled_bios) {
	bool shared_tags;
};

FIXTURE_VARIANT_ADD(polled_bios, private_tags) {
	.shared_tags = false,
};

FIXTURE_VARIANT_ADD(polled_bios, shared_tags) {
	.shared_tags = true,
};

FIXTURE_SETUP(polled_bios)
{
	struct vblk_backend_opts bo = {
		.size = 16ULL << 20,
		.discard = true,
		.hw_queue_depth = TAGS,
		.shared_tags = variant->shared_tags,
	};
	struct vblk_opts o = { .features = 1ULL << VIRTIO_RING_F_EVENT_IDX };
	uint64_t io_poll = 0;
	int i, ret;

	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("backend: %s", strerror(-ret));
	/* The block layer polls the device (it has a poll queue). */
	ASSERT_EQ(0, vblk_sysfs_u64(self->be.name, "queue/io_poll", &io_poll));
	ASSERT_EQ(1, io_poll);
	ret = vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR);
	ASSERT_EQ(0, ret) TH_LOG("device: %s", strerror(-ret));
	for (i = 0; i < BURST; i++)
		ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, REQ_LEN, VBLK_PAGE_SIZE,
					    &self->bufs[i]));
	ret = nlc_open(&self->nlc);
	ASSERT_EQ(0, ret) TH_LOG("netlink: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(polled_bios)
{
	if (self->nlc)
		nlc_close(self->nlc);
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

/* The device's POLLED counter, or -1 when it cannot be read. */
static int64_t polled(struct nlc *nlc, int fd)
{
	static struct nlc_stats st;

	if (nlc_stats_get(nlc, vblk_dev_id(fd), &st))
		return -1;
	return st.total.v[VHOST_BLK_A_STAT_POLLED];
}

/*
 * Offers @n requests at once on queue 0, request i of type @types[i] (a
 * read or write of bufs[i], or a discard of as many sectors, at
 * BURST_SECTOR(i)), and waits for all of them: each
 * must end OK. The queue, which must not poll yet (its worker would take
 * the requests one by one as they come), polls from then on: the kick
 * finds all of them in the ring, and the worker starts them together.
 */
static void burst(struct __test_metadata *_metadata, struct vblk_dev *dev,
		  struct vblk_buf *bufs, const uint32_t *types, unsigned int n)
{
	struct vblk_queue *q = &dev->queues[0];
	struct virtio_blk_discard_write_zeroes seg;
	struct vblk_buf segbuf;
	struct vblk_req reqs[BURST];
	unsigned int i;

	ASSERT_GE(BURST, n);
	ASSERT_EQ(0, vblk_mem_alloc(&dev->mem, sizeof(seg), 8, &segbuf));
	for (i = 0; i < n; i++) {
		if (types[i] == VIRTIO_BLK_T_DISCARD) {
			seg = (struct virtio_blk_discard_write_zeroes) {
				.sector = BURST_SECTOR(i),
				.num_sectors = REQ_LEN >> 9,
			};
			memcpy(segbuf.hva, &seg, sizeof(seg));
			vblk_req_init(&reqs[i], types[i], 0, &segbuf, 1);
		} else {
			vblk_req_init(&reqs[i], types[i], BURST_SECTOR(i), &bufs[i], 1);
		}
		ASSERT_EQ(0, vblk_queue_add(q, &reqs[i])) TH_LOG("request %u", i);
	}
	ASSERT_EQ(0, set_poll(dev->fd, 0, LONG_POLL_US));
	ASSERT_LE(0, vblk_queue_kick(q));
	for (i = 0; i < n; i++) {
		ASSERT_EQ(0, vblk_wait(q, &reqs[i], VBLK_TIMEOUT_MS))
			TH_LOG("request %u never completed", i);
		EXPECT_EQ(VIRTIO_BLK_S_OK, reqs[i].status) TH_LOG("request %u", i);
	}
}

/*
 * Reads BURST_SECTOR(i) back into bufs[i] for each of the first @n
 * requests but request @skip, and checks it holds pattern 700 + i.
 */
static void check_burst(struct __test_metadata *_metadata, struct vblk_dev *dev,
			struct vblk_buf *bufs, unsigned int n, unsigned int skip)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (i == skip)
			continue;
		memset(bufs[i].hva, 0, REQ_LEN);
		ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&dev->queues[0], BURST_SECTOR(i),
						     &bufs[i]));
		EXPECT_EQ(-1, vblk_pattern_check(bufs[i].hva, REQ_LEN, 700 + i))
			TH_LOG("request %u", i);
	}
}

TEST_F(polled_bios, reads_and_writes_are_reaped_by_polling_and_return_the_data)
{
	ASSERT_EQ(0, polled(self->nlc, self->dev.fd));
	polled_round_trip(_metadata, &self->dev, &self->bufs[0]);
	/* Every one of the eight writes and eight reads. */
	EXPECT_EQ(16, polled(self->nlc, self->dev.fd));
}

TEST_F(polled_bios, without_a_busy_loop_timeout_no_bio_is_polled)
{
	struct vblk_buf *buf = &self->bufs[0];

	vblk_pattern_fill(buf->hva, REQ_LEN, 3);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(&self->dev.queues[0], 0, buf));
	memset(buf->hva, 0, REQ_LEN);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&self->dev.queues[0], 0, buf));
	EXPECT_EQ(-1, vblk_pattern_check(buf->hva, REQ_LEN, 3));
	EXPECT_EQ(0, polled(self->nlc, self->dev.fd));
}

TEST_F(polled_bios, more_requests_than_tags_all_complete_with_their_data)
{
	uint32_t types[BURST];
	unsigned int i;

	for (i = 0; i < BURST; i++) {
		types[i] = VIRTIO_BLK_T_OUT;
		vblk_pattern_fill(self->bufs[i].hva, REQ_LEN, 700 + i);
	}
	burst(_metadata, &self->dev, self->bufs, types, BURST);
	/* Those the block layer refused went again, unpolled. */
	EXPECT_LT(0, polled(self->nlc, self->dev.fd));
	EXPECT_GT(BURST, polled(self->nlc, self->dev.fd));
	check_burst(_metadata, &self->dev, self->bufs, BURST, BURST);
}

TEST_F(polled_bios, a_discard_behind_polled_writes_completes)
{
	struct vblk_buf *buf = &self->bufs[BURST - 1];
	uint32_t types[BURST];
	unsigned int i, d = BURST / 2;

	/* What the discard will take away. */
	vblk_pattern_fill(buf->hva, REQ_LEN, 9);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(&self->dev.queues[0], BURST_SECTOR(d), buf));
	for (i = 0; i < BURST - 1; i++) {
		types[i] = i == d ? VIRTIO_BLK_T_DISCARD : VIRTIO_BLK_T_OUT;
		vblk_pattern_fill(self->bufs[i].hva, REQ_LEN, 700 + i);
	}
	burst(_metadata, &self->dev, self->bufs, types, BURST - 1);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&self->dev.queues[0], BURST_SECTOR(d), buf));
	for (i = 0; i < REQ_LEN && !((uint8_t *)buf->hva)[i]; i++)
		;
	EXPECT_EQ(REQ_LEN, i) TH_LOG("the discarded sectors still hold data");
	check_burst(_metadata, &self->dev, self->bufs, BURST - 1, d);
}

TEST_HARNESS_MAIN
