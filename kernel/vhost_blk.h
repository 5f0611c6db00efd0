/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhost-blk: private definitions shared by the files of the module.
 */
#ifndef _VHOST_BLK_H
#define _VHOST_BLK_H

#include <linux/vhost_blk.h>

#include "vhost.h"

/* Features offered: the transport features the vhost core implements. */
#define VHOST_BLK_FEATURES	(BIT_ULL(VIRTIO_F_VERSION_1) | \
				 BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | \
				 BIT_ULL(VIRTIO_RING_F_EVENT_IDX) | \
				 BIT_ULL(VHOST_F_LOG_ALL))

/**
 * struct vhost_blk - one virtio-blk device, the state of one open file
 * @dev: the vhost core device; its mutex serialises every ioctl
 * @vqs: the virtqueues; vq->mutex protects each one's state, as in the core
 * @vq_ptrs: the array of @vqs pointers the core indexes
 *
 * Allocated in open and freed in release: nothing outlives the file.
 */
struct vhost_blk {
	struct vhost_dev dev;
	struct vhost_virtqueue vqs[VHOST_BLK_MAX_QUEUES];
	struct vhost_virtqueue *vq_ptrs[VHOST_BLK_MAX_QUEUES];
};

#endif /* _VHOST_BLK_H */
