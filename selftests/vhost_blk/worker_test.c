// SPDX-License-Identifier: GPL-2.0
/*
 * A worker per queue (Linux 6.5 and later): the owner makes workers with
 * VHOST_NEW_WORKER and attaches each queue to one with
 * VHOST_ATTACH_VRING_WORKER, and the module serves every queue, its kicks
 * and its completions, on the worker the queue is attached to.
 *
 * Workers are threads of the owner named "vhost-<owner pid>" whatever
 * their queue, so which thread served a queue is read from the threads'
 * run time (schedstat), once they are idle: a worker that has no work
 * never runs, so only the worker of the queue that had requests may gain
 * any. Nothing here depends on timing.
 *
 * Run only on kernels with the worker ioctls (`make check` leaves the
 * suite out on 6.1, whose answer, ENOTTY, module_test checks). Needs
 * root, the vhost_blk module loaded and null_blk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define NQUEUES		4
#define NREQ		16
#define REQ_LEN		(16 * 1024)
#define DISK_SIZE	(64ULL << 20)
/* The default worker and one per queue. */
#define MAX_THREADS	(NQUEUES + 1)

/* The worker thread that VHOST_NEW_WORKER adds: the one not in @old. */
static pid_t new_thread(const pid_t *old, unsigned int nold)
{
	pid_t tids[MAX_THREADS + 1];
	unsigned int n, i, j;

	n = vblk_vhost_workers(getpid(), tids, MAX_THREADS + 1);
	for (i = 0; i < n && i <= MAX_THREADS; i++) {
		for (j = 0; j < nold && old[j] != tids[i]; j++)
			;
		if (j == nold)
			return tids[i];
	}
	return -1;
}

FIXTURE(workers) {
	struct vblk_backend be;
	struct vblk_dev dev;
	unsigned int ids[NQUEUES];	/* queue i's worker */
	pid_t tids[MAX_THREADS];	/* [0] the default worker, [i + 1] queue i's */
};

FIXTURE_SETUP(workers)
{
	struct vblk_backend_opts bo = { .size = DISK_SIZE };
	struct vblk_opts o = { .nqueues = NQUEUES };
	unsigned int i, id;
	int ret;

	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	ret = vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR);
	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));

	ASSERT_EQ(1U, vblk_vhost_workers(getpid(), self->tids, 1));
	ASSERT_EQ(0, vblk_queue_get_worker(&self->dev, 0, &id));
	for (i = 0; i < NQUEUES; i++) {
		ret = vblk_dev_new_worker(&self->dev, &self->ids[i]);
		ASSERT_EQ(0, ret) TH_LOG("VHOST_NEW_WORKER: %s", strerror(-ret));
		ASSERT_NE(id, self->ids[i]);
		self->tids[i + 1] = new_thread(self->tids, i + 1);
		ASSERT_LT(0, self->tids[i + 1]);
		ASSERT_EQ(0, vblk_queue_attach_worker(&self->dev, i, self->ids[i]));
	}
	ASSERT_EQ(MAX_THREADS, vblk_vhost_workers(getpid(), NULL, 0));
}

FIXTURE_TEARDOWN(workers)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

/* Writes then reads back @n requests on queue @q, verified. */
static void serve_on(struct __test_metadata *_metadata, struct vblk_dev *dev,
		     unsigned int q, unsigned int n, uint64_t seed)
{
	struct vblk_buf buf;
	unsigned int i;

	ASSERT_EQ(0, vblk_mem_alloc(&dev->mem, REQ_LEN, VBLK_PAGE_SIZE, &buf));
	for (i = 0; i < n; i++) {
		uint64_t sector = (q * NREQ + i) * (REQ_LEN / 512);

		vblk_pattern_fill(buf.hva, REQ_LEN, seed + i);
		ASSERT_EQ(0, vblk_write(&dev->queues[q], sector, &buf));
		memset(buf.hva, 0, REQ_LEN);
		ASSERT_EQ(0, vblk_read(&dev->queues[q], sector, &buf));
		ASSERT_EQ(-1, vblk_pattern_check(buf.hva, REQ_LEN, seed + i))
			TH_LOG("queue %u request %u", q, i);
	}
}

TEST_F(workers, each_queue_reports_the_worker_it_is_attached_to)
{
	unsigned int i, id;

	for (i = 0; i < NQUEUES; i++) {
		ASSERT_EQ(0, vblk_queue_get_worker(&self->dev, i, &id));
		EXPECT_EQ(self->ids[i], id);
	}
}

TEST_F(workers, each_queue_is_served_by_its_own_worker_and_no_other)
{
	unsigned long long before[MAX_THREADS], after[MAX_THREADS];
	unsigned int q, t;

	for (q = 0; q < NQUEUES; q++) {
		vblk_threads_run_ns_settled(self->tids, MAX_THREADS, before);
		serve_on(_metadata, &self->dev, q, NREQ, 100 * q);
		vblk_threads_run_ns_settled(self->tids, MAX_THREADS, after);
		for (t = 0; t < MAX_THREADS; t++) {
			if (t == q + 1) {
				EXPECT_LT(before[t], after[t])
					TH_LOG("queue %u: its worker did not run", q);
			} else {
				EXPECT_EQ(before[t], after[t])
					TH_LOG("queue %u: thread %u ran too", q, t);
			}
		}
	}
}

TEST_F(workers, a_queue_moved_to_another_worker_and_back_while_busy_loses_nothing)
{
	struct vblk_buf bufs[NREQ];
	struct vblk_req reqs[NREQ], *done;
	unsigned long long before, after;
	unsigned int i, n;

	/* Requests on queue 0 in flight while it changes worker. */
	for (i = 0; i < NREQ; i++) {
		ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, REQ_LEN, VBLK_PAGE_SIZE,
					    &bufs[i]));
		vblk_pattern_fill(bufs[i].hva, REQ_LEN, 500 + i);
		vblk_req_init(&reqs[i], VIRTIO_BLK_T_OUT, i * (REQ_LEN / 512),
			      &bufs[i], 1);
		ASSERT_EQ(0, vblk_submit(&self->dev.queues[0], &reqs[i]));
		if (i == NREQ / 3)
			ASSERT_EQ(0, vblk_queue_attach_worker(&self->dev, 0, self->ids[1]));
		if (i == 2 * NREQ / 3)
			ASSERT_EQ(0, vblk_queue_attach_worker(&self->dev, 0, self->ids[0]));
	}
	for (n = 0; n < NREQ; n++) {
		ASSERT_EQ(0, vblk_reap(&self->dev.queues[0], &done, VBLK_TIMEOUT_MS));
		EXPECT_EQ(VIRTIO_BLK_S_OK, done->status);
	}
	for (i = 0; i < NREQ; i++) {
		memset(bufs[i].hva, 0, REQ_LEN);
		vblk_req_init(&reqs[i], VIRTIO_BLK_T_IN, i * (REQ_LEN / 512),
			      &bufs[i], 1);
		ASSERT_EQ(0, vblk_exec(&self->dev.queues[0], &reqs[i]));
		ASSERT_EQ(-1, vblk_pattern_check(bufs[i].hva, REQ_LEN, 500 + i))
			TH_LOG("request %u", i);
	}

	/* Back on its first worker, and only there. */
	vblk_threads_run_ns_settled(&self->tids[2], 1, &before);
	serve_on(_metadata, &self->dev, 0, 2, 600);
	vblk_threads_run_ns_settled(&self->tids[2], 1, &after);
	EXPECT_EQ(before, after);
}

TEST_F(workers, a_worker_is_freed_only_once_no_queue_uses_it)
{
	unsigned int id;

	EXPECT_EQ(-EBUSY, vblk_dev_free_worker(&self->dev, self->ids[3]));
	ASSERT_EQ(0, vblk_queue_attach_worker(&self->dev, 3, self->ids[2]));
	ASSERT_EQ(0, vblk_dev_free_worker(&self->dev, self->ids[3]));
	EXPECT_EQ((unsigned int)MAX_THREADS - 1, vblk_vhost_workers(getpid(), NULL, 0));
	ASSERT_EQ(0, vblk_queue_get_worker(&self->dev, 3, &id));
	EXPECT_EQ(self->ids[2], id);
	serve_on(_metadata, &self->dev, 3, 2, 700);
}

TEST_F(workers, unknown_workers_and_queues_are_refused)
{
	unsigned int id;

	EXPECT_EQ(-ENODEV, vblk_dev_free_worker(&self->dev, 12345));
	EXPECT_EQ(-ENODEV, vblk_queue_attach_worker(&self->dev, 0, 12345));
	EXPECT_EQ(-ENOBUFS, vblk_queue_attach_worker(&self->dev,
						     VHOST_BLK_DEFAULT_QUEUES,
						     self->ids[0]));
	EXPECT_EQ(-ENOBUFS, vblk_queue_get_worker(&self->dev,
						  VHOST_BLK_DEFAULT_QUEUES, &id));
	/* Only the owner makes workers: they are its threads. */
	EXPECT_EQ(EPERM, vblk_child_ioctl(self->dev.fd, VHOST_NEW_WORKER,
					  &(struct vhost_worker_state){ 0 }));
	serve_on(_metadata, &self->dev, 0, 1, 800);
}

TEST_HARNESS_MAIN
