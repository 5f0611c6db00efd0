// SPDX-License-Identifier: GPL-2.0
/*
 * The vhost_blk module and its character device: loading, unloading, the
 * device node, and the ioctls every device answers before it is set up.
 *
 * Needs root and VHOST_BLK_KO, the path of the vhost_blk.ko under test; the
 * vhost core must be loaded. The module is loaded when a test ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/vhost_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define DEV_PATH	"/dev/vhost-blk"
#define MODULE_NAME	"vhost_blk"
#define MISC_MAJOR	10U

/* What a device offers before it has a backend. */
#define OFFERED_FEATURES	((1ULL << VIRTIO_F_VERSION_1) | \
				 (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | \
				 (1ULL << VIRTIO_RING_F_EVENT_IDX) | \
				 (1ULL << VHOST_F_LOG_ALL) | \
				 (1ULL << VIRTIO_BLK_F_SIZE_MAX) | \
				 (1ULL << VIRTIO_BLK_F_SEG_MAX) | \
				 (1ULL << VIRTIO_BLK_F_BLK_SIZE) | \
				 (1ULL << VIRTIO_BLK_F_FLUSH) | \
				 (1ULL << VIRTIO_BLK_F_TOPOLOGY) | \
				 (1ULL << VIRTIO_BLK_F_MQ))

static bool module_loaded(void)
{
	return access("/sys/module/" MODULE_NAME, F_OK) == 0;
}

static int load_module(void)
{
	const char *path = getenv("VHOST_BLK_KO");
	int fd, ret;

	if (!path) {
		errno = EINVAL;
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = syscall(SYS_finit_module, fd, "", 0);
	close(fd);
	return ret;
}

static int unload_module(void)
{
	return syscall(SYS_delete_module, MODULE_NAME, O_NONBLOCK);
}

FIXTURE(module) {
};

FIXTURE_SETUP(module)
{
	if (!module_loaded())
		ASSERT_EQ(0, load_module()) TH_LOG("load %s: %m", getenv("VHOST_BLK_KO"));
}

FIXTURE_TEARDOWN(module)
{
	if (!module_loaded())
		EXPECT_EQ(0, load_module());
}

TEST_F(module, unload_removes_device_and_reload_restores_it)
{
	ASSERT_EQ(0, unload_module());
	EXPECT_FALSE(module_loaded());
	EXPECT_EQ(-1, access(DEV_PATH, F_OK));
	EXPECT_EQ(ENOENT, errno);

	ASSERT_EQ(0, load_module());
	EXPECT_TRUE(module_loaded());
	EXPECT_EQ(0, access(DEV_PATH, F_OK));
}

TEST_F(module, load_twice_fails_eexist)
{
	EXPECT_EQ(-1, load_module());
	EXPECT_EQ(EEXIST, errno);
	EXPECT_TRUE(module_loaded());
}

TEST_F(module, device_node_is_root_only_misc_char_device)
{
	struct stat st;

	ASSERT_EQ(0, stat(DEV_PATH, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(0600U, st.st_mode & 07777);
	EXPECT_EQ(0U, st.st_uid);
	EXPECT_EQ(0U, st.st_gid);
	EXPECT_EQ(MISC_MAJOR, major(st.st_rdev));
}

TEST_F(module, unload_while_open_fails_busy)
{
	int fd = open(DEV_PATH, O_RDWR);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, unload_module());
	EXPECT_EQ(EWOULDBLOCK, errno);
	EXPECT_TRUE(module_loaded());
	EXPECT_EQ(0, close(fd));

	/* The last close released the module: now it unloads. */
	EXPECT_EQ(0, unload_module());
}

TEST_F(module, many_opens_are_independent_and_all_released)
{
	int fds[32];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fds); i++) {
		fds[i] = open(DEV_PATH, O_RDWR);
		ASSERT_LE(0, fds[i]) TH_LOG("open #%zu: %m", i);
	}
	for (i = 0; i < ARRAY_SIZE(fds); i++)
		EXPECT_EQ(0, close(fds[i]));
	EXPECT_EQ(0, unload_module());
}

/* One open /dev/vhost-blk, not yet owned by anyone. */
FIXTURE(device) {
	int fd;
};

FIXTURE_SETUP(device)
{
	if (!module_loaded())
		ASSERT_EQ(0, load_module());
	self->fd = open(DEV_PATH, O_RDWR);
	ASSERT_LE(0, self->fd) TH_LOG("open " DEV_PATH ": %m");
}

FIXTURE_TEARDOWN(device)
{
	EXPECT_EQ(0, close(self->fd));
}

TEST_F(device, get_features_without_backend_offers_the_fixed_set)
{
	uint64_t features = 0;

	ASSERT_EQ(0, ioctl(self->fd, VHOST_GET_FEATURES, &features));
	EXPECT_EQ(OFFERED_FEATURES, features);
}

TEST_F(device, get_features_to_bad_address_fails_efault)
{
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_GET_FEATURES, (void *)8));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(device, set_features_accepts_offered_subset)
{
	uint64_t features = (1ULL << VIRTIO_F_VERSION_1) |
			    (1ULL << VIRTIO_RING_F_EVENT_IDX);

	ASSERT_EQ(0, ioctl(self->fd, VHOST_SET_OWNER));
	EXPECT_EQ(0, ioctl(self->fd, VHOST_SET_FEATURES, &features));
}

TEST_F(device, set_features_before_set_owner_fails_eperm)
{
	uint64_t features = 1ULL << VIRTIO_F_VERSION_1;

	EXPECT_EQ(-1, ioctl(self->fd, VHOST_SET_FEATURES, &features));
	EXPECT_EQ(EPERM, errno);
}

TEST_F(device, set_features_rejects_feature_not_offered)
{
	uint64_t features = (1ULL << VIRTIO_F_VERSION_1) |
			    (1ULL << VIRTIO_F_RING_PACKED);

	EXPECT_EQ(-1, ioctl(self->fd, VHOST_SET_FEATURES, &features));
	EXPECT_EQ(EOPNOTSUPP, errno);
}

TEST_F(device, backend_features_are_none)
{
	uint64_t features = ~0ULL;

	ASSERT_EQ(0, ioctl(self->fd, VHOST_GET_BACKEND_FEATURES, &features));
	EXPECT_EQ(0ULL, features);
	features = 1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2;
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_SET_BACKEND_FEATURES, &features));
	EXPECT_EQ(EOPNOTSUPP, errno);
}

TEST_F(device, abi_version_matches_header)
{
	uint32_t version = 0;

	ASSERT_EQ(0, ioctl(self->fd, VHOST_BLK_GET_ABI_VERSION, &version));
	EXPECT_EQ((uint32_t)VHOST_BLK_ABI_VERSION, version);
}

TEST_F(device, unknown_vhost_ioctl_fails_enotty)
{
	EXPECT_EQ(-1, ioctl(self->fd, _IO(VHOST_VIRTIO, 0xFD), 0));
	EXPECT_EQ(ENOTTY, errno);
	/* Also the number of another vhost device's ioctl. */
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_NET_SET_BACKEND, NULL));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_F(device, foreign_ioctl_fails_enotty)
{
	EXPECT_EQ(-1, ioctl(self->fd, _IOR('x', 1, int), NULL));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_F(device, second_owner_fails_ebusy)
{
	ASSERT_EQ(0, ioctl(self->fd, VHOST_SET_OWNER));
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_SET_OWNER));
	EXPECT_EQ(EBUSY, errno);
}

TEST_F(device, reset_owner_by_non_owner_fails_eperm)
{
	EXPECT_EQ(-1, ioctl(self->fd, VHOST_RESET_OWNER));
	EXPECT_EQ(EPERM, errno);
}

TEST_F(device, reset_owner_allows_a_new_owner)
{
	ASSERT_EQ(0, ioctl(self->fd, VHOST_SET_OWNER));
	ASSERT_EQ(0, ioctl(self->fd, VHOST_RESET_OWNER));
	EXPECT_EQ(0, ioctl(self->fd, VHOST_SET_OWNER));
}

/*
 * The module serves the vhost core's worker ioctls where the core has them
 * (Linux 6.5, found by kernel/Kbuild in the headers) and calls them
 * unknown elsewhere.
 */
TEST_F(device, worker_ioctls_exist_from_linux_6_5_and_are_unknown_before)
{
	struct vhost_vring_worker vw = { .index = 0 };
	struct vhost_worker_state w = { 0 };
	unsigned int first;

	ASSERT_EQ(0, ioctl(self->fd, VHOST_SET_OWNER));
	if (!vblk_kernel_at_least(6, 5)) {
		EXPECT_EQ(-1, ioctl(self->fd, VHOST_NEW_WORKER, &w));
		EXPECT_EQ(ENOTTY, errno);
		EXPECT_EQ(-1, ioctl(self->fd, VHOST_GET_VRING_WORKER, &vw));
		EXPECT_EQ(ENOTTY, errno);
		return;
	}
	ASSERT_EQ(0, ioctl(self->fd, VHOST_GET_VRING_WORKER, &vw));
	first = vw.worker_id;
	ASSERT_EQ(0, ioctl(self->fd, VHOST_NEW_WORKER, &w));
	EXPECT_NE(first, w.worker_id);
	vw.worker_id = w.worker_id;
	ASSERT_EQ(0, ioctl(self->fd, VHOST_ATTACH_VRING_WORKER, &vw));
	vw.worker_id = first;
	ASSERT_EQ(0, ioctl(self->fd, VHOST_ATTACH_VRING_WORKER, &vw));
	EXPECT_EQ(0, ioctl(self->fd, VHOST_FREE_WORKER, &w));
}

TEST_F(device, worker_ioctls_before_set_owner_fail_eperm)
{
	struct vhost_worker_state w = { 0 };

	EXPECT_EQ(-1, ioctl(self->fd, VHOST_NEW_WORKER, &w));
	EXPECT_EQ(vblk_kernel_at_least(6, 5) ? EPERM : ENOTTY, errno);
}

/* The numbers frontends are built with; they must never change. */
TEST(ioctl_numbers_are_the_published_ones)
{
	EXPECT_EQ(0x4004aff3U, VHOST_BLK_SET_NUM_QUEUES);
	EXPECT_EQ(0x4008afffU, VHOST_BLK_SET_BACKEND);
	EXPECT_EQ(0x4014affeU, VHOST_BLK_SET_SERIAL);
	EXPECT_EQ(0x8004aff0U, VHOST_BLK_GET_ABI_VERSION);
	EXPECT_EQ(0x8048aff1U, VHOST_BLK_GET_CONFIG);
	EXPECT_EQ(0x4004aff2U, VHOST_BLK_SET_READ_ONLY);
}

TEST_HARNESS_MAIN
