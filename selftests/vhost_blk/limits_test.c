// SPDX-License-Identifier: GPL-2.0
/*
 * What a guest's requests may cost the host: the memory a queue's requests
 * hold is bounded by the module parameter queue_mem_kb, a request over it
 * waits in the avail ring (never an error), that memory is charged to the
 * owner's memory cgroup, and guest pages under I/O are pinned (FOLL_PIN),
 * not merely referenced.
 *
 * Every request here goes to a null_blk that completes each request only
 * after a delay (the variant's, long enough for the device to take every
 * request it will take first), so what the device holds can be looked at
 * while it holds it. Needs root, the vhost_blk module loaded, null_blk and cgroup v2 with
 * the memory controller.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define KiB		1024UL
#define MiB		(1024UL * 1024)

#define NREQ		8

#define PARAM_MEM	"/sys/module/vhost_blk/parameters/queue_mem_kb"
#define CGROUP_ROOT	"/sys/fs/cgroup"

static int read_u64(const char *path, uint64_t *val)
{
	unsigned long long v;
	FILE *f = fopen(path, "re");
	int ret = -EIO;

	if (!f)
		return -errno;
	if (fscanf(f, "%llu", &v) == 1) {
		*val = v;
		ret = 0;
	}
	fclose(f);
	return ret;
}

/*
 * A counter of /proc/vmstat, or UINT64_MAX when it is missing. The per-CPU
 * deltas are folded in first (vm.stat_refresh): they lag by up to the
 * counters' threshold otherwise.
 */
static uint64_t vmstat(const char *name)
{
	unsigned long long v;
	char key[64];
	FILE *f;
	uint64_t ret = UINT64_MAX;

	vblk_write_file("/proc/sys/vm/stat_refresh", "1");
	f = fopen("/proc/vmstat", "re");
	if (!f)
		return ret;
	while (fscanf(f, "%63s %llu", key, &v) == 2)
		if (!strcmp(key, name)) {
			ret = v;
			break;
		}
	fclose(f);
	return ret;
}

static void pause_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&t, NULL);
}

/*
 * A started device on the slow null_blk, with the queue budget the variant
 * gives (the parameter is read when a queue starts) and NREQ buffers.
 */
FIXTURE(queue_memory) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_queue *q;
	uint64_t saved_kb;
	struct vblk_buf area[NREQ];
	struct vblk_buf bufs[NREQ];
	struct vblk_req reqs[NREQ];
	char cgroup[64];
};

FIXTURE_VARIANT(queue_memory) {
	unsigned int budget_kb;	/* 0: the default */
	size_t req_len;
	unsigned long slow_ms;	/* each request's time in null_blk */
};

/*
 * Four 128 KiB bounced writes fit (bounce pages only: 32 pages fit the
 * inline vectors, and a write keeps no iovec copy), the fifth waits.
 */
FIXTURE_VARIANT_ADD(queue_memory, budget_512k) {
	.budget_kb = 512, .req_len = 128 * KiB, .slow_ms = 1000,
};

/* Every bounced write fits the default budget of 16 MiB. */
FIXTURE_VARIANT_ADD(queue_memory, default_budget) {
	.budget_kb = 0, .req_len = 128 * KiB, .slow_ms = 1000,
};

FIXTURE_SETUP(queue_memory)
{
	struct vblk_backend_opts bo = {
		.size = 64 * MiB, .completion_nsec = variant->slow_ms * 1000000,
	};
	char kb[32];
	unsigned int i;
	int ret;

	ASSERT_EQ(0, read_u64(PARAM_MEM, &self->saved_kb));
	if (variant->budget_kb) {
		snprintf(kb, sizeof(kb), "%u", variant->budget_kb);
		ASSERT_EQ(0, vblk_write_file(PARAM_MEM, kb));
	}
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	ret = vblk_dev_start(&self->dev, NULL, self->be.path, O_RDWR);
	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
	self->q = &self->dev.queues[0];
	for (i = 0; i < NREQ; i++)
		ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, variant->req_len + VBLK_PAGE_SIZE,
					    VBLK_PAGE_SIZE, &self->area[i]));
}

FIXTURE_TEARDOWN(queue_memory)
{
	char kb[32];

	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
	snprintf(kb, sizeof(kb), "%llu", (unsigned long long)self->saved_kb);
	vblk_write_file(PARAM_MEM, kb);
	if (self->cgroup[0]) {
		vblk_write_file(CGROUP_ROOT "/cgroup.procs", "0");
		rmdir(self->cgroup);
	}
}

/*
 * Publishes NREQ writes with one kick: each buffer starts @offset bytes
 * into its area (1: not on a sector, so the device bounces it).
 */
static void submit_writes(struct __test_metadata *_metadata,
			  FIXTURE_DATA(queue_memory) *self, size_t len,
			  size_t offset)
{
	unsigned int i;

	for (i = 0; i < NREQ; i++) {
		self->bufs[i] = vblk_buf_slice(&self->area[i], offset, len);
		vblk_pattern_fill(self->bufs[i].hva, len, 700 + i);
		vblk_req_init(&self->reqs[i], VIRTIO_BLK_T_OUT,
			      i * len / VBLK_SECTOR_SIZE, &self->bufs[i], 1);
		ASSERT_EQ(0, vblk_queue_add(self->q, &self->reqs[i]));
	}
	ASSERT_LE(0, vblk_queue_kick(self->q));
}

/* Requests the device took off the avail ring, once that settled. */
static unsigned int taken(struct __test_metadata *_metadata,
			  FIXTURE_DATA(queue_memory) *self, unsigned int want)
{
	uint16_t idx = 0, last;
	int i;

	for (i = 0; i < VBLK_TIMEOUT_MS; i++) {
		ASSERT_EQ(0, vblk_queue_device_avail(self->q, &idx));
		if (idx >= want)
			break;
		pause_ms(1);
	}
	/* Anything more it would take, it takes long before a completion. */
	do {
		last = idx;
		pause_ms(50);
		ASSERT_EQ(0, vblk_queue_device_avail(self->q, &idx));
	} while (idx != last);
	return idx;
}

/* Every write completes OK and its data is on the block device. */
static void reap_and_check(struct __test_metadata *_metadata,
			   FIXTURE_DATA(queue_memory) *self, size_t len)
{
	uint8_t *data = malloc(len);
	struct vblk_req *done;
	unsigned int i;

	ASSERT_NE(NULL, data);
	for (i = 0; i < NREQ; i++) {
		ASSERT_EQ(0, vblk_reap(self->q, &done, 4 * VBLK_TIMEOUT_MS));
		EXPECT_EQ(VIRTIO_BLK_S_OK, done->status);
	}
	for (i = 0; i < NREQ; i++) {
		ASSERT_EQ(0, vblk_backend_pread(&self->be, data, len, i * len));
		EXPECT_EQ(-1, vblk_pattern_check(data, len, 700 + i))
			TH_LOG("write %u", i);
	}
	free(data);
}

TEST_F(queue_memory, bounced_requests_over_the_budget_wait_in_the_ring_and_all_complete)
{
	size_t len = variant->req_len;
	unsigned int fit = variant->budget_kb ?
			   variant->budget_kb * KiB / len : NREQ;

	submit_writes(_metadata, self, len, 1);
	EXPECT_EQ(fit, taken(_metadata, self, fit));
	ASSERT_EQ(0U, vblk_queue_used_pending(self->q))
		TH_LOG("the backend completed early: the count above means nothing");
	reap_and_check(_metadata, self, len);
}

TEST_F(queue_memory, direct_requests_are_not_held_back_by_the_bounce_budget)
{
	submit_writes(_metadata, self, variant->req_len, 0);
	EXPECT_EQ((unsigned int)NREQ, taken(_metadata, self, NREQ));
	reap_and_check(_metadata, self, variant->req_len);
}

/*
 * Bounce pages never exceed the budget: a bounced request whose
 * allocations would take more than all of it fails (it could never fit);
 * one of half the budget works.
 */
TEST_F(queue_memory, bounced_request_needing_more_than_the_whole_budget_fails_ioerr)
{
	size_t budget = variant->budget_kb * KiB;
	struct vblk_buf area, buf;
	struct vblk_req req;

	if (!budget)	/* 16 MiB: more than one buffer may carry */
		budget = VHOST_BLK_SIZE_MAX / 2;
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 2 * budget + VBLK_PAGE_SIZE,
				    VBLK_PAGE_SIZE, &area));
	buf = vblk_buf_slice(&area, 1, budget / 2);
	vblk_pattern_fill(buf.hva, buf.len, 800);
	vblk_req_init(&req, VIRTIO_BLK_T_OUT, 0, &buf, 1);
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_exec(self->q, &req));
	if (variant->budget_kb) {
		buf = vblk_buf_slice(&area, 1, 2 * budget);
		vblk_req_init(&req, VIRTIO_BLK_T_OUT, 0, &buf, 1);
		EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_exec(self->q, &req));
	}
	/* The first write's data, untouched by the second. */
	ASSERT_EQ(0, vblk_backend_pread(&self->be, area.hva, budget / 2, 0));
	EXPECT_EQ(-1, vblk_pattern_check(area.hva, budget / 2, 800));
}

/*
 * The bounce pages of the requests in flight are charged to the memory
 * cgroup of the owner: on 6.1 the worker is a kernel thread, which would
 * charge nobody.
 */
TEST_F(queue_memory, bounce_pages_are_charged_to_the_owners_memory_cgroup)
{
	size_t len = variant->req_len;
	uint64_t before, during;
	char path[96];
	unsigned int fit = variant->budget_kb ?
			   variant->budget_kb * KiB / len : NREQ;

	/* The owner: this process, in a memory cgroup of its own. */
	vblk_write_file(CGROUP_ROOT "/cgroup.subtree_control", "+memory");
	snprintf(self->cgroup, sizeof(self->cgroup), CGROUP_ROOT "/vblk-limits-%d",
		 getpid());
	ASSERT_EQ(0, mkdir(self->cgroup, 0755));
	snprintf(path, sizeof(path), "%s/cgroup.procs", self->cgroup);
	ASSERT_EQ(0, vblk_write_file(path, "0"));
	/* A new device, owned from inside the cgroup. */
	vblk_dev_close(&self->dev);
	ASSERT_EQ(0, vblk_dev_start(&self->dev, NULL, self->be.path, O_RDWR));
	self->q = &self->dev.queues[0];
	for (unsigned int i = 0; i < NREQ; i++)
		ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, len + VBLK_PAGE_SIZE,
					    VBLK_PAGE_SIZE, &self->area[i]));

	snprintf(path, sizeof(path), "%s/memory.current", self->cgroup);
	ASSERT_EQ(0, read_u64(path, &before));
	submit_writes(_metadata, self, len, 1);
	ASSERT_EQ(fit, taken(_metadata, self, fit));
	ASSERT_EQ(0, read_u64(path, &during));
	ASSERT_EQ(0U, vblk_queue_used_pending(self->q));
	/* Charges go through a per-CPU stock of MEMCG_CHARGE_BATCH pages. */
	EXPECT_LE(before + fit * len - 64 * VBLK_PAGE_SIZE, during)
		TH_LOG("%u bounced requests of %zu bytes in flight: %llu -> %llu bytes",
		       fit, len, (unsigned long long)before,
		       (unsigned long long)during);
	reap_and_check(_metadata, self, len);
}

/*
 * Guest pages under I/O are pinned (FOLL_PIN) and unpinned when the request
 * completes: /proc/vmstat counts both.
 */
TEST_F(queue_memory, guest_pages_are_pinned_while_in_flight_and_unpinned_after)
{
	size_t len = variant->req_len;
	uint64_t acquired = vmstat("nr_foll_pin_acquired");
	uint64_t released = vmstat("nr_foll_pin_released");
	uint64_t pages = NREQ * len / VBLK_PAGE_SIZE;

	ASSERT_NE(UINT64_MAX, acquired);
	ASSERT_NE(UINT64_MAX, released);
	submit_writes(_metadata, self, len, 0);
	ASSERT_EQ((unsigned int)NREQ, taken(_metadata, self, NREQ));
	ASSERT_EQ(0U, vblk_queue_used_pending(self->q));
	EXPECT_LE(acquired + pages, vmstat("nr_foll_pin_acquired"));
	reap_and_check(_metadata, self, len);
	EXPECT_LE(released + pages, vmstat("nr_foll_pin_released"));
	EXPECT_EQ(vmstat("nr_foll_pin_acquired") - acquired,
		  vmstat("nr_foll_pin_released") - released);
}

TEST_HARNESS_MAIN
