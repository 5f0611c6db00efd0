/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A minimal QMP client: enough to pass descriptors to a running QEMU
 * (getfd) and to add a device that uses them. One command at a time; the
 * replies are matched by shape, not parsed as JSON in full. Functions
 * return 0 or a negative errno and set *why (a static string, or the
 * "desc" of QEMU's error copied into the connection); none prints.
 */
#ifndef QMP_H
#define QMP_H

struct qmp {
	int fd;
	/* Bytes received and not consumed yet, up to a whole line. */
	char buf[4096];
	size_t len;
	/* The "desc" of the last error reply. */
	char error[256];
};

/* Connects to QEMU's QMP socket @path and leaves the greeting mode. */
int qmp_connect(struct qmp *qmp, const char *path, const char **why);

/*
 * Runs @command, a JSON object, passing descriptor @fd (or none for -1)
 * along with it; waits for its reply, skipping events.
 */
int qmp_command(struct qmp *qmp, const char *command, int fd,
		const char **why);

void qmp_close(struct qmp *qmp);

#endif /* QMP_H */
