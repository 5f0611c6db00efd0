// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk: the block device behind a device.
 *
 * The backend is a block device file the owner opened; holding the file
 * keeps the device open. Its queue limits are the device's geometry: the
 * features and the virtio-blk config space come from them, so every frontend
 * shows the guest the same truthful picture.
 */
#include <linux/blkdev.h>
#include <linux/file.h>
#include <linux/log2.h>
#include <linux/slab.h>

#include "vhost_blk.h"

/**
 * vhost_blk_backend_open() - take a block device file as backend
 * @fd: a file descriptor of the calling process
 *
 * The device reads the block device for the guest whatever else it may do,
 * so the file must be open for reading; one open read-only makes a
 * read-only device.
 *
 * Return: the backend, or ERR_PTR(-EBADF) for a bad descriptor or one not
 * open for reading, ERR_PTR(-ENOTBLK) when it is not a block device,
 * ERR_PTR(-ENOMEM).
 */
struct vhost_blk_backend *vhost_blk_backend_open(int fd)
{
	struct vhost_blk_backend *be;
	struct file *file;

	file = fget(fd);
	if (!file)
		return ERR_PTR(-EBADF);
	if (!S_ISBLK(file_inode(file)->i_mode)) {
		be = ERR_PTR(-ENOTBLK);
		goto fail;
	}
	if (!(file->f_mode & FMODE_READ)) {
		be = ERR_PTR(-EBADF);
		goto fail;
	}
	be = kzalloc(sizeof(*be), GFP_KERNEL_ACCOUNT);
	if (!be) {
		be = ERR_PTR(-ENOMEM);
		goto fail;
	}
	be->file = file;
	be->bdev = vhost_blk_file_bdev(file);
	return be;
fail:
	fput(file);
	return be;
}

/**
 * vhost_blk_backend_close() - release a backend no queue uses any more
 * @be: the backend
 */
void vhost_blk_backend_close(struct vhost_blk_backend *be)
{
	fput(be->file);
	kfree(be);
}

/**
 * vhost_blk_backend_read_only() - whether writes must fail
 * @be: the backend
 *
 * Checked per request: ``blockdev --setro`` may change it at any time.
 */
bool vhost_blk_backend_read_only(const struct vhost_blk_backend *be)
{
	return !(be->file->f_mode & FMODE_WRITE) || bdev_read_only(be->bdev);
}

/**
 * vhost_blk_backend_features() - the virtio-blk features this backend adds
 * @be: the backend
 *
 * Return: VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES and
 * VIRTIO_BLK_F_SECURE_ERASE when the block device supports them,
 * VIRTIO_BLK_F_RO when it is read-only.
 */
u64 vhost_blk_backend_features(const struct vhost_blk_backend *be)
{
	u64 features = 0;

	if (bdev_max_discard_sectors(be->bdev))
		features |= BIT_ULL(VIRTIO_BLK_F_DISCARD);
	if (vhost_blk_backend_write_zeroes_sectors(be))
		features |= BIT_ULL(VIRTIO_BLK_F_WRITE_ZEROES);
	if (vhost_blk_backend_secure_erase_sectors(be))
		features |= BIT_ULL(VIRTIO_BLK_F_SECURE_ERASE);
	if (vhost_blk_backend_read_only(be))
		features |= BIT_ULL(VIRTIO_BLK_F_RO);
	return features;
}

/**
 * vhost_blk_backend_write_zeroes_sectors() - largest WRITE_ZEROES segment
 * @be: the backend
 *
 * Whole logical blocks; 0 when the block device cannot zero by itself: the
 * device then offers no WRITE_ZEROES, since nothing may fall back to
 * writing zero pages.
 */
unsigned int vhost_blk_backend_write_zeroes_sectors(const struct vhost_blk_backend *be)
{
	unsigned int lbs_sectors = bdev_logical_block_size(be->bdev) >> SECTOR_SHIFT;

	return bdev_write_zeroes_sectors(be->bdev) & ~(lbs_sectors - 1);
}

/**
 * vhost_blk_backend_secure_erase_sectors() - largest SECURE_ERASE segment
 * @be: the backend
 *
 * Whole logical blocks, and small enough for one bio's 32-bit byte count.
 */
unsigned int vhost_blk_backend_secure_erase_sectors(const struct vhost_blk_backend *be)
{
	unsigned int lbs_sectors = bdev_logical_block_size(be->bdev) >> SECTOR_SHIFT;

	return min(bdev_max_secure_erase_sectors(be->bdev), UINT_MAX >> SECTOR_SHIFT) &
	       ~(lbs_sectors - 1);
}

/**
 * vhost_blk_backend_config() - the virtio-blk config space for a backend
 * @be: the backend
 * @config: filled completely, little endian (VIRTIO_F_VERSION_1)
 *
 * Sizes the spec counts in logical blocks are converted from the queue
 * limits' bytes; the others are in 512-byte sectors whatever the block size.
 */
void vhost_blk_backend_config(const struct vhost_blk_backend *be,
			      struct vhost_blk_config *config)
{
	struct block_device *bdev = be->bdev;
	unsigned int lbs = bdev_logical_block_size(bdev);
	int align = bdev_alignment_offset(bdev);

	memset(config, 0, sizeof(*config));
	config->capacity = cpu_to_le64(bdev_nr_sectors(bdev));
	config->size_max = cpu_to_le32(VHOST_BLK_SIZE_MAX);
	config->seg_max = cpu_to_le32(VHOST_BLK_SEG_MAX);
	config->blk_size = cpu_to_le32(lbs);
	config->physical_block_exp = ilog2(bdev_physical_block_size(bdev) / lbs);
	config->alignment_offset = align > 0 ? align / lbs : 0;
	config->min_io_size = cpu_to_le16(min_t(unsigned int, bdev_io_min(bdev) / lbs, U16_MAX));
	config->opt_io_size = cpu_to_le32(bdev_io_opt(bdev) / lbs);

	config->max_discard_sectors = cpu_to_le32(bdev_max_discard_sectors(bdev));
	config->max_discard_seg = cpu_to_le32(VHOST_BLK_MAX_RANGE_SEGS);
	config->discard_sector_alignment =
		cpu_to_le32(bdev_discard_granularity(bdev) >> SECTOR_SHIFT);

	if (vhost_blk_backend_write_zeroes_sectors(be)) {
		config->max_write_zeroes_sectors =
			cpu_to_le32(vhost_blk_backend_write_zeroes_sectors(be));
		config->max_write_zeroes_seg = cpu_to_le32(VHOST_BLK_MAX_RANGE_SEGS);
		config->write_zeroes_may_unmap = 1;
	}

	config->max_secure_erase_sectors = cpu_to_le32(vhost_blk_backend_secure_erase_sectors(be));
	config->max_secure_erase_seg = cpu_to_le32(VHOST_BLK_MAX_RANGE_SEGS);
	config->secure_erase_sector_alignment =
		cpu_to_le32(bdev_discard_granularity(bdev) >> SECTOR_SHIFT);
}
