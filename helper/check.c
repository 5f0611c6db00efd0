// SPDX-License-Identifier: GPL-2.0
/*
 * check: what is missing to serve a disk. One line per item, "ok", "warn"
 * or "FAIL" first; the exit status is 1 when any item failed. Changes
 * nothing (the module is not loaded).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>

#include "cli.h"
#include "commands.h"
#include "kdev.h"
#include "loopdev.h"

struct report {
	unsigned int failed;
};

static void item(struct report *r, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void item(struct report *r, const char *status, const char *fmt, ...)
{
	va_list ap;

	if (!strcmp(status, "FAIL"))
		r->failed++;
	printf("%-5s", status);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* The module and the device node. */
static void check_device(struct report *r)
{
	char path[512] = "";
	struct kdev_info info;
	const char *why;
	int ret;

	switch (kdev_module_state(path, sizeof(path))) {
	case KDEV_MODULE_LOADED:
		item(r, "ok", "module " KDEV_MODULE ": loaded");
		break;
	case KDEV_MODULE_LOADABLE:
		if (geteuid()) {
			item(r, "FAIL", "module " KDEV_MODULE ": not loaded, and loading %s needs root",
			     path);
			return;
		}
		item(r, "ok", "module " KDEV_MODULE ": not loaded; serve loads %s", path);
		item(r, "ok", KDEV_PATH ": appears when the module is loaded");
		return;
	case KDEV_MODULE_MISSING:
		item(r, "FAIL", "module " KDEV_MODULE ": not loaded and not installed for this kernel (make install)");
		return;
	}
	if (access(KDEV_PATH, F_OK)) {
		item(r, "FAIL", KDEV_PATH ": missing although the module is loaded (is devtmpfs mounted?)");
		return;
	}
	ret = kdev_read_info(&info, &why);
	if (ret) {
		item(r, "FAIL", KDEV_PATH ": %s: %s%s", why, strerror(-ret),
		     ret == -EACCES ? " (root only unless a udev rule says otherwise)" : "");
		return;
	}
	item(r, "ok", KDEV_PATH ": accessible, ABI version %u", info.abi_version);
}

/*
 * Opens @path read-write, or read-only where it may not be written
 * (@writable tells which): the descriptor, or -1 with errno set.
 */
static int open_writable(const char *path, bool *writable)
{
	int fd;

	*writable = true;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && (errno == EROFS || errno == EACCES || errno == EPERM)) {
		*writable = false;
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	return fd;
}

/* An image file: serve puts it on a loop device of its own. */
static void check_image(struct report *r, const char *file, off_t size)
{
	bool writable;
	int fd;

	fd = open_writable(file, &writable);
	if (fd < 0) {
		item(r, "FAIL", "%s: %s", file, strerror(errno));
		return;
	}
	close(fd);
	if (writable)
		item(r, "ok", "%s: image file, %llu bytes, writable", file,
		     (unsigned long long)size);
	else
		item(r, "ok", "%s: image file, %llu bytes, read-only: serve it with --read-only",
		     file, (unsigned long long)size);
	fd = open(LOOPDEV_CONTROL, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		item(r, "FAIL", LOOPDEV_CONTROL ": %s (image files are served on loop devices: modprobe loop)",
		     strerror(errno));
		return;
	}
	close(fd);
	item(r, "ok", LOOPDEV_CONTROL ": accessible (image files are served on loop devices)");
}

static void check_backend(struct report *r, const char *dev)
{
	uint64_t size = 0;
	struct stat st;
	int fd, ro = 0;
	bool writable;

	if (stat(dev, &st)) {
		item(r, "FAIL", "%s: %s", dev, strerror(errno));
		return;
	}
	if (S_ISREG(st.st_mode)) {
		check_image(r, dev, st.st_size);
		return;
	}
	if (!S_ISBLK(st.st_mode)) {
		item(r, "FAIL", "%s: not a block device or image file", dev);
		return;
	}
	fd = open_writable(dev, &writable);
	if (fd < 0) {
		item(r, "FAIL", "%s: %s", dev, strerror(errno));
		return;
	}
	ioctl(fd, BLKGETSIZE64, &size);
	if (!ioctl(fd, BLKROGET, &ro) && ro)
		writable = false;
	close(fd);
	if (writable)
		item(r, "ok", "%s: block device, %llu bytes, writable", dev,
		     (unsigned long long)size);
	else
		item(r, "ok", "%s: block device, %llu bytes, read-only: serve it with --read-only",
		     dev, (unsigned long long)size);
	/* Someone holding it exclusively: a mounted filesystem, md, dm. */
	fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC);
	if (fd < 0 && errno == EBUSY)
		item(r, "warn", "%s: in use (mounted, served, or held by another driver)", dev);
	if (fd >= 0)
		close(fd);
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct report r = { 0 };
	const char *backend = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			backend = optarg;
			break;
		case 'h':
			printf("Usage: " HELPER_NAME " check [--backend DEV]\n"
			       "\n"
			       "Tell what is missing to serve a disk: the vhost_blk module (loaded or\n"
			       "loadable), " KDEV_PATH " (present, accessible), and with --backend the\n"
			       "block device DEV (a block device, openable, read-only or not) or\n"
			       "image file DEV (openable, read-only or not, and /dev/loop-control). One\n"
			       "line per item, starting with ok, warn or FAIL; exit status 1 when\n"
			       "an item failed.\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return unexpected_arg("check", argv[optind]);
	check_device(&r);
	if (backend)
		check_backend(&r, backend);
	return r.failed ? EXIT_FAIL : EXIT_OK;
}
