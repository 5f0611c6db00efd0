// SPDX-License-Identifier: GPL-2.0
/*
 * How many queues a device has: VHOST_BLK_DEFAULT_QUEUES unless the owner
 * asks for 1 to VHOST_BLK_MAX_QUEUES with VHOST_BLK_SET_NUM_QUEUES before
 * VHOST_SET_OWNER. Every queue of the largest device serves verified I/O,
 * the config space reports the count, a queue past it does not exist, and
 * the memory a device costs grows with its queues, charged to the owner.
 *
 * Needs root, the vhost_blk module loaded, null_blk and cgroup v2 with the
 * memory controller.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define REQ_LEN		(8 * 1024)
#define DISK_SIZE	(64ULL << 20)
#define CGROUP_ROOT	"/sys/fs/cgroup"
/* Devices per size in the memory test. */
#define NDEVS		8

FIXTURE(num_queues) {
	struct vblk_backend be;
	struct vblk_dev dev;
	unsigned int n;		/* the queues the device has */
};

FIXTURE_VARIANT(num_queues) {
	unsigned int set;	/* 0: VHOST_BLK_SET_NUM_QUEUES not used */
	bool queue_workers;
};

FIXTURE_VARIANT_ADD(num_queues, default_count) {
	.set = 0,
};

FIXTURE_VARIANT_ADD(num_queues, one) {
	.set = 1,
};

/* The most, each queue on its own worker where the kernel has them. */
FIXTURE_VARIANT_ADD(num_queues, max) {
	.set = VHOST_BLK_MAX_QUEUES,
	.queue_workers = true,
};

FIXTURE_SETUP(num_queues)
{
	struct vblk_backend_opts bo = { .size = DISK_SIZE };
	struct vblk_opts o = {
		.queue_workers = variant->queue_workers,
		.exact_queues = variant->set,
	};
	int ret;

	self->n = variant->set ? variant->set : VHOST_BLK_DEFAULT_QUEUES;
	o.nqueues = self->n;
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	ret = vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR);
	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(num_queues)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

TEST_F(num_queues, config_space_reports_the_number_of_queues)
{
	struct vhost_blk_config cfg;

	ASSERT_EQ(0, vblk_dev_get_config(&self->dev, &cfg));
	EXPECT_EQ(self->n, le16toh(cfg.num_queues));
}

TEST_F(num_queues, every_queue_serves_verified_io)
{
	struct vblk_buf buf;
	unsigned int q;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, REQ_LEN, VBLK_PAGE_SIZE, &buf));
	for (q = 0; q < self->n; q++) {
		vblk_pattern_fill(buf.hva, REQ_LEN, 1000 + q);
		ASSERT_EQ(0, vblk_write(&self->dev.queues[q], q * (REQ_LEN / 512), &buf))
			TH_LOG("queue %u", q);
	}
	for (q = 0; q < self->n; q++) {
		/* Read back on another queue than the one that wrote. */
		memset(buf.hva, 0, REQ_LEN);
		ASSERT_EQ(0, vblk_read(&self->dev.queues[(q + 1) % self->n],
				       q * (REQ_LEN / 512), &buf));
		ASSERT_EQ(-1, vblk_pattern_check(buf.hva, REQ_LEN, 1000 + q))
			TH_LOG("sectors of queue %u", q);
	}
}

TEST_F(num_queues, a_queue_past_the_last_does_not_exist)
{
	struct vhost_vring_state s = { .index = self->n, .num = 256 };

	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_SET_VRING_NUM, &s));
	EXPECT_EQ(ENOBUFS, errno);
}

TEST_F(num_queues, the_count_is_fixed_once_owned)
{
	unsigned int n = 2;

	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_NUM_QUEUES, &n));
	EXPECT_EQ(EBUSY, errno);
	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_RESET_OWNER));
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_NUM_QUEUES, &n));
	EXPECT_EQ(EBUSY, errno);
}

FIXTURE(unowned) {
	int fd;
};

FIXTURE_SETUP(unowned)
{
	self->fd = open(VBLK_DEV_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(unowned)
{
	close(self->fd);
}

TEST_F(unowned, zero_queues_and_more_than_the_most_are_refused)
{
	unsigned int n;

	n = 0;
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_BLK_SET_NUM_QUEUES, &n));
	EXPECT_EQ(EINVAL, errno);
	n = VHOST_BLK_MAX_QUEUES + 1;
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_BLK_SET_NUM_QUEUES, &n));
	EXPECT_EQ(EINVAL, errno);
	n = ~0U;
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_BLK_SET_NUM_QUEUES, &n));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_BLK_SET_NUM_QUEUES, (void *)8));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(unowned, the_count_may_change_until_the_owner_comes)
{
	struct vhost_vring_state s = { .num = 256 };
	unsigned int n;

	n = VHOST_BLK_MAX_QUEUES;
	ASSERT_EQ(0, ioctl(self->fd, VHOST_BLK_SET_NUM_QUEUES, &n));
	n = 3;
	ASSERT_EQ(0, ioctl(self->fd, VHOST_BLK_SET_NUM_QUEUES, &n));
	ASSERT_EQ(0, ioctl(self->fd, VHOST_SET_OWNER));
	s.index = 2;
	EXPECT_EQ(0, ioctl(self->fd, VHOST_SET_VRING_NUM, &s));
	s.index = 3;
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_SET_VRING_NUM, &s));
	EXPECT_EQ(ENOBUFS, errno);
}

TEST_F(unowned, ioctls_that_need_the_queues_fail_eperm_before_the_owner)
{
	struct vhost_vring_state s = { .index = 0, .num = 256 };
	uint64_t features = 0;

	EXPECT_EQ(-1, ioctl(self->fd, VHOST_SET_VRING_NUM, &s));
	EXPECT_EQ(EPERM, errno);
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_SET_FEATURES, &features));
	EXPECT_EQ(EPERM, errno);
	/* What needs no owner still answers. */
	EXPECT_EQ(0, ioctl(self->fd, VHOST_GET_FEATURES, &features));
	EXPECT_NE(0ULL, features & (1ULL << VIRTIO_F_VERSION_1));
}

/* memory.current of cgroup @dir, in bytes; 0 when unreadable. */
static uint64_t cgroup_memory(const char *dir)
{
	unsigned long long v = 0;
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/memory.current", dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/* What NDEVS owned devices of @n queues add to the cgroup @dir we are in. */
static uint64_t devices_memory(struct __test_metadata *_metadata,
			       const char *dir, unsigned int n)
{
	uint64_t before, after;
	int fds[NDEVS];
	unsigned int i;

	before = cgroup_memory(dir);
	for (i = 0; i < NDEVS; i++) {
		fds[i] = open(VBLK_DEV_PATH, O_RDWR | O_CLOEXEC);
		ASSERT_LE(0, fds[i]);
		ASSERT_EQ(0, ioctl(fds[i], VHOST_BLK_SET_NUM_QUEUES, &n));
		ASSERT_EQ(0, ioctl(fds[i], VHOST_SET_OWNER));
	}
	after = cgroup_memory(dir);
	for (i = 0; i < NDEVS; i++)
		close(fds[i]);
	return after > before ? after - before : 0;
}

/*
 * The queues are allocated for the count asked for, when the owner comes,
 * and charged to its memory cgroup: a queue holds at least the vhost
 * core's 16 KiB iovec array.
 */
TEST(a_device_costs_memory_for_the_queues_it_has)
{
	uint64_t one, max;
	char dir[64], path[96];

	vblk_write_file(CGROUP_ROOT "/cgroup.subtree_control", "+memory");
	snprintf(dir, sizeof(dir), CGROUP_ROOT "/vblk-queues-%d", getpid());
	ASSERT_EQ(0, mkdir(dir, 0755));
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	ASSERT_EQ(0, vblk_write_file(path, "0"));

	one = devices_memory(_metadata, dir, 1);
	max = devices_memory(_metadata, dir, VHOST_BLK_MAX_QUEUES);

	vblk_write_file(CGROUP_ROOT "/cgroup.procs", "0");
	rmdir(dir);
	EXPECT_LE((uint64_t)NDEVS * VHOST_BLK_MAX_QUEUES * 16 * 1024, max)
		TH_LOG("%d devices of %d queues: %llu bytes", NDEVS,
		       VHOST_BLK_MAX_QUEUES, (unsigned long long)max);
	EXPECT_GT(max / 8, one)
		TH_LOG("%d devices of one queue: %llu bytes, of %d: %llu", NDEVS,
		       (unsigned long long)one, VHOST_BLK_MAX_QUEUES,
		       (unsigned long long)max);
}

TEST_HARNESS_MAIN
