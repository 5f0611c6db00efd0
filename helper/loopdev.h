/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Image files: a regular file is served through a loop device that the
 * helper sets up for itself and that goes away with it.
 *
 * loopdev_open() binds the file to a free loop device (LOOP_CONFIGURE) with
 * LO_FLAGS_AUTOCLEAR, and the descriptor it returns is the device's only
 * opener: when it is closed (the helper exits, however it exits, or QEMU
 * that got it from `exec` or `send-fds` does), the kernel unbinds the
 * device. Direct I/O (LO_FLAGS_DIRECT_IO) is asked for; where the file
 * system cannot do it (tmpfs before Linux 6.6, a disk whose logical blocks
 * are larger than the loop device's 512 bytes), the kernel falls back to
 * the page cache, and loopdev_status() tells.
 *
 * Functions return a descriptor or 0, or a negative errno with *why a
 * short reason (NULL when the errno says it all; it may be a static buffer,
 * valid until the next call, that includes the errno's text); none prints.
 */
#ifndef LOOPDEV_H
#define LOOPDEV_H

#include <stdbool.h>

/* Where free loop devices come from (LOOP_CTL_GET_FREE). */
#define LOOPDEV_CONTROL	"/dev/loop-control"

/*
 * Opens the image file @file on a new loop device, read-only with
 * @read_only; the device is opened exclusively (O_EXCL) and O_CLOEXEC.
 * Unless @shared, the file is locked too, with an OFD lock over the whole
 * file (a write lock; a read lock with @read_only) that lasts as long as
 * the device is bound: a second serve of the file, or QEMU (which locks its
 * images the same way), cannot use it at the same time: -EBUSY then.
 */
int loopdev_open(const char *file, bool read_only, bool shared,
		 const char **why);

struct loopdev_status {
	unsigned int number;	/* /dev/loopN */
	bool direct_io;		/* LO_FLAGS_DIRECT_IO in effect */
};

/* What the loop device open as @fd is; -ENOTTY for no loop device. */
int loopdev_status(int fd, struct loopdev_status *st);

#endif /* LOOPDEV_H */
