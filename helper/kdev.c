// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/vhost-blk and its module. See kdev.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libkmod.h>
#include <linux/fs.h>
#include <linux/vhost_blk.h>

#include "kdev.h"
#include "loopdev.h"

/* How long to wait for the node after loading the module. */
#define NODE_WAIT_MS	2000
/* The queues of every device of a module of ABI version 1. */
#define ABI1_QUEUES	16

/* libkmod prints to stderr by default; we report errors ourselves. */
static void kmod_quiet(void *data, int priority, const char *file, int line,
		       const char *fn, const char *format, va_list args)
{
	(void)data;
	(void)priority;
	(void)file;
	(void)line;
	(void)fn;
	(void)format;
	(void)args;
}

static struct kmod_ctx *kmod_open(void)
{
	struct kmod_ctx *ctx = kmod_new(NULL, NULL);

	if (ctx)
		kmod_set_log_fn(ctx, kmod_quiet, NULL);
	return ctx;
}

enum kdev_module_state kdev_module_state(char *path, size_t len)
{
	enum kdev_module_state state = KDEV_MODULE_MISSING;
	struct kmod_list *list = NULL, *l;
	struct kmod_ctx *ctx;

	if (!access("/sys/module/" KDEV_MODULE, F_OK))
		return KDEV_MODULE_LOADED;
	ctx = kmod_open();
	if (!ctx)
		return KDEV_MODULE_MISSING;
	if (kmod_module_new_from_lookup(ctx, KDEV_MODULE, &list) >= 0) {
		kmod_list_foreach(l, list) {
			struct kmod_module *mod = kmod_module_get_module(l);
			const char *p = kmod_module_get_path(mod);

			if (kmod_module_get_initstate(mod) == KMOD_MODULE_BUILTIN) {
				state = KDEV_MODULE_LOADED;
			} else if (p) {
				state = KDEV_MODULE_LOADABLE;
				if (path)
					snprintf(path, len, "%s", p);
			}
			kmod_module_unref(mod);
			break;
		}
		kmod_module_unref_list(list);
	}
	kmod_unref(ctx);
	return state;
}

int kdev_load_module(const char **why)
{
	struct kmod_list *list = NULL, *l;
	struct kmod_ctx *ctx;
	int ret;

	ctx = kmod_open();
	if (!ctx) {
		*why = "cannot initialize libkmod";
		return -ENOMEM;
	}
	ret = kmod_module_new_from_lookup(ctx, KDEV_MODULE, &list);
	if (ret >= 0 && !list)
		ret = -ENOENT;
	if (ret < 0) {
		*why = "module " KDEV_MODULE " not found for the running kernel";
		goto out;
	}
	kmod_list_foreach(l, list) {
		struct kmod_module *mod = kmod_module_get_module(l);

		ret = kmod_module_probe_insert_module(mod, 0, NULL, NULL, NULL,
						      NULL);
		kmod_module_unref(mod);
		if (ret < 0) {
			*why = "loading module " KDEV_MODULE " failed";
			break;
		}
	}
	kmod_module_unref_list(list);
out:
	kmod_unref(ctx);
	return ret < 0 ? ret : 0;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int kdev_open(const char **why)
{
	unsigned int waited;
	int fd, ret;

	fd = open(KDEV_PATH, O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno != ENOENT) {
		*why = "cannot open";
		return -errno;
	}
	ret = kdev_load_module(why);
	if (ret)
		return ret;
	/* devtmpfs creates the node at once; udev may still be at it. */
	for (waited = 0; ; waited += 20) {
		fd = open(KDEV_PATH, O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != ENOENT || waited >= NODE_WAIT_MS)
			break;
		sleep_ms(20);
	}
	ret = -errno;
	*why = errno == ENOENT ? "module " KDEV_MODULE " loaded but no device node" :
				 "cannot open";
	return ret;
}

int kdev_set_num_queues(int fd, unsigned int num, const char **why)
{
	if (!ioctl(fd, VHOST_BLK_SET_NUM_QUEUES, &num))
		return 0;
	if (errno != ENOTTY) {
		*why = "VHOST_BLK_SET_NUM_QUEUES";
		return -errno;
	}
	if (num <= ABI1_QUEUES)
		return 0;
	*why = "the loaded vhost_blk module (ABI version 1) serves 16 queues per device";
	return -ENOTTY;
}

int kdev_probe_workers(int fd, enum kdev_workers *workers, const char **why)
{
	struct vhost_vring_worker vw = { .index = 0 };
	struct vhost_worker_state ws = { 0 };

	if (ioctl(fd, VHOST_SET_OWNER)) {
		*why = "VHOST_SET_OWNER";
		return -errno;
	}
	if (ioctl(fd, VHOST_GET_VRING_WORKER, &vw)) {
		if (errno != ENOTTY) {
			*why = "VHOST_GET_VRING_WORKER";
			return -errno;
		}
		*workers = KDEV_WORKERS_ONE;
		return 0;
	}
	/* Freed with the device. */
	if (ioctl(fd, VHOST_NEW_WORKER, &ws)) {
		if (errno != EFAULT) {
			*why = "VHOST_NEW_WORKER";
			return -errno;
		}
		*workers = KDEV_WORKERS_KTHREAD;
		return 0;
	}
	*workers = KDEV_WORKERS_PER_QUEUE;
	return 0;
}

int kdev_read_info(struct kdev_info *info, const char **why)
{
	int fd, ret = 0;

	/* Of the loaded module: no loading here. */
	fd = open(KDEV_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		*why = "cannot open";
		return -errno;
	}
	if (ioctl(fd, VHOST_BLK_GET_ABI_VERSION, &info->abi_version) < 0) {
		ret = -errno;
		*why = "VHOST_BLK_GET_ABI_VERSION";
	} else if (ioctl(fd, VHOST_GET_FEATURES, &info->features) < 0) {
		ret = -errno;
		*why = "VHOST_GET_FEATURES";
	}
	close(fd);
	return ret;
}

int kdev_open_backend(const char *path, bool read_only, bool shared,
		      const char **why)
{
	int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	struct stat st;
	int fd, ro = 0, ret;

	/*
	 * O_EXCL on a block device (without O_CREAT) claims it: a second
	 * exclusive opener, a mount, md or dm get EBUSY while we hold it.
	 * A regular file goes on a loop device of its own. Anything else is
	 * refused before the open, so that O_EXCL never means "create" here.
	 */
	if (stat(path, &st)) {
		*why = NULL;
		return -errno;
	}
	if (S_ISREG(st.st_mode))
		return loopdev_open(path, read_only, shared, why);
	if (!S_ISBLK(st.st_mode)) {
		*why = S_ISDIR(st.st_mode) ?
		       "a directory, not a block device or image file" :
		       "not a block device or image file";
		return -ENOTBLK;
	}
	fd = open(path, flags | (shared ? 0 : O_EXCL));
	if (fd < 0) {
		ret = -errno;
		*why = ret == -EBUSY && !shared ?
		       "in use (mounted, or opened exclusively by another program; --shared opens it anyway)" :
		       NULL;
		return ret;
	}
	if (fstat(fd, &st) || !S_ISBLK(st.st_mode)) {
		*why = "not a block device";
		ret = -ENOTBLK;
		goto err;
	}
	if (!read_only && !ioctl(fd, BLKROGET, &ro) && ro) {
		*why = "read-only device";
		ret = -EROFS;
		goto err;
	}
	return fd;
err:
	close(fd);
	return ret;
}
