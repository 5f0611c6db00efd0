// SPDX-License-Identifier: GPL-2.0
/*
 * uevent: the kernel's device events. See uevent.h.
 *
 * An event is one datagram from the kernel (port id 0) on the
 * NETLINK_KOBJECT_UEVENT multicast group 1: "ACTION@DEVPATH" and then
 * KEY=VALUE strings, each ending with a NUL. Datagrams from anyone else
 * (udev's rebroadcasts use group 2 and a "libudev" header) are ignored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/netlink.h>

#include "uevent.h"

/* The kernel's largest event (UEVENT_BUFFER_SIZE) and then some. */
#define UEVENT_MAX	8192

int uevent_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	int fd, err;

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    NETLINK_KOBJECT_UEVENT);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* The value of @key in the event @buf of @len bytes, or NULL. */
static const char *event_value(const char *buf, size_t len, const char *key)
{
	size_t klen = strlen(key), off = strnlen(buf, len) + 1;

	while (off < len) {
		const char *s = buf + off;
		size_t slen = strnlen(s, len - off);

		if (slen > klen && !strncmp(s, key, klen) && s[klen] == '=')
			return s + klen + 1;
		off += slen + 1;
	}
	return NULL;
}

/* Whether the event @buf is a "change" of the block device @dev. */
static bool is_change_of(const char *buf, size_t len, dev_t dev)
{
	const char *action = event_value(buf, len, "ACTION");
	const char *subsystem = event_value(buf, len, "SUBSYSTEM");
	const char *major = event_value(buf, len, "MAJOR");
	const char *minor = event_value(buf, len, "MINOR");
	char *end;
	unsigned long maj, min;

	if (!action || !subsystem || !major || !minor ||
	    strcmp(action, "change") || strcmp(subsystem, "block"))
		return false;
	maj = strtoul(major, &end, 10);
	if (*end)
		return false;
	min = strtoul(minor, &end, 10);
	if (*end)
		return false;
	return maj == major(dev) && min == minor(dev);
}

bool uevent_changed(int fd, dev_t dev)
{
	char buf[UEVENT_MAX + 1];
	bool changed = false;

	for (;;) {
		struct sockaddr_nl sa;
		struct iovec iov = { buf, UEVENT_MAX };
		struct msghdr mh = { .msg_name = &sa, .msg_namelen = sizeof(sa),
				     .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(fd, &mh, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* ENOBUFS: some were lost, maybe ours. */
			return changed || errno == ENOBUFS;
		}
		if (mh.msg_namelen != sizeof(sa) || sa.nl_pid || (mh.msg_flags & MSG_TRUNC))
			continue;
		buf[n] = 0;
		if (is_change_of(buf, n, dev))
			changed = true;
	}
}
