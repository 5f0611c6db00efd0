/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vhost-blk: in-kernel virtio-blk device on the vhost core.
 *
 * /dev/vhost-blk takes the standard vhost ioctls of <linux/vhost.h>
 * (features, owner, memory table, vrings, dirty log, backend features) and
 * the vhost-blk ioctls below. Documentation/abi.rst describes each with its
 * errors.
 *
 * Numbers: type VHOST_VIRTIO (0xAF); 0xF0 and up are unused upstream.
 */
#ifndef _UAPI_LINUX_VHOST_BLK_H
#define _UAPI_LINUX_VHOST_BLK_H

#include <linux/types.h>
#include <linux/vhost.h>

/*
 * Version of this ABI. It grows by one whenever an ioctl or a behaviour
 * userspace can rely on is added; existing ioctls keep their meaning.
 *
 * 1: VHOST_GET_FEATURES/VHOST_SET_FEATURES, VHOST_BLK_GET_ABI_VERSION.
 */
#define VHOST_BLK_ABI_VERSION		1

/* Largest number of virtqueues a device serves. */
#define VHOST_BLK_MAX_QUEUES		16

/* Reads the ABI version the loaded module implements. */
#define VHOST_BLK_GET_ABI_VERSION	_IOR(VHOST_VIRTIO, 0xF0, __u32)

#endif /* _UAPI_LINUX_VHOST_BLK_H */
