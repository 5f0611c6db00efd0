/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vhost-blk: in-kernel virtio-blk device on the vhost core.
 *
 * /dev/vhost-blk takes the standard vhost ioctls of <linux/vhost.h>
 * (features, owner, memory table, vrings, dirty log, backend features) and
 * the vhost-blk ioctls below. Documentation/abi.rst describes each with its
 * errors.
 *
 * Numbers: type VHOST_VIRTIO (0xAF). SET_BACKEND (0xFF) and SET_SERIAL (0xFE)
 * keep the numbers of earlier public vhost-blk work so that existing
 * frontends can drive this module; 0xF0 and up are otherwise unused upstream.
 */
#ifndef _UAPI_LINUX_VHOST_BLK_H
#define _UAPI_LINUX_VHOST_BLK_H

#include <linux/types.h>
#include <linux/vhost.h>
#include <linux/virtio_blk.h>

/*
 * Version of this ABI. It grows by one whenever an ioctl or a behaviour
 * userspace can rely on is added; existing ioctls keep their meaning.
 *
 * 1: the ioctls of this header, requests IN, OUT, FLUSH, GET_ID, DISCARD,
 *    WRITE_ZEROES and SECURE_ERASE.
 * 2: VHOST_BLK_SET_NUM_QUEUES, up to 64 queues.
 */
#define VHOST_BLK_ABI_VERSION		2

/* Largest number of virtqueues a device serves (VHOST_BLK_SET_NUM_QUEUES). */
#define VHOST_BLK_MAX_QUEUES		64
/* Virtqueues of a device whose owner set no number (every ABI 1 device). */
#define VHOST_BLK_DEFAULT_QUEUES	16
/* Data segments per request (config seg_max). */
#define VHOST_BLK_SEG_MAX		254
/* Bytes per data segment (config size_max). */
#define VHOST_BLK_SIZE_MAX		0x100000
/* Segments per DISCARD, WRITE_ZEROES or SECURE_ERASE request. */
#define VHOST_BLK_MAX_RANGE_SEGS	32

/* Reads the ABI version the loaded module implements. */
#define VHOST_BLK_GET_ABI_VERSION	_IOR(VHOST_VIRTIO, 0xF0, __u32)

/*
 * The virtio-blk config space as VHOST_BLK_GET_CONFIG fills it: the layout
 * of struct virtio_blk_config up to secure_erase_sector_alignment, little
 * endian (as for VIRTIO_F_VERSION_1), exactly VHOST_BLK_CONFIG_SIZE bytes.
 * Its own type, because struct virtio_blk_config's size depends on the
 * headers a program is built with: 60 bytes before Linux 6.0, 72 in 6.0 to
 * 6.2, 96 from 6.3 on (zoned fields). Users check its size and offsets at
 * build time (static_assert, BUILD_BUG_ON).
 */
struct vhost_blk_config {
	__le64 capacity;			/* in 512-byte sectors */
	__le32 size_max;
	__le32 seg_max;
	__le16 geometry_cylinders;
	__u8 geometry_heads;
	__u8 geometry_sectors;
	__le32 blk_size;
	__u8 physical_block_exp;
	__u8 alignment_offset;
	__le16 min_io_size;
	__le32 opt_io_size;
	__u8 wce;
	__u8 unused;
	__le16 num_queues;
	__le32 max_discard_sectors;
	__le32 max_discard_seg;
	__le32 discard_sector_alignment;
	__le32 max_write_zeroes_sectors;
	__le32 max_write_zeroes_seg;
	__u8 write_zeroes_may_unmap;
	__u8 unused1[3];
	__le32 max_secure_erase_sectors;
	__le32 max_secure_erase_seg;
	__le32 secure_erase_sector_alignment;
};

#define VHOST_BLK_CONFIG_SIZE		72

/*
 * Fills a struct vhost_blk_config from the backend's queue limits. The size
 * is fixed, so that the ioctl number does not change when the virtio-blk
 * config grows. Needs a backend.
 */
#define VHOST_BLK_GET_CONFIG		_IOR(VHOST_VIRTIO, 0xF1, __u8[VHOST_BLK_CONFIG_SIZE])

/*
 * Forces the device read-only (1) or lets the backend decide (0). A backend
 * opened without write access, or a read-only block device, is read-only
 * whatever this says.
 */
#define VHOST_BLK_SET_READ_ONLY		_IOW(VHOST_VIRTIO, 0xF2, __u32)

/*
 * Sets the serial GET_ID returns: VIRTIO_BLK_ID_BYTES bytes, NUL-padded when
 * shorter, not NUL-terminated when the full length.
 */
#define VHOST_BLK_SET_SERIAL		_IOW(VHOST_VIRTIO, 0xFE, char[VIRTIO_BLK_ID_BYTES])

/*
 * Sets the number of virtqueues, 1 to VHOST_BLK_MAX_QUEUES (EINVAL
 * otherwise), before the first VHOST_SET_OWNER (EBUSY once one was called,
 * whatever its result, and after VHOST_RESET_OWNER): the queues are
 * allocated then, so a device costs memory for the queues it has. Without
 * it a device has VHOST_BLK_DEFAULT_QUEUES. Since ABI version 2.
 */
#define VHOST_BLK_SET_NUM_QUEUES	_IOW(VHOST_VIRTIO, 0xF3, __u32)
/*
 * Attaches the block device open as .fd and starts every virtqueue that is
 * set up; .index is ignored. .fd = -1 stops the device: it takes no more
 * requests, waits for every request in flight, reports each in the used
 * ring, then detaches the backend. Setting a backend while one is attached
 * first stops the device the same way.
 */
#define VHOST_BLK_SET_BACKEND		_IOW(VHOST_VIRTIO, 0xFF, struct vhost_vring_file)

#if !defined(__KERNEL__) && !defined(VHOST_NEW_WORKER)
/*
 * The vhost core's worker ioctls (Linux 6.5 and later; /dev/vhost-blk
 * answers them where the kernel has them, ENOTTY elsewhere), for programs
 * built against C library headers older than that.
 */
struct vhost_worker_state {
	unsigned int worker_id;
};

struct vhost_vring_worker {
	unsigned int index;
	unsigned int worker_id;
};

#define VHOST_NEW_WORKER		_IOR(VHOST_VIRTIO, 0x8, struct vhost_worker_state)
#define VHOST_FREE_WORKER		_IOW(VHOST_VIRTIO, 0x9, struct vhost_worker_state)
#define VHOST_ATTACH_VRING_WORKER	_IOW(VHOST_VIRTIO, 0x15, struct vhost_vring_worker)
#define VHOST_GET_VRING_WORKER		_IOWR(VHOST_VIRTIO, 0x16, struct vhost_vring_worker)
#endif

#endif /* _UAPI_LINUX_VHOST_BLK_H */
