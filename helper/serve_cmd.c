// SPDX-License-Identifier: GPL-2.0
/*
 * serve's command line: its options into a struct serve_opts for
 * serve_run() (serve.c).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vhost_blk.h>

#include "cli.h"
#include "commands.h"
#include "serve.h"

/* A user name or number; a usage message when it is neither. */
static int parse_user(const char *cmd, const char *opt, const char *arg,
		      uid_t *uid)
{
	struct passwd *pw = getpwnam(arg);
	unsigned int v;
	char *end;

	if (pw) {
		*uid = pw->pw_uid;
		return 0;
	}
	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v == (unsigned int)-1) {
		usage_error(cmd, "%s: '%s' is no user name or number", opt, arg);
		return -1;
	}
	*uid = v;
	return 0;
}

/* A group name or number; a usage message when it is neither. */
static int parse_group(const char *cmd, const char *opt, const char *arg,
		       gid_t *gid)
{
	struct group *gr = getgrnam(arg);
	unsigned int v;
	char *end;

	if (gr) {
		*gid = gr->gr_gid;
		return 0;
	}
	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v == (unsigned int)-1) {
		usage_error(cmd, "%s: '%s' is no group name or number", opt, arg);
		return -1;
	}
	*gid = v;
	return 0;
}

static void serve_usage(const char *prog)
{
	printf("Usage: %s --backend DEV (--socket PATH | --fd N) [OPTIONS]\n"
	       "\n"
	       "Serve the block device DEV as a vhost-user-blk back-end (for QEMU's\n"
	       "vhost-user-blk-pci), one front-end at a time; the requests are served\n"
	       "by the kernel (/dev/vhost-blk). Stops on SIGTERM or SIGINT.\n"
	       "DEV may be a raw image file: serve puts it on a loop device of its own\n"
	       "(direct I/O where the file system can), which goes away with serve.\n"
	       "\n"
	       "Options:\n"
	       "  --backend DEV            block device or image file to serve\n"
	       "                           (also --blk-file=DEV)\n"
	       "  --socket PATH            unix socket to create and listen on\n"
	       "                           (also --socket-path=PATH)\n"
	       "  --fd N                   listen on the inherited socket N instead\n"
	       "  --num-queues N           virtqueues offered, 1..%d (default 1)\n"
	       "  --workers N              kernel worker threads for the queues, up to\n"
	       "                           --num-queues; queue i runs on worker i %% N\n"
	       "                           (default: one per queue, at most one per\n"
	       "                           online CPU; more than one needs Linux 6.5)\n"
	       "  --queue-size N           largest virtqueue size accepted, a power of 2\n"
	       "                           up to %d (default %d)\n"
	       "  --poll-us N              busy-poll each queue for up to N microseconds\n"
	       "                           after serving a batch, 0..%d (default 0:\n"
	       "                           no polling; costs host CPU while the guest\n"
	       "                           does I/O)\n"
	       "  --read-only              serve read-only (DEV is opened read-only)\n"
	       "  --shared                 do not open DEV exclusively (O_EXCL; an image\n"
	       "                           file: do not lock it): another program or a\n"
	       "                           mount may use it at the same time\n"
	       "  --serial S               serial number the guest reads, up to %d\n"
	       "                           characters\n"
	       "  --socket-mode MODE       permissions of the --socket file, octal\n"
	       "                           (default 0600)\n"
	       "  --socket-group GROUP     group of the --socket file (default: root's)\n"
	       "  --allow-uid USER         let USER's front-ends connect (repeatable; root\n"
	       "                           and the user serve runs as always may)\n"
	       "  --allow-gid GROUP        let front-ends whose primary group is GROUP\n"
	       "                           connect (repeatable)\n"
	       "  --user USER              become USER once DEV and the socket are open\n"
	       "  --print-capabilities     print the vhost-user capabilities and exit\n"
	       "  -h, --help               this text\n",
	       prog, VHOST_BLK_MAX_QUEUES, SERVE_MAX_QUEUE_SIZE,
	       SERVE_DEFAULT_QUEUE_SIZE, SERVE_MAX_POLL_US, VIRTIO_BLK_ID_BYTES);
}

int cmd_serve(const char *prog, int argc, char **argv)
{
	enum { OPT_BACKEND = 256, OPT_SOCKET, OPT_FD, OPT_QUEUES, OPT_QSIZE,
	       OPT_RO, OPT_SHARED, OPT_SERIAL, OPT_CAPS, OPT_SOCKET_MODE,
	       OPT_SOCKET_GROUP, OPT_ALLOW_UID, OPT_ALLOW_GID, OPT_USER,
	       OPT_WORKERS, OPT_POLL_US };
	static const struct option opts[] = {
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "blk-file", required_argument, NULL, OPT_BACKEND },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "socket-path", required_argument, NULL, OPT_SOCKET },
		{ "fd", required_argument, NULL, OPT_FD },
		{ "num-queues", required_argument, NULL, OPT_QUEUES },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "queue-size", required_argument, NULL, OPT_QSIZE },
		{ "poll-us", required_argument, NULL, OPT_POLL_US },
		{ "read-only", no_argument, NULL, OPT_RO },
		{ "shared", no_argument, NULL, OPT_SHARED },
		{ "serial", required_argument, NULL, OPT_SERIAL },
		{ "print-capabilities", no_argument, NULL, OPT_CAPS },
		{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
		{ "socket-group", required_argument, NULL, OPT_SOCKET_GROUP },
		{ "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
		{ "allow-gid", required_argument, NULL, OPT_ALLOW_GID },
		{ "user", required_argument, NULL, OPT_USER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_opts o = {
		.listen_fd = -1,
		.num_queues = 1,
		.queue_size = SERVE_DEFAULT_QUEUE_SIZE,
		.socket_mode = SERVE_DEFAULT_SOCKET_MODE,
		.socket_gid = (gid_t)-1,
		.owner = getuid(),
	};
	bool socket_opts = false;
	unsigned int fd;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_BACKEND:
			o.backend = optarg;
			break;
		case OPT_SOCKET:
			o.socket = optarg;
			break;
		case OPT_FD:
			if (parse_uint("serve", "--fd", optarg, 0, 1 << 30, &fd))
				return EXIT_USAGE;
			o.listen_fd = fd;
			break;
		case OPT_QUEUES:
			if (parse_uint("serve", "--num-queues", optarg, 1,
				       VHOST_BLK_MAX_QUEUES, &o.num_queues))
				return EXIT_USAGE;
			break;
		case OPT_WORKERS:
			if (parse_uint("serve", "--workers", optarg, 1,
				       VHOST_BLK_MAX_QUEUES, &o.workers))
				return EXIT_USAGE;
			break;
		case OPT_QSIZE:
			if (parse_uint("serve", "--queue-size", optarg, 1,
				       SERVE_MAX_QUEUE_SIZE, &o.queue_size))
				return EXIT_USAGE;
			if (o.queue_size & (o.queue_size - 1))
				return usage_error("serve", "--queue-size: %u is not a power of 2",
						   o.queue_size);
			break;
		case OPT_POLL_US:
			if (parse_uint("serve", "--poll-us", optarg, 0,
				       SERVE_MAX_POLL_US, &o.poll_us))
				return EXIT_USAGE;
			break;
		case OPT_RO:
			o.read_only = true;
			break;
		case OPT_SHARED:
			o.shared = true;
			break;
		case OPT_SERIAL:
			if (strlen(optarg) > VIRTIO_BLK_ID_BYTES)
				return usage_error("serve", "--serial: '%s' is longer than %d characters",
						   optarg, VIRTIO_BLK_ID_BYTES);
			o.serial = optarg;
			break;
		case OPT_CAPS:
			printf("{\"type\": \"block\", \"features\": [\"blk-file\", \"read-only\"]}\n");
			return EXIT_OK;
		case OPT_SOCKET_MODE:
			errno = 0;
			o.socket_mode = strtoul(optarg, &end, 8);
			if (errno || end == optarg || *end || optarg[0] == '-' ||
			    o.socket_mode > 0777)
				return usage_error("serve", "--socket-mode: '%s' is not an octal mode up to 0777",
						   optarg);
			socket_opts = true;
			break;
		case OPT_SOCKET_GROUP:
			if (parse_group("serve", "--socket-group", optarg, &o.socket_gid))
				return EXIT_USAGE;
			socket_opts = true;
			break;
		case OPT_ALLOW_UID:
			if (o.nallow_uids == SERVE_MAX_ALLOW)
				return usage_error("serve", "--allow-uid: at most %d", SERVE_MAX_ALLOW);
			if (parse_user("serve", "--allow-uid", optarg,
				       &o.allow_uids[o.nallow_uids++]))
				return EXIT_USAGE;
			break;
		case OPT_ALLOW_GID:
			if (o.nallow_gids == SERVE_MAX_ALLOW)
				return usage_error("serve", "--allow-gid: at most %d", SERVE_MAX_ALLOW);
			if (parse_group("serve", "--allow-gid", optarg,
					&o.allow_gids[o.nallow_gids++]))
				return EXIT_USAGE;
			break;
		case OPT_USER:
			o.user = optarg;
			break;
		case 'h':
			serve_usage(prog);
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return unexpected_arg("serve", argv[optind]);
	if (!o.backend)
		return usage_error("serve", "--backend (or --blk-file) is required");
	if (!o.socket == (o.listen_fd < 0))
		return usage_error("serve", "give one of --socket (--socket-path) and --fd");
	if (socket_opts && !o.socket)
		return usage_error("serve", "--socket-mode and --socket-group go with --socket");
	if (o.workers > o.num_queues)
		return usage_error("serve", "--workers %u: more workers than the %u queue%s of --num-queues",
				   o.workers, o.num_queues, o.num_queues == 1 ? "" : "s");
	return serve_run(&o);
}
