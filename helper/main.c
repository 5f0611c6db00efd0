// SPDX-License-Identifier: GPL-2.0
/*
 * vhostblk-setup: set up /dev/vhost-blk devices for QEMU.
 *
 * Commands:
 *   info         the loaded module's ABI version and offered features
 *   check        what is missing to serve a disk
 *   serve        a vhost-user-blk back-end whose data path is in the kernel
 *   qemu-args    QEMU options for a served disk
 *   libvirt-xml  libvirt domain XML for a served disk
 *   exec         run QEMU with the descriptors of its vhost-blk-pci devices
 *   send-fds     pass those descriptors to a running QEMU, for hot-plug
 *
 * Invoked under a name starting with "vhost-user-blk" (a link), the program
 * is a vhost-user back-end program: the options of `serve` directly, with
 * the conventions --socket-path, --fd, --blk-file, --read-only and
 * --print-capabilities.
 *
 * Exit status: 0 success, 1 the operation failed, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vhost_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "cli.h"
#include "kdev.h"
#include "serve.h"

/* Names under which the program is the vhost-user back-end itself. */
#define VHOST_USER_PREFIX	"vhost-user-blk"

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

int cli_open_backend(const char *path, bool read_only, bool shared)
{
	const char *why;
	int fd;

	fd = kdev_open_backend(path, read_only, shared, &why);
	if (fd < 0)
		fprintf(stderr, HELPER_NAME ": %s: %s%s\n", path,
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

/* ------------------------------------------------------------------------
 * info
 */

struct feature_name {
	unsigned int bit;
	const char *name;
};

/* In bit order. */
static const struct feature_name feature_names[] = {
	{ VIRTIO_BLK_F_SIZE_MAX, "size_max" },
	{ VIRTIO_BLK_F_SEG_MAX, "seg_max" },
	{ VIRTIO_BLK_F_RO, "ro" },
	{ VIRTIO_BLK_F_BLK_SIZE, "blk_size" },
	{ VIRTIO_BLK_F_FLUSH, "flush" },
	{ VIRTIO_BLK_F_TOPOLOGY, "topology" },
	{ VIRTIO_BLK_F_MQ, "mq" },
	{ VIRTIO_BLK_F_DISCARD, "discard" },
	{ VIRTIO_BLK_F_WRITE_ZEROES, "write_zeroes" },
	{ VIRTIO_BLK_F_SECURE_ERASE, "secure_erase" },
	{ VHOST_F_LOG_ALL, "log_all" },
	{ VIRTIO_RING_F_INDIRECT_DESC, "indirect_desc" },
	{ VIRTIO_RING_F_EVENT_IDX, "event_idx" },
	{ VIRTIO_F_VERSION_1, "version_1" },
};

static void print_info(const struct kdev_info *info, bool json)
{
	const char *sep = "";
	size_t i;

	if (json)
		printf("{\"abi_version\": %" PRIu32 ", \"features\": [", info->abi_version);
	else
		printf("abi_version %" PRIu32 "\nfeatures", info->abi_version);
	for (i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++) {
		if (!(info->features & (1ULL << feature_names[i].bit)))
			continue;
		printf(json ? "%s\"%s\"" : "%s %s", sep, feature_names[i].name);
		if (json)
			sep = ", ";
	}
	printf(json ? "]}\n" : "\n");
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kdev_info info;
	const char *why;
	bool json = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			printf("Usage: " HELPER_NAME " info [--json]\n"
			       "\n"
			       "Show the ABI version of the loaded vhost_blk module and the\n"
			       "virtio features its devices offer (--json: one JSON object).\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return unexpected_arg("info", argv[optind]);
	ret = kdev_read_info(&info, &why);
	if (ret) {
		fprintf(stderr, HELPER_NAME ": %s: %s: %s\n", KDEV_PATH, why,
			strerror(-ret));
		return EXIT_FAIL;
	}
	print_info(&info, json);
	return EXIT_OK;
}

/* ------------------------------------------------------------------------
 * serve
 */

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
	       SERVE_DEFAULT_QUEUE_SIZE, VIRTIO_BLK_ID_BYTES);
}

int cmd_serve(const char *prog, int argc, char **argv)
{
	enum { OPT_BACKEND = 256, OPT_SOCKET, OPT_FD, OPT_QUEUES, OPT_QSIZE,
	       OPT_RO, OPT_SHARED, OPT_SERIAL, OPT_CAPS, OPT_SOCKET_MODE,
	       OPT_SOCKET_GROUP, OPT_ALLOW_UID, OPT_ALLOW_GID, OPT_USER,
	       OPT_WORKERS };
	static const struct option opts[] = {
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "blk-file", required_argument, NULL, OPT_BACKEND },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "socket-path", required_argument, NULL, OPT_SOCKET },
		{ "fd", required_argument, NULL, OPT_FD },
		{ "num-queues", required_argument, NULL, OPT_QUEUES },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "queue-size", required_argument, NULL, OPT_QSIZE },
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

/* ------------------------------------------------------------------------
 * Dispatch
 */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " HELPER_NAME " [--help] [--version] COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  info [--json]         show the ABI version and features of " KDEV_PATH "\n"
		"  check [--backend DEV] tell what is missing to serve a disk\n"
		"  serve --backend DEV --socket PATH [--num-queues N] [--workers N]\n"
		"        [--queue-size N] [--read-only] [--shared] [--serial S]\n"
		"        [--socket-mode MODE] [--socket-group GROUP] [--allow-uid USER]\n"
		"        [--allow-gid GROUP] [--user USER]\n"
		"                        serve DEV (a block device or an image file) to\n"
		"                        QEMU as a vhost-user-blk back-end\n"
		"  qemu-args --socket PATH [--num-queues N] [--mem SIZE] [--id ID]\n"
		"                        print the QEMU options for a disk served at PATH\n"
		"  libvirt-xml --socket PATH [--target DEV] [--num-queues N]\n"
		"                        print the libvirt domain XML for it\n"
		"  exec --backend DEV [--read-only] [--shared] [--user USER] -- QEMU ARGS...\n"
		"                        run QEMU with the descriptors of a vhost-blk-pci\n"
		"                        disk (%%v, %%b in ARGS)\n"
		"  send-fds --qmp SOCKET --backend DEV --id ID [--shared] [--device-add]\n"
		"                        pass them to a running QEMU, for hot-plug\n"
		"\n"
		"'" HELPER_NAME " COMMAND --help' describes a command's options.\n"
		"Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prog = argc ? base_name(argv[0]) : HELPER_NAME;
	int c;

	if (!strncmp(prog, VHOST_USER_PREFIX, strlen(VHOST_USER_PREFIX)))
		return cmd_serve(prog, argc, argv);

	/* Options before the command only; the command parses the rest. */
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf(HELPER_NAME " %s (ABI %d)\n", HELPER_VERSION,
			       VHOST_BLK_ABI_VERSION);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	argv += optind;
	argc -= optind;
	optind = 1;
	if (!strcmp(argv[0], "info"))
		return cmd_info(argc, argv);
	if (!strcmp(argv[0], "check"))
		return cmd_check(argc, argv);
	if (!strcmp(argv[0], "serve"))
		return cmd_serve(HELPER_NAME " serve", argc, argv);
	if (!strcmp(argv[0], "qemu-args"))
		return cmd_qemu_args(argc, argv);
	if (!strcmp(argv[0], "libvirt-xml"))
		return cmd_libvirt_xml(argc, argv);
	if (!strcmp(argv[0], "exec"))
		return cmd_exec(argc, argv);
	if (!strcmp(argv[0], "send-fds"))
		return cmd_send_fds(argc, argv);
	fprintf(stderr, HELPER_NAME ": unknown command '%s'; see --help\n", argv[0]);
	return EXIT_USAGE;
}
