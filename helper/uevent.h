/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uevent: the kernel's device events, for `serve` to learn that its block
 * device changed size. The kernel announces a new capacity with a "change"
 * event of the disk: with RESIZE=1 where set_capacity_and_notify() sends it
 * (loop's LOOP_SET_CAPACITY, a SCSI or NVMe rescan, virtio-blk), without
 * for device-mapper (a resume after lvextend). No udev daemon is needed.
 */
#ifndef UEVENT_H
#define UEVENT_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * A non-blocking socket that receives the kernel's device events, or a
 * negative errno.
 */
int uevent_open(void);

/*
 * Reads every event pending on @fd. True when one of them is a change of
 * the block device @dev, or when events were lost (the socket's buffer
 * overflowed): the caller then looks at the device again.
 */
bool uevent_changed(int fd, dev_t dev);

#endif /* UEVENT_H */
