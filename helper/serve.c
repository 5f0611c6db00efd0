// SPDX-License-Identifier: GPL-2.0
/*
 * serve: the vhost-user-blk back-end's listening side: the block device,
 * the socket, signals, and one connection (conn.c) at a time. See serve.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "conn.h"
#include "kdev.h"
#include "serve.h"
#include "vu_msg.h"

/* The most a message may take to arrive once its first byte did. */
#define MSG_TIMEOUT_MS		10000

void serve_log(const char *name, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vhostblk-setup: %s: %s\n", name, line);
}

/* Serves one front-end; -EINTR when a signal ended it. */
static int serve_conn(const struct serve_opts *opts, const char *name,
		      int sock, int backend_fd, int sigfd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c;
	struct vu_msg m;
	int ret;

	if (!getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		serve_log(name, "front-end connected (pid %d)", (int)cred.pid);
	else
		serve_log(name, "front-end connected");
	c = conn_open(opts, name, sock, backend_fd);
	if (!c)
		return 0;
	for (;;) {
		ret = vu_msg_recv(sock, &m, sigfd, MSG_TIMEOUT_MS);
		if (ret == -ECONNRESET) {
			serve_log(name, "front-end disconnected");
			ret = 0;
			break;
		}
		if (ret == -EINTR)
			break;
		if (ret) {
			serve_log(name, "reading a message: %s; disconnecting",
				  ret == -EMSGSIZE ? "payload too large" :
				  ret == -EPROTO ? "malformed message" :
				  strerror(-ret));
			ret = 0;
			break;
		}
		if (conn_handle(c, &m)) {
			serve_log(name, "disconnecting");
			break;
		}
	}
	conn_close(c);
	return ret;
}

/* ------------------------------------------------------------------------
 * Listening
 */

/* A listening socket at @path; a stale socket file is replaced. */
static int listen_at(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, probe;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "vhostblk-setup: %s: socket path too long\n", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "vhostblk-setup: %s: exists and is not a socket\n",
				path);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 &&
		    !connect(probe, (struct sockaddr *)&sun, sizeof(sun))) {
			close(probe);
			fprintf(stderr, "vhostblk-setup: %s: in use by another process\n",
				path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    listen(fd, 16)) {
		fprintf(stderr, "vhostblk-setup: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Checks that @fd is a listening unix stream socket. */
static int inherited_listener(int fd)
{
	int val = 0, type = 0;
	socklen_t len = sizeof(val), tlen = sizeof(type);
	struct stat st;

	if (fstat(fd, &st)) {
		fprintf(stderr, "vhostblk-setup: fd %d: %s\n", fd, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode) ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) ||
	    type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) || !val) {
		fprintf(stderr, "vhostblk-setup: fd %d: not a listening stream socket\n",
			fd);
		return -1;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

static int signals_fd(sigset_t *old)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, old))
		return -1;
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		sigprocmask(SIG_SETMASK, old, NULL);
	return fd;
}

int serve_run(const struct serve_opts *opts)
{
	const char *name = opts->socket ? opts->socket : "listening socket";
	int sigfd, lfd = -1, backend_fd, kfd, status = 1;
	struct signalfd_siginfo si;
	char fdname[32];
	const char *why;
	sigset_t old;

	backend_fd = cli_open_backend(opts->backend, opts->read_only, opts->shared);
	if (backend_fd < 0)
		return 1;
	/* Fail now, not at the first connection, if the module is missing. */
	kfd = kdev_open(&why);
	if (kfd < 0) {
		fprintf(stderr, "vhostblk-setup: %s: %s: %s\n", KDEV_PATH, why,
			strerror(-kfd));
		goto out_backend;
	}
	close(kfd);
	sigfd = signals_fd(&old);
	if (sigfd < 0) {
		fprintf(stderr, "vhostblk-setup: signalfd: %s\n", strerror(errno));
		goto out_backend;
	}
	if (opts->socket) {
		lfd = listen_at(opts->socket);
	} else {
		lfd = inherited_listener(opts->listen_fd);
		snprintf(fdname, sizeof(fdname), "fd %d", opts->listen_fd);
		name = fdname;
	}
	if (lfd < 0)
		goto out_signals;

	serve_log(name, "serving %s, %u queue%s%s", opts->backend,
		  opts->num_queues, opts->num_queues == 1 ? "" : "s",
		  opts->read_only ? ", read-only" : "");
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = lfd, .events = POLLIN },
			{ .fd = sigfd, .events = POLLIN },
		};
		int sock;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			serve_log(name, "poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == ECONNABORTED)
				continue;
			serve_log(name, "accept: %s", strerror(errno));
			break;
		}
		if (serve_conn(opts, name, sock, backend_fd, sigfd) == -EINTR)
			break;
	}
	if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
		serve_log(name, "%s: exiting", strsignal(si.ssi_signo));
		status = 0;
	}
	close(lfd);
	if (opts->socket)
		unlink(opts->socket);
out_signals:
	close(sigfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
out_backend:
	close(backend_fd);
	return status;
}
