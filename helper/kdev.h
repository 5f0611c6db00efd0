/* SPDX-License-Identifier: GPL-2.0 */
/*
 * /dev/vhost-blk: opening it (loading the vhost_blk module with libkmod when
 * the node is missing) and querying it. Functions return 0 (or a descriptor)
 * or a negative errno, and set *why to a short reason; none prints.
 */
#ifndef KDEV_H
#define KDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KDEV_PATH	"/dev/vhost-blk"
#define KDEV_MODULE	"vhost_blk"

enum kdev_module_state {
	KDEV_MODULE_LOADED,	/* in the kernel (or built in) */
	KDEV_MODULE_LOADABLE,	/* found by modprobe's lookup */
	KDEV_MODULE_MISSING,	/* neither */
};

/* Where the module stands; @path (may be NULL) gets its file if loadable. */
enum kdev_module_state kdev_module_state(char *path, size_t len);

/* Loads vhost_blk and what it depends on, as modprobe would. */
int kdev_load_module(const char **why);

/*
 * Opens KDEV_PATH read-write (O_CLOEXEC), loading the module first when the
 * node does not exist. A descriptor, or a negative errno with *why.
 */
int kdev_open(const char **why);

/*
 * Opens the block device @path to serve (O_CLOEXEC), read-only with
 * @read_only, and exclusively (O_EXCL: no other exclusive opener, no
 * mount) unless @shared. A regular file @path is an image file: the
 * descriptor is then that of a loop device set up for it alone, which the
 * kernel unbinds when the descriptor is closed (loopdev_open(); @shared
 * there means "do not lock the file"). A descriptor, or a negative errno
 * with *why: NULL when open(2) failed for a reason the errno tells, else
 * -ENOTBLK when @path is neither, -EBUSY when someone else holds it
 * exclusively, or -EROFS when the device is read-only and @read_only is
 * not set.
 */
int kdev_open_backend(const char *path, bool read_only, bool shared,
		      const char **why);

/*
 * Gives the device open as @fd @num queues (VHOST_BLK_SET_NUM_QUEUES), as
 * long as it has no owner. A module of ABI version 1 has no such ioctl and
 * 16 queues per device: 0 then for up to 16, -ENOTTY beyond, with *why the
 * whole reason. Other errors are the ioctl's, *why its name.
 */
int kdev_set_num_queues(int fd, unsigned int num, const char **why);

/* What the owner of a device can do about its workers. */
enum kdev_workers {
	/* VHOST_NEW_WORKER, VHOST_ATTACH_VRING_WORKER (Linux 6.5 and later) */
	KDEV_WORKERS_PER_QUEUE,
	/* one worker per device: the vhost core has no worker ioctls */
	KDEV_WORKERS_ONE,
	/*
	 * the ioctls, but VHOST_NEW_WORKER fails (EFAULT): the vhost module
	 * runs workers as kernel threads (fork_from_owner_default=0), and
	 * only adds workers that are threads of the owner
	 */
	KDEV_WORKERS_KTHREAD,
};

/*
 * Finds out how the vhost core lets an owner give queues workers, by
 * becoming the owner of the device open as @fd and asking for a queue's
 * worker and a new one: @fd is good for nothing else afterwards. 0 with
 * *workers, or a negative errno with *why.
 */
int kdev_probe_workers(int fd, enum kdev_workers *workers, const char **why);

struct kdev_info {
	uint32_t abi_version;
	uint64_t features;
};

/* The loaded module's ABI version and a new device's features. */
int kdev_read_info(struct kdev_info *info, const char **why);

#endif /* KDEV_H */
