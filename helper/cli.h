/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What vhostblk-setup's commands share (cli.c): exit codes, option value
 * parsing, usage errors, opening the block device to serve, dropping
 * privileges. The commands themselves are in commands.h.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>

#define HELPER_NAME	"vhostblk-setup"
#define HELPER_VERSION	"0.2"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Option values are parsed into these; a bad value is a usage error. */
int parse_uint(const char *cmd, const char *opt, const char *arg,
	       unsigned int min, unsigned int max, unsigned int *val);
/* Reports an unexpected argument after the options; EXIT_USAGE. */
int unexpected_arg(const char *cmd, const char *arg);
/* Reports a usage error of @cmd; EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Opens the block device to serve (see kdev_open_backend()), exclusively
 * unless @shared; reports why it cannot as "@cmd: @path: reason", with the
 * hint to use --read-only where that helps.
 */
int cli_open_backend(const char *cmd, const char *path, bool read_only,
		     bool shared);

/*
 * Becomes @user for good: its supplementary groups, gid and uid (real,
 * effective and saved), then checks that every id is the user's and that
 * root cannot be regained. Reports a failure as "@cmd: --user USER: ...";
 * -1 then, and the caller must not go on.
 */
int cli_drop_privileges(const char *cmd, const char *user);

/*
 * Why the vhost_blk netlink family cannot be asked, from an nlclient.h
 * -errno: "netlink family vhost_blk: reason (what to do)", in @buf.
 */
const char *cli_nl_reason(int err, char *buf, unsigned int len);
/* Reports it: "vhostblk-setup @cmd: netlink family vhost_blk: ..."; EXIT_FAIL. */
int cli_nl_error(const char *cmd, int err);

/* @s as a JSON string, quoted and escaped, on standard output. */
void cli_json_string(const char *s);

/* One log line of serve on stderr: "vhostblk-setup serve: @name: message". */
void serve_log(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* CLI_H */
