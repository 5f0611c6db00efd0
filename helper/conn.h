/* SPDX-License-Identifier: GPL-2.0 */
/*
 * conn: the state of one vhost-user front-end connection and its kernel
 * device, and the handling of each control message.
 */
#ifndef CONN_H
#define CONN_H

#include "serve.h"
#include "vu_msg.h"

struct conn;

/*
 * Sets up a connection on @sock: a fresh /dev/vhost-blk owned by this
 * process, with the queues, workers, busy-poll time, serial and read-only
 * flag of @opts and
 * the backend @backend_fd (kept by the caller). NULL when that failed: logged, @sock
 * closed. @name prefixes the log lines.
 */
struct conn *conn_open(const struct serve_opts *opts, const char *name,
		       int sock, int backend_fd);

/*
 * Handles one message and closes its descriptors. Returns 0 to go on, or a
 * negative errno when the connection must close (logged already).
 */
int conn_handle(struct conn *c, struct vu_msg *m);

/*
 * The backend may have changed size (a uevent said so): when its capacity
 * differs from what the front-end last read, tells it with the back-end
 * request CONFIG_CHANGE_MSG, after which QEMU reads the config again and
 * interrupts the guest. Logs what it did.
 */
void conn_backend_changed(struct conn *c);

/*
 * Stops the device (every request in flight completes), closes it, unmaps
 * the guest memory and the log, closes the socket and frees @c.
 */
void conn_close(struct conn *c);

#endif /* CONN_H */
