// SPDX-License-Identifier: GPL-2.0
/*
 * Image files on loop devices of the helper's own. See loopdev.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/loop.h>

#include "loopdev.h"

/*
 * Times to ask for a free device again when another program (losetup)
 * took the one we were given before we bound it.
 */
#define LOOP_TRIES	16

/* "@what: <errno's text>@hint", for *why: valid until the next call. */
static const char *reason(const char *what, int err, const char *hint)
{
	static char buf[160];

	snprintf(buf, sizeof(buf), "%s: %s%s", what, strerror(err), hint);
	return buf;
}

/*
 * Binds the open file @file_fd to a free loop device and returns the
 * device, opened exclusively: its only opener. -EBUSY or -ENXIO when
 * someone else took or is tearing down that device (ask again).
 */
static int bind_free(int ctl, int file_fd, const char *file, bool read_only,
		     const char **why)
{
	struct loop_config cfg = {
		.fd = file_fd,
		.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO |
				 (read_only ? LO_FLAGS_READ_ONLY : 0),
	};
	char dev[32];
	int n, fd, ret;

	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	if (n < 0) {
		ret = -errno;
		*why = reason("no free loop device (" LOOPDEV_CONTROL ")", -ret, "");
		return ret;
	}
	snprintf(dev, sizeof(dev), "/dev/loop%d", n);
	fd = open(dev, (read_only ? O_RDONLY : O_RDWR) | O_EXCL | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		*why = reason("cannot open a free loop device", -ret, "");
		return ret;
	}
	/* What losetup shows; the kernel's backing_file is the full path. */
	snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%s", file);
	ret = ioctl(fd, LOOP_CONFIGURE, &cfg);
	/* A kernel that refuses direct I/O it cannot do, not falls back. */
	if (ret && errno == EINVAL) {
		cfg.info.lo_flags &= ~LO_FLAGS_DIRECT_IO;
		ret = ioctl(fd, LOOP_CONFIGURE, &cfg);
	}
	if (ret) {
		ret = -errno;
		*why = reason("LOOP_CONFIGURE", -ret, "");
		close(fd);
		return ret;
	}
	return fd;
}

int loopdev_open(const char *file, bool read_only, bool shared,
		 const char **why)
{
	struct flock lock = {
		.l_type = read_only ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,	/* l_start 0, l_len 0: the whole file */
	};
	int file_fd, ctl, fd, tries;
	struct stat st;

	*why = NULL;
	file_fd = open(file, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (file_fd < 0)
		return -errno;
	if (fstat(file_fd, &st) || !S_ISREG(st.st_mode)) {
		*why = "not a block device or image file";
		fd = -EINVAL;
		goto out;
	}
	/*
	 * An OFD lock belongs to the open file, which the loop device holds
	 * from LOOP_CONFIGURE on: it lasts as long as the device is bound.
	 */
	if (!shared && fcntl(file_fd, F_OFD_SETLK, &lock)) {
		fd = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
		*why = fd == -EBUSY ?
		       "in use (locked by another program, such as another serve or QEMU; --shared opens it anyway)" :
		       reason("cannot lock it", -fd, "");
		goto out;
	}
	ctl = open(LOOPDEV_CONTROL, O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		fd = -errno;
		*why = reason("cannot open " LOOPDEV_CONTROL, -fd,
			      fd == -EACCES || fd == -EPERM ? "" :
			      " (is the loop module loaded?)");
		goto out;
	}
	for (tries = 0; tries < LOOP_TRIES; tries++) {
		fd = bind_free(ctl, file_fd, file, read_only, why);
		if (fd != -EBUSY && fd != -ENXIO)
			break;
	}
	close(ctl);
out:
	/* The loop device, if bound, has its own reference to the file. */
	close(file_fd);
	return fd;
}

int loopdev_status(int fd, struct loopdev_status *st)
{
	struct loop_info64 info;

	if (ioctl(fd, LOOP_GET_STATUS64, &info))
		return -errno;
	st->number = info.lo_number;
	st->direct_io = info.lo_flags & LO_FLAGS_DIRECT_IO;
	return 0;
}
