/* SPDX-License-Identifier: GPL-2.0 */
/*
 * serve: a vhost-user-blk back-end whose data path is a /dev/vhost-blk
 * device. The helper answers the vhost-user control messages, maps the
 * guest memory the front-end shares, and hands the rings, eventfds and the
 * block device to the kernel, which serves every request from its worker.
 */
#ifndef SERVE_H
#define SERVE_H

#include <stdbool.h>
#include <sys/types.h>

#define SERVE_DEFAULT_QUEUE_SIZE	1024
#define SERVE_MAX_QUEUE_SIZE		32768
#define SERVE_DEFAULT_SOCKET_MODE	0600
/* --poll-us: a second of busy polling per batch is far past any use. */
#define SERVE_MAX_POLL_US		1000000
/* Entries of --allow-uid and of --allow-gid. */
#define SERVE_MAX_ALLOW			16

struct serve_opts {
	const char *backend;	/* block device path */
	const char *socket;	/* socket path to create, or NULL */
	int listen_fd;		/* inherited listening socket, or -1 */
	unsigned int num_queues;
	/*
	 * vhost workers serving the queues, queue i on worker i % workers;
	 * 0: as many as queues, at most one per online CPU, where the kernel
	 * can (serve_run() settles it before the first connection).
	 */
	unsigned int workers;
	unsigned int queue_size;	/* largest SET_VRING_NUM accepted */
	/*
	 * Busy-poll time of every queue, in microseconds (0: none), given to
	 * each kernel device as it is set up (VHOST_SET_VRING_BUSYLOOP_TIMEOUT)
	 */
	unsigned int poll_us;
	bool read_only;
	bool shared;		/* open the backend without O_EXCL */
	const char *serial;	/* NULL: the kernel's default (empty) */
	unsigned int socket_mode;	/* permissions of the --socket file */
	gid_t socket_gid;	/* its group; (gid_t)-1: the helper's */
	/*
	 * Front-ends allowed to connect, by their SO_PEERCRED: root, @owner
	 * (the user serve was started as), and these uids and primary gids.
	 */
	uid_t owner;
	uid_t allow_uids[SERVE_MAX_ALLOW];
	unsigned int nallow_uids;
	gid_t allow_gids[SERVE_MAX_ALLOW];
	unsigned int nallow_gids;
	const char *user;	/* run as this user once all is open, or NULL */
};

/*
 * Serves front-ends one connection at a time until SIGTERM or SIGINT.
 * Prints its log (one line per connection, disconnection and error) on
 * stderr. Returns the exit status: 0 after a signal, 1 when serving could
 * not start.
 */
int serve_run(const struct serve_opts *opts);

#endif /* SERVE_H */
