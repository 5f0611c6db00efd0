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

#define SERVE_DEFAULT_QUEUE_SIZE	1024
#define SERVE_MAX_QUEUE_SIZE		32768

struct serve_opts {
	const char *backend;	/* block device path */
	const char *socket;	/* socket path to create, or NULL */
	int listen_fd;		/* inherited listening socket, or -1 */
	unsigned int num_queues;
	unsigned int queue_size;	/* largest SET_VRING_NUM accepted */
	bool read_only;
	bool shared;		/* open the backend without O_EXCL */
	const char *serial;	/* NULL: the kernel's default (empty) */
};

/*
 * Serves front-ends one connection at a time until SIGTERM or SIGINT.
 * Prints its log (one line per connection, disconnection and error) on
 * stderr. Returns the exit status: 0 after a signal, 1 when serving could
 * not start.
 */
int serve_run(const struct serve_opts *opts);

/* One log line on stderr: "vhostblk-setup: @name: message". */
void serve_log(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* SERVE_H */
