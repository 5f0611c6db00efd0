// SPDX-License-Identifier: GPL-2.0
/*
 * serve: the vhost-user-blk back-end's listening side: the block device,
 * the socket, signals, and one connection (conn.c) at a time. See serve.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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
#include "loopdev.h"
#include "serve.h"
#include "uevent.h"
#include "vu_msg.h"

/* The most a message may take to arrive once its first byte did. */
#define MSG_TIMEOUT_MS		10000

/* ------------------------------------------------------------------------
 * Front-ends: who may connect, and one at a time
 */

/* The peer's credentials; false (and all -1) when unknown. */
static bool peer_cred(int sock, struct ucred *cred)
{
	socklen_t len = sizeof(*cred);

	if (!getsockopt(sock, SOL_SOCKET, SO_PEERCRED, cred, &len))
		return true;
	*cred = (struct ucred){ .pid = -1, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	return false;
}

/* Root, the user serve was started as, an --allow-uid or --allow-gid. */
static bool peer_allowed(const struct serve_opts *opts,
			 const struct ucred *cred)
{
	unsigned int i;

	if (cred->uid == 0 || cred->uid == opts->owner)
		return true;
	for (i = 0; i < opts->nallow_uids; i++)
		if (cred->uid == opts->allow_uids[i])
			return true;
	for (i = 0; i < opts->nallow_gids; i++)
		if (cred->gid == opts->allow_gids[i])
			return true;
	return false;
}

/*
 * Accepts the next connection with its peer's credentials: the socket, or
 * -1 with errno.
 */
static int accept_peer(int lfd, struct ucred *cred)
{
	int sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (sock >= 0 && !peer_cred(sock, cred)) {
		/* Never on a unix socket; refused like a stranger if it were. */
		cred->uid = (uid_t)-1;
	}
	return sock;
}

/* Accepts the front-end that waits and closes it, saying why. */
static void refuse_pending(const char *name, int lfd, const char *why)
{
	struct ucred cred;
	int sock = accept_peer(lfd, &cred);

	if (sock < 0)
		return;
	serve_log(name, "front-end refused (pid %d, uid %d, gid %d): %s",
		  (int)cred.pid, (int)cred.uid, (int)cred.gid, why);
	close(sock);
}

/*
 * Serves one front-end; -EINTR when a signal ended it. Other front-ends
 * that connect meanwhile are refused at once.
 */
static int serve_conn(const struct serve_opts *opts, const char *name,
		      int sock, const struct ucred *cred, int lfd,
		      int backend_fd, dev_t backend_dev, int sigfd)
{
	char busy[64];
	struct conn *c;
	struct vu_msg m;
	int ufd, ret;

	serve_log(name, "front-end connected (pid %d, uid %d)", (int)cred->pid,
		  (int)cred->uid);
	snprintf(busy, sizeof(busy), "serving another front-end (pid %d)",
		 (int)cred->pid);
	c = conn_open(opts, name, sock, backend_fd);
	if (!c)
		return 0;
	/* Without events the guest learns of a new size at its next reset. */
	ufd = uevent_open();
	if (ufd < 0)
		serve_log(name, "device events: %s; a resized backend is not announced",
			  strerror(-ufd));
	for (;;) {
		struct pollfd pfd[4] = {
			{ .fd = sock, .events = POLLIN },
			{ .fd = sigfd, .events = POLLIN },
			{ .fd = lfd, .events = POLLIN },
			{ .fd = ufd, .events = POLLIN },
		};

		if (poll(pfd, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			serve_log(name, "poll: %s; disconnecting", strerror(-ret));
			ret = 0;
			break;
		}
		if (pfd[1].revents) {
			ret = -EINTR;
			break;
		}
		if (pfd[3].revents && uevent_changed(ufd, backend_dev))
			conn_backend_changed(c);
		/*
		 * Our front-end's messages and hang-up first: one that closed
		 * and connects again is not refused as a second one.
		 */
		if (!pfd[0].revents) {
			if (pfd[2].revents)
				refuse_pending(name, lfd, busy);
			continue;
		}
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
	if (ufd >= 0)
		close(ufd);
	conn_close(c);
	return ret;
}

/* ------------------------------------------------------------------------
 * Listening
 */

/*
 * A listening socket at @path with @mode and group @gid ((gid_t)-1: ours);
 * a stale socket file is replaced.
 */
static int listen_at(const char *path, unsigned int mode, gid_t gid)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t umask_was;
	int fd, probe, ret;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, HELPER_NAME " serve: %s: socket path too long\n", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, HELPER_NAME " serve: %s: exists and is not a socket\n",
				path);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 &&
		    !connect(probe, (struct sockaddr *)&sun, sizeof(sun))) {
			close(probe);
			fprintf(stderr, HELPER_NAME " serve: %s: in use by another process\n",
				path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, HELPER_NAME " serve: %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* Born owner-only: nobody connects before mode and group are set. */
	umask_was = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(umask_was);
	if (ret || listen(fd, 16)) {
		fprintf(stderr, HELPER_NAME " serve: %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	if ((gid != (gid_t)-1 && chown(path, (uid_t)-1, gid)) ||
	    chmod(path, mode)) {
		fprintf(stderr, HELPER_NAME " serve: %s: setting mode %04o, group %d: %s\n",
			path, mode, (int)gid, strerror(errno));
		close(fd);
		unlink(path);
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
		fprintf(stderr, HELPER_NAME " serve: fd %d: %s\n", fd, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode) ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) ||
	    type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) || !val) {
		fprintf(stderr, HELPER_NAME " serve: fd %d: not a listening stream socket\n",
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

/* ------------------------------------------------------------------------
 * Queues and workers
 */

/*
 * Checks, on a device of its own (@kfd, good for nothing else afterwards),
 * that the kernel serves @o's queues, and settles how many workers serve
 * them: --workers if given, else one per queue up to one per online CPU;
 * one where the kernel cannot give queues workers of their own. Returns -1
 * (reported) when it cannot serve what was asked for.
 */
static int settle_kernel(struct serve_opts *o, int kfd)
{
	bool given = o->workers;
	enum kdev_workers kind;
	const char *why;
	long cpus;
	int ret;

	ret = kdev_set_num_queues(kfd, o->num_queues, &why);
	if (ret) {
		fprintf(stderr, HELPER_NAME " serve: --num-queues %u: %s%s%s\n",
			o->num_queues, why, ret == -ENOTTY ? "" : ": ",
			ret == -ENOTTY ? "" : strerror(-ret));
		return -1;
	}
	if (!given) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		o->workers = cpus < 1 ? 1 :
			     cpus < o->num_queues ? (unsigned int)cpus : o->num_queues;
	}
	if (o->workers == 1)
		return 0;
	ret = kdev_probe_workers(kfd, &kind, &why);
	if (ret) {
		fprintf(stderr, HELPER_NAME " serve: %s: %s: %s\n", KDEV_PATH, why,
			strerror(-ret));
		return -1;
	}
	if (kind == KDEV_WORKERS_PER_QUEUE)
		return 0;
	why = kind == KDEV_WORKERS_ONE ?
	      "this kernel's vhost core has one worker per device (per-queue workers need Linux 6.5 or later)" :
	      "the vhost module runs workers as kernel threads (its parameter fork_from_owner_default is 0), and adds workers only as threads of their owner";
	if (given) {
		fprintf(stderr, HELPER_NAME " serve: --workers %u: %s\n",
			o->workers, why);
		return -1;
	}
	/* The default takes what there is; only the unusual case is told. */
	if (kind == KDEV_WORKERS_KTHREAD)
		fprintf(stderr, HELPER_NAME " serve: one worker for all queues: %s\n",
			why);
	o->workers = 1;
	return 0;
}

/*
 * For an image file @path, served as @fd: " (/dev/loopN)" in @buf for the
 * log, and a log line when the loop device cannot do direct I/O (the file
 * system cannot). "" for a block device.
 */
static void image_loop(const char *path, int fd, char *buf, size_t len)
{
	struct loopdev_status ls;
	struct stat st;

	buf[0] = '\0';
	if (stat(path, &st) || !S_ISREG(st.st_mode) || loopdev_status(fd, &ls))
		return;
	snprintf(buf, len, " (/dev/loop%u)", ls.number);
	if (!ls.direct_io)
		serve_log(path, "no direct I/O on its file system: /dev/loop%u goes through the page cache",
			  ls.number);
}

int serve_run(const struct serve_opts *opts_given)
{
	struct serve_opts settled = *opts_given;
	const struct serve_opts *opts = &settled;
	const char *name = opts->socket ? opts->socket : "listening socket";
	int sigfd, lfd = -1, backend_fd, kfd, ret, status = 1;
	struct signalfd_siginfo si;
	char fdname[32], on_loop[48], polling[40] = "";
	struct stat backend_st;
	const char *why;
	sigset_t old;

	backend_fd = cli_open_backend("serve", opts->backend, opts->read_only,
				      opts->shared);
	if (backend_fd < 0)
		return 1;
	if (fstat(backend_fd, &backend_st)) {
		fprintf(stderr, "vhostblk-setup serve: %s: %s\n", opts->backend,
			strerror(errno));
		goto out_backend;
	}
	image_loop(opts->backend, backend_fd, on_loop, sizeof(on_loop));
	/*
	 * Fail now, not at the first connection, if the module is missing or
	 * cannot serve the queues or workers asked for.
	 */
	kfd = kdev_open(&why);
	if (kfd < 0) {
		fprintf(stderr, HELPER_NAME " serve: %s: %s: %s\n", KDEV_PATH, why,
			strerror(-kfd));
		goto out_backend;
	}
	ret = settle_kernel(&settled, kfd);
	close(kfd);
	if (ret)
		goto out_backend;
	sigfd = signals_fd(&old);
	if (sigfd < 0) {
		fprintf(stderr, HELPER_NAME " serve: signalfd: %s\n", strerror(errno));
		goto out_backend;
	}
	if (opts->socket) {
		lfd = listen_at(opts->socket, opts->socket_mode, opts->socket_gid);
	} else {
		lfd = inherited_listener(opts->listen_fd);
		snprintf(fdname, sizeof(fdname), "fd %d", opts->listen_fd);
		name = fdname;
	}
	if (lfd < 0)
		goto out_signals;
	/* Everything privileged is open: the backend, the socket. */
	if (opts->user) {
		if (cli_drop_privileges("serve", opts->user))
			goto out_listen;
		kfd = kdev_open(&why);
		if (kfd < 0) {
			fprintf(stderr, HELPER_NAME " serve: %s: %s as user %s: %s\n",
				KDEV_PATH, why, opts->user, strerror(-kfd));
			goto out_listen;
		}
		close(kfd);
	}

	if (opts->poll_us)
		snprintf(polling, sizeof(polling), ", busy-polling %u us",
			 opts->poll_us);
	serve_log(name, "serving %s%s, %u queue%s, %u worker%s%s%s", opts->backend,
		  on_loop,
		  opts->num_queues, opts->num_queues == 1 ? "" : "s",
		  opts->workers, opts->workers == 1 ? "" : "s", polling,
		  opts->read_only ? ", read-only" : "");
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = lfd, .events = POLLIN },
			{ .fd = sigfd, .events = POLLIN },
		};
		struct ucred cred;
		int sock;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			serve_log(name, "poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		sock = accept_peer(lfd, &cred);
		if (sock < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == ECONNABORTED)
				continue;
			serve_log(name, "accept: %s", strerror(errno));
			break;
		}
		if (!peer_allowed(opts, &cred)) {
			serve_log(name, "front-end refused (pid %d, uid %d, gid %d): not allowed (see --allow-uid, --allow-gid)",
				  (int)cred.pid, (int)cred.uid, (int)cred.gid);
			close(sock);
			continue;
		}
		if (serve_conn(opts, name, sock, &cred, lfd, backend_fd,
			       backend_st.st_rdev, sigfd) == -EINTR)
			break;
	}
	if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
		serve_log(name, "%s: exiting", strsignal(si.ssi_signo));
		status = 0;
	}
out_listen:
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
