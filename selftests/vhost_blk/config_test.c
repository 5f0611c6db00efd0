// SPDX-License-Identifier: GPL-2.0
/*
 * What a vhost-blk device tells the driver about its backend: the config
 * space (VHOST_BLK_GET_CONFIG) against the block device's queue limits in
 * sysfs, the features VHOST_GET_FEATURES offers with a backend, and
 * read-only devices, whichever way they are made read-only.
 *
 * Needs root, the vhost_blk module loaded, null_blk, brd and loop.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define KiB		1024UL
#define MiB		(1024UL * 1024)

#define BIT(n)		(1ULL << (n))

/* Offered whatever the backend, once one is attached. */
#define DEVICE_FEATURES	(BIT(VIRTIO_BLK_F_SIZE_MAX) | BIT(VIRTIO_BLK_F_SEG_MAX) | \
			 BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_TOPOLOGY) | \
			 BIT(VIRTIO_BLK_F_FLUSH) | BIT(VIRTIO_BLK_F_MQ))
#define TRANSPORT_FEATURES (BIT(VIRTIO_F_VERSION_1) | \
			    BIT(VIRTIO_RING_F_INDIRECT_DESC) | \
			    BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VHOST_F_LOG_ALL))

/* A queue limit of the backend, from /sys/block/<name>/. */
static uint64_t limit(struct __test_metadata *_metadata,
		      const struct vblk_backend *be, const char *attr)
{
	uint64_t v = 0;

	EXPECT_EQ(0, vblk_sysfs_u64(be->name, attr, &v)) TH_LOG("%s", attr);
	return v;
}

static int start(struct vblk_backend *be, enum vblk_backend_kind kind,
		 const struct vblk_backend_opts *bo, struct vblk_dev *dev,
		 int open_flags)
{
	int ret = vblk_backend_create(be, kind, bo);

	if (ret)
		return ret;
	ret = vblk_dev_start(dev, NULL, be->path, open_flags);
	if (ret)
		vblk_backend_destroy(be);
	return ret;
}

/* A device started on a backend of each kind and geometry. */
FIXTURE(config) {
	struct vblk_backend be;
	struct vblk_dev dev;
};

FIXTURE_VARIANT(config) {
	enum vblk_backend_kind kind;
	unsigned int block_size;
	bool discard;
};

FIXTURE_VARIANT_ADD(config, nullb_512) {
	.kind = VBLK_BE_NULLB, .block_size = 512,
};

FIXTURE_VARIANT_ADD(config, nullb_4096_discard) {
	.kind = VBLK_BE_NULLB, .block_size = 4096, .discard = true,
};

FIXTURE_VARIANT_ADD(config, brd) {
	.kind = VBLK_BE_BRD,
};

FIXTURE_VARIANT_ADD(config, loop_512) {
	.kind = VBLK_BE_LOOP, .block_size = 512,
};

FIXTURE_VARIANT_ADD(config, loop_4096) {
	.kind = VBLK_BE_LOOP, .block_size = 4096,
};

FIXTURE_SETUP(config)
{
	struct vblk_backend_opts bo = {
		.size = 48 * MiB, .block_size = variant->block_size,
		.discard = variant->discard,
	};
	int ret = start(&self->be, variant->kind, &bo, &self->dev, O_RDWR);

	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(config)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

TEST_F(config, capacity_and_block_sizes_match_the_backend)
{
	uint64_t lbs = limit(_metadata, &self->be, "queue/logical_block_size");
	uint64_t pbs = limit(_metadata, &self->be, "queue/physical_block_size");
	struct vhost_blk_config cfg;

	ASSERT_EQ(0, vblk_dev_get_config(&self->dev, &cfg));
	EXPECT_EQ(limit(_metadata, &self->be, "size"), le64toh(cfg.capacity));
	EXPECT_EQ(48 * MiB / VBLK_SECTOR_SIZE, le64toh(cfg.capacity));
	EXPECT_EQ(lbs, le32toh(cfg.blk_size));
	if (variant->block_size)
		EXPECT_EQ(variant->block_size, le32toh(cfg.blk_size));
	EXPECT_EQ(pbs, lbs << cfg.physical_block_exp);
}

TEST_F(config, topology_matches_the_backend_in_logical_blocks)
{
	uint64_t lbs = limit(_metadata, &self->be, "queue/logical_block_size");
	struct vhost_blk_config cfg;

	ASSERT_EQ(0, vblk_dev_get_config(&self->dev, &cfg));
	EXPECT_EQ(limit(_metadata, &self->be, "alignment_offset") / lbs,
		  cfg.alignment_offset);
	EXPECT_EQ(limit(_metadata, &self->be, "queue/minimum_io_size") / lbs,
		  le16toh(cfg.min_io_size));
	EXPECT_EQ(limit(_metadata, &self->be, "queue/optimal_io_size") / lbs,
		  le32toh(cfg.opt_io_size));
}

TEST_F(config, seg_max_size_max_and_the_default_num_queues_are_the_uapi_constants)
{
	struct vhost_blk_config cfg;

	ASSERT_EQ(0, vblk_dev_get_config(&self->dev, &cfg));
	EXPECT_EQ((uint32_t)VHOST_BLK_SEG_MAX, le32toh(cfg.seg_max));
	EXPECT_EQ((uint32_t)VHOST_BLK_SIZE_MAX, le32toh(cfg.size_max));
	EXPECT_EQ((uint16_t)VHOST_BLK_DEFAULT_QUEUES, le16toh(cfg.num_queues));
	/* Legacy fields are not used. */
	EXPECT_EQ(0U, cfg.geometry_cylinders | cfg.geometry_heads |
		      cfg.geometry_sectors);
	EXPECT_EQ(0U, cfg.wce);
}

TEST_F(config, discard_limits_match_the_backend)
{
	uint64_t max = limit(_metadata, &self->be, "queue/discard_max_bytes");
	uint64_t gran = limit(_metadata, &self->be, "queue/discard_granularity");
	struct vhost_blk_config cfg;

	ASSERT_EQ(0, vblk_dev_get_config(&self->dev, &cfg));
	EXPECT_EQ(max / VBLK_SECTOR_SIZE, le32toh(cfg.max_discard_sectors));
	if (!max)
		return;
	EXPECT_EQ(gran / VBLK_SECTOR_SIZE, le32toh(cfg.discard_sector_alignment));
	EXPECT_EQ((uint32_t)VHOST_BLK_MAX_RANGE_SEGS, le32toh(cfg.max_discard_seg));
}

TEST_F(config, write_zeroes_limits_are_the_backends_own_or_none)
{
	uint64_t max = limit(_metadata, &self->be, "queue/write_zeroes_max_bytes");
	struct vhost_blk_config cfg;
	uint64_t features = 0;

	ASSERT_EQ(0, vblk_dev_get_config(&self->dev, &cfg));
	ASSERT_EQ(0, vblk_dev_get_features(&self->dev, &features));
	/* No emulation by writing zero pages: offered only where the device zeroes. */
	EXPECT_EQ(!!max, !!(features & BIT(VIRTIO_BLK_F_WRITE_ZEROES)));
	/* In whole logical blocks. */
	EXPECT_EQ(max / VBLK_SECTOR_SIZE & ~(le32toh(cfg.blk_size) / VBLK_SECTOR_SIZE - 1),
		  le32toh(cfg.max_write_zeroes_sectors));
	EXPECT_EQ(max ? (uint32_t)VHOST_BLK_MAX_RANGE_SEGS : 0U,
		  le32toh(cfg.max_write_zeroes_seg));
	EXPECT_EQ(max ? 1U : 0U, cfg.write_zeroes_may_unmap);
}

TEST_F(config, features_with_a_backend_add_the_device_features)
{
	uint64_t discard = limit(_metadata, &self->be, "queue/discard_max_bytes");
	uint64_t features = 0;

	ASSERT_EQ(0, vblk_dev_get_features(&self->dev, &features));
	EXPECT_EQ(TRANSPORT_FEATURES, features & TRANSPORT_FEATURES);
	EXPECT_EQ(DEVICE_FEATURES, features & DEVICE_FEATURES);
	EXPECT_EQ(!!discard, !!(features & BIT(VIRTIO_BLK_F_DISCARD)));
	EXPECT_EQ(0ULL, features & BIT(VIRTIO_BLK_F_RO));
	/* Nothing the 6.1 vhost core cannot do. */
	EXPECT_EQ(0ULL, features & BIT(VIRTIO_F_RING_PACKED));
	EXPECT_EQ(0ULL, features & BIT(VIRTIO_F_ACCESS_PLATFORM));
}

TEST_F(config, get_config_to_a_bad_address_fails_efault)
{
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_GET_CONFIG, (void *)8));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(config, config_survives_a_backend_restart)
{
	struct vhost_blk_config before, after;
	int fd;

	ASSERT_EQ(0, vblk_dev_get_config(&self->dev, &before));
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	fd = vblk_backend_open(&self->be, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, fd));
	close(fd);
	ASSERT_EQ(0, vblk_dev_get_config(&self->dev, &after));
	EXPECT_EQ(0, memcmp(&before, &after, sizeof(before)));
}

/* An owned, set-up device without backend. */
FIXTURE(unattached) {
	struct vblk_backend be;
	struct vblk_dev dev;
};

FIXTURE_SETUP(unattached)
{
	int ret = vblk_dev_setup(&self->dev, NULL);

	ASSERT_EQ(0, ret) TH_LOG("set up device: %s", strerror(-ret));
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, NULL);
	if (ret)
		vblk_dev_close(&self->dev);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(unattached)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

TEST_F(unattached, get_config_without_a_backend_fails_enodev)
{
	struct vhost_blk_config cfg;

	EXPECT_EQ(-ENODEV, vblk_dev_get_config(&self->dev, &cfg));
}

TEST_F(unattached, get_config_after_the_backend_is_stopped_fails_enodev)
{
	struct vhost_blk_config cfg;
	int fd = vblk_backend_open(&self->be, O_RDWR);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, fd));
	close(fd);
	ASSERT_EQ(0, vblk_dev_get_config(&self->dev, &cfg));
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	EXPECT_EQ(-ENODEV, vblk_dev_get_config(&self->dev, &cfg));
}

TEST_F(unattached, features_without_a_backend_offer_neither_ro_nor_discard)
{
	uint64_t features = 0;

	ASSERT_EQ(0, vblk_dev_get_features(&self->dev, &features));
	EXPECT_EQ(TRANSPORT_FEATURES, features & TRANSPORT_FEATURES);
	EXPECT_EQ(0ULL, features & (BIT(VIRTIO_BLK_F_RO) |
				    BIT(VIRTIO_BLK_F_DISCARD) |
				    BIT(VIRTIO_BLK_F_SECURE_ERASE)));
}

TEST_F(unattached, set_read_only_rejects_values_other_than_0_and_1)
{
	EXPECT_EQ(-EINVAL, vblk_dev_set_read_only(&self->dev, 2));
	EXPECT_EQ(-EINVAL, vblk_dev_set_read_only(&self->dev, ~0U));
	EXPECT_EQ(0, vblk_dev_set_read_only(&self->dev, 1));
	EXPECT_EQ(0, vblk_dev_set_read_only(&self->dev, 0));
}

TEST_F(unattached, set_read_only_from_a_bad_address_fails_efault)
{
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_READ_ONLY, (void *)8));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(unattached, forced_read_only_is_offered_as_ro_and_can_be_lifted)
{
	uint64_t features = 0;
	struct vblk_buf buf;
	int fd;

	ASSERT_EQ(0, vblk_dev_set_read_only(&self->dev, 1));
	ASSERT_EQ(0, vblk_dev_get_features(&self->dev, &features));
	EXPECT_NE(0ULL, features & BIT(VIRTIO_BLK_F_RO));

	fd = vblk_backend_open(&self->be, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, fd));
	close(fd);
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 4 * KiB, VBLK_PAGE_SIZE, &buf));
	vblk_pattern_fill(buf.hva, buf.len, 1);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_write(&self->dev.queues[0], 0, &buf));

	/* Lifted while running: writes work again. */
	ASSERT_EQ(0, vblk_dev_set_read_only(&self->dev, 0));
	ASSERT_EQ(0, vblk_dev_get_features(&self->dev, &features));
	EXPECT_EQ(0ULL, features & BIT(VIRTIO_BLK_F_RO));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(&self->dev.queues[0], 0, &buf));
	memset(buf.hva, 0, buf.len);
	ASSERT_EQ(0, vblk_backend_pread(&self->be, buf.hva, buf.len, 0));
	EXPECT_EQ(-1, vblk_pattern_check(buf.hva, buf.len, 1));
}

/*
 * A read-only device over a null_blk that holds a pattern, made read-only
 * each way the ABI allows, before or after it started.
 */
enum ro_how {
	RO_OPENED_RDONLY,	/* backend fd opened O_RDONLY */
	RO_SETRO,		/* blockdev --setro, then start */
	RO_SETRO_RUNNING,	/* start, then blockdev --setro */
	RO_IOCTL,		/* VHOST_BLK_SET_READ_ONLY 1, then start */
	RO_IOCTL_RUNNING,	/* start, then VHOST_BLK_SET_READ_ONLY 1 */
};

#define RO_DATA_LEN	(256 * KiB)
#define RO_SEED		0x5eed

FIXTURE(read_only) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_queue *q;
	struct vblk_buf buf;
};

FIXTURE_VARIANT(read_only) {
	enum ro_how how;
};

FIXTURE_VARIANT_ADD(read_only, backend_opened_read_only) {
	.how = RO_OPENED_RDONLY,
};

FIXTURE_VARIANT_ADD(read_only, blockdev_setro_before_start) {
	.how = RO_SETRO,
};

FIXTURE_VARIANT_ADD(read_only, blockdev_setro_while_running) {
	.how = RO_SETRO_RUNNING,
};

FIXTURE_VARIANT_ADD(read_only, set_read_only_before_start) {
	.how = RO_IOCTL,
};

FIXTURE_VARIANT_ADD(read_only, set_read_only_while_running) {
	.how = RO_IOCTL_RUNNING,
};

static int create_read_only(struct vblk_backend *be, struct vblk_dev *dev,
			   enum ro_how how)
{
	struct vblk_backend_opts bo = { .size = 16 * MiB, .discard = true };
	uint8_t *seed;
	int ret, fd;

	ret = vblk_backend_create(be, VBLK_BE_NULLB, &bo);
	if (ret)
		return ret;
	seed = malloc(RO_DATA_LEN);
	if (!seed) {
		ret = -ENOMEM;
		goto fail_be;
	}
	vblk_pattern_fill(seed, RO_DATA_LEN, RO_SEED);
	ret = vblk_backend_pwrite(be, seed, RO_DATA_LEN, 0);
	free(seed);
	if (!ret && how == RO_SETRO)
		ret = vblk_backend_set_ro(be, true);
	if (!ret)
		ret = vblk_dev_setup(dev, NULL);
	if (ret)
		goto fail_be;
	if (how == RO_IOCTL)
		ret = vblk_dev_set_read_only(dev, 1);
	if (ret)
		goto fail_dev;
	fd = vblk_backend_open(be, how == RO_OPENED_RDONLY ? O_RDONLY : O_RDWR);
	if (fd < 0) {
		ret = fd;
		goto fail_dev;
	}
	ret = vblk_dev_set_backend(dev, fd);
	close(fd);
	if (!ret && how == RO_SETRO_RUNNING)
		ret = vblk_backend_set_ro(be, true);
	if (!ret && how == RO_IOCTL_RUNNING)
		ret = vblk_dev_set_read_only(dev, 1);
	if (!ret)
		return 0;
fail_dev:
	vblk_dev_close(dev);
fail_be:
	vblk_backend_set_ro(be, false);
	vblk_backend_destroy(be);
	return ret;
}

FIXTURE_SETUP(read_only)
{
	int ret = create_read_only(&self->be, &self->dev, variant->how);

	ASSERT_EQ(0, ret) TH_LOG("set up: %s", strerror(-ret));
	self->q = &self->dev.queues[0];
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, RO_DATA_LEN, VBLK_PAGE_SIZE,
				    &self->buf));
}

FIXTURE_TEARDOWN(read_only)
{
	vblk_dev_close(&self->dev);
	vblk_backend_set_ro(&self->be, false);
	vblk_backend_destroy(&self->be);
}

/* The block device still holds the pattern it was seeded with. */
static void check_unchanged(struct __test_metadata *_metadata,
			    const struct vblk_backend *be)
{
	uint8_t *data = malloc(RO_DATA_LEN);
	ssize_t bad;

	ASSERT_NE(NULL, data);
	ASSERT_EQ(0, vblk_backend_pread(be, data, RO_DATA_LEN, 0));
	bad = vblk_pattern_check(data, RO_DATA_LEN, RO_SEED);
	free(data);
	ASSERT_EQ(-1, bad) TH_LOG("device changed at byte %zd", bad);
}

TEST_F(read_only, features_offer_ro)
{
	uint64_t features = 0;

	ASSERT_EQ(0, vblk_dev_get_features(&self->dev, &features));
	EXPECT_NE(0ULL, features & BIT(VIRTIO_BLK_F_RO));
}

TEST_F(read_only, out_fails_ioerr_and_the_device_is_unchanged)
{
	struct vblk_buf part = vblk_buf_slice(&self->buf, 0, 8 * KiB);
	struct vblk_req req;

	memset(self->buf.hva, 0x33, self->buf.len);
	vblk_req_init(&req, VIRTIO_BLK_T_OUT, 0, &self->buf, 1);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_exec(self->q, &req));
	EXPECT_EQ(1U, req.used_len);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_write(self->q, 64, &part));
	check_unchanged(_metadata, &self->be);
}

TEST_F(read_only, discard_and_write_zeroes_fail_ioerr_and_the_device_is_unchanged)
{
	ASSERT_EQ(VIRTIO_BLK_S_IOERR,
		  vblk_range(self->q, VIRTIO_BLK_T_DISCARD, 0, 128, 0));
	ASSERT_EQ(VIRTIO_BLK_S_IOERR,
		  vblk_range(self->q, VIRTIO_BLK_T_WRITE_ZEROES, 128, 128, 0));
	ASSERT_EQ(VIRTIO_BLK_S_IOERR,
		  vblk_range(self->q, VIRTIO_BLK_T_WRITE_ZEROES, 256, 128,
			     VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP));
	check_unchanged(_metadata, &self->be);
}

TEST_F(read_only, in_flush_and_get_id_still_succeed)
{
	struct vblk_buf id = vblk_buf_slice(&self->buf, 0, VIRTIO_BLK_ID_BYTES);
	struct vblk_req req;

	vblk_req_init(&req, VIRTIO_BLK_T_IN, 0, &self->buf, 1);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_exec(self->q, &req));
	EXPECT_EQ(RO_DATA_LEN + 1, req.used_len);
	ASSERT_EQ(-1, vblk_pattern_check(self->buf.hva, RO_DATA_LEN, RO_SEED));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_flush(self->q));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_get_id(self->q, &id));
	check_unchanged(_metadata, &self->be);
}

TEST_HARNESS_MAIN
