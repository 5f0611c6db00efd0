// SPDX-License-Identifier: GPL-2.0
/*
 * A minimal QMP client. See qmp.h.
 *
 * QEMU sends one JSON object per line: the greeting, then for each command
 * its reply ({"return": ...} or {"error": {"class": ..., "desc": ...}}),
 * with events ({"event": ...}) in between at any time.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp.h"

/* How long QEMU may take to answer one command. */
#define QMP_TIMEOUT_MS	10000

/* Reads up to one line into qmp->buf, NUL-terminated without its newline. */
static int qmp_read_line(struct qmp *qmp, const char **why)
{
	struct pollfd pfd = { .fd = qmp->fd, .events = POLLIN };
	char *nl;
	ssize_t n;
	int ret;

	for (;;) {
		nl = memchr(qmp->buf, '\n', qmp->len);
		if (nl) {
			*nl = '\0';
			return 0;
		}
		if (qmp->len == sizeof(qmp->buf) - 1) {
			*why = "QMP reply too long";
			return -EPROTO;
		}
		ret = poll(&pfd, 1, QMP_TIMEOUT_MS);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0) {
			*why = "no QMP reply";
			return ret ? -errno : -ETIMEDOUT;
		}
		n = read(qmp->fd, qmp->buf + qmp->len, sizeof(qmp->buf) - 1 - qmp->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*why = "QMP connection closed";
			return n ? -errno : -ECONNRESET;
		}
		qmp->len += n;
	}
}

/* Drops the line qmp_read_line() returned. */
static void qmp_consume_line(struct qmp *qmp)
{
	size_t line = strlen(qmp->buf) + 1;

	memmove(qmp->buf, qmp->buf + line, qmp->len - line);
	qmp->len -= line;
}

/* Copies the "desc" string of an error reply into qmp->error. */
static void qmp_save_error(struct qmp *qmp, const char *line)
{
	const char *desc = strstr(line, "\"desc\": \"");
	size_t i = 0;

	if (!desc) {
		strcpy(qmp->error, "QMP command failed");
		return;
	}
	for (desc += strlen("\"desc\": \""); *desc && *desc != '"' &&
	     i < sizeof(qmp->error) - 1; desc++) {
		if (*desc == '\\' && desc[1])
			desc++;
		qmp->error[i++] = *desc;
	}
	qmp->error[i] = '\0';
}

/* Waits for the reply to the command just sent. */
static int qmp_reply(struct qmp *qmp, const char **why)
{
	bool ok, error;
	int ret;

	for (;;) {
		ret = qmp_read_line(qmp, why);
		if (ret)
			return ret;
		ok = !strncmp(qmp->buf, "{\"return\":", strlen("{\"return\":"));
		error = !strncmp(qmp->buf, "{\"error\":", strlen("{\"error\":"));
		if (error)
			qmp_save_error(qmp, qmp->buf);
		qmp_consume_line(qmp);
		if (ok)
			return 0;
		if (error) {
			*why = qmp->error;
			return -EINVAL;
		}
	}
}

int qmp_command(struct qmp *qmp, const char *command, int fd,
		const char **why)
{
	char control[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)command, .iov_len = strlen(command) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cmsg;
	ssize_t n;

	if (fd >= 0) {
		msg.msg_control = control;
		msg.msg_controllen = sizeof(control);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	do {
		n = sendmsg(qmp->fd, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)iov.iov_len) {
		*why = "cannot send a QMP command";
		return n < 0 ? -errno : -EIO;
	}
	return qmp_reply(qmp, why);
}

int qmp_connect(struct qmp *qmp, const char *path, const char **why)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int ret;

	qmp->len = 0;
	qmp->error[0] = '\0';
	if (strlen(path) >= sizeof(addr.sun_path)) {
		*why = "socket path too long";
		return -ENAMETOOLONG;
	}
	strcpy(addr.sun_path, path);
	qmp->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (qmp->fd < 0) {
		*why = "cannot create a socket";
		return -errno;
	}
	if (connect(qmp->fd, (struct sockaddr *)&addr, sizeof(addr))) {
		ret = -errno;
		*why = "cannot connect";
		goto err;
	}
	ret = qmp_read_line(qmp, why);
	if (ret)
		goto err;
	if (strncmp(qmp->buf, "{\"QMP\":", strlen("{\"QMP\":"))) {
		*why = "not a QMP socket";
		ret = -EPROTO;
		goto err;
	}
	qmp_consume_line(qmp);
	ret = qmp_command(qmp, "{\"execute\": \"qmp_capabilities\"}", -1, why);
	if (ret)
		goto err;
	return 0;
err:
	close(qmp->fd);
	qmp->fd = -1;
	return ret;
}

void qmp_close(struct qmp *qmp)
{
	close(qmp->fd);
	qmp->fd = -1;
}
