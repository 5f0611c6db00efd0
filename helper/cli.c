// SPDX-License-Identifier: GPL-2.0
/*
 * What every command shares: parsing option values, reporting usage
 * errors, opening the block device to serve and dropping privileges. See
 * cli.h.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kdev.h"

int parse_uint(const char *cmd, const char *opt, const char *arg,
	       unsigned int min, unsigned int max, unsigned int *val)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < min || v > max) {
		fprintf(stderr, HELPER_NAME " %s: %s: '%s' is not a number in %u..%u\n",
			cmd, opt, arg, min, max);
		return -1;
	}
	*val = v;
	return 0;
}

int unexpected_arg(const char *cmd, const char *arg)
{
	fprintf(stderr, HELPER_NAME " %s: unexpected argument '%s'\n", cmd, arg);
	return EXIT_USAGE;
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, HELPER_NAME " %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

int cli_open_backend(const char *cmd, const char *path, bool read_only,
		     bool shared)
{
	const char *why;
	int fd;

	fd = kdev_open_backend(path, read_only, shared, &why);
	if (fd < 0)
		fprintf(stderr, HELPER_NAME " %s: %s: %s%s\n", cmd, path,
			why ? why : strerror(-fd),
			fd == -EROFS || (fd == -EACCES && !why) ?
			" (serve a read-only device with --read-only)" : "");
	return fd;
}

int cli_drop_privileges(const char *cmd, const char *user)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	struct passwd *pw;
	uid_t uid;
	gid_t gid;

	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		fprintf(stderr, HELPER_NAME " %s: --user %s: %s\n", cmd, user,
			errno ? strerror(errno) : "no such user");
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (initgroups(pw->pw_name, gid) || setresgid(gid, gid, gid) ||
	    setresuid(uid, uid, uid)) {
		fprintf(stderr, HELPER_NAME " %s: --user %s: %s\n", cmd, user,
			strerror(errno));
		return -1;
	}
	if (getresuid(&ruid, &euid, &suid) || getresgid(&rgid, &egid, &sgid) ||
	    ruid != uid || euid != uid || suid != uid ||
	    rgid != gid || egid != gid || sgid != gid ||
	    (uid != 0 && (!setuid(0) || !seteuid(0)))) {
		fprintf(stderr, HELPER_NAME " %s: --user %s: privileges were not dropped\n",
			cmd, user);
		return -1;
	}
	return 0;
}

const char *cli_nl_reason(int err, char *buf, unsigned int len)
{
	const char *family = "netlink family " KDEV_MODULE;

	if (err == -ENOENT) {
		switch (kdev_module_state(NULL, 0)) {
		case KDEV_MODULE_LOADABLE:
			snprintf(buf, len, "%s: missing: module " KDEV_MODULE
				 " is not loaded (modprobe " KDEV_MODULE ")", family);
			break;
		case KDEV_MODULE_MISSING:
			snprintf(buf, len, "%s: missing: module " KDEV_MODULE
				 " is not installed for this kernel (make install, then modprobe "
				 KDEV_MODULE ")", family);
			break;
		case KDEV_MODULE_LOADED:
			snprintf(buf, len, "%s: missing although module " KDEV_MODULE
				 " is loaded (a version without it?)", family);
			break;
		}
	} else if (err == -EPERM) {
		snprintf(buf, len, "%s: %s (needs root or CAP_NET_ADMIN)", family,
			 strerror(-err));
	} else {
		snprintf(buf, len, "%s: %s", family, strerror(-err));
	}
	return buf;
}

int cli_nl_error(const char *cmd, int err)
{
	char why[256];

	fprintf(stderr, HELPER_NAME " %s: %s\n", cmd, cli_nl_reason(err, why, sizeof(why)));
	return EXIT_FAIL;
}

void cli_json_string(const char *s)
{
	const unsigned char *p;

	putchar('"');
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

void serve_log(const char *name, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, HELPER_NAME " serve: %s: %s\n", name, line);
}
