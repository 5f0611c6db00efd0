// SPDX-License-Identifier: GPL-2.0
/*
 * exec and send-fds: hand QEMU's vhost-blk-pci device (patches/qemu) its
 * privileged descriptors, an open /dev/vhost-blk and an open block device,
 * the way qemu-bridge-helper and libvirt hand a tap and vhost-net.
 *
 *   exec      opens them, substitutes their numbers into a command line
 *             (%v, %b), drops privileges if asked and execs QEMU
 *   send-fds  passes them to a running QEMU over QMP (getfd), for hot-plug,
 *             and can add the device too
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vhost_blk.h>

#include "cli.h"
#include "commands.h"
#include "kdev.h"
#include "qmp.h"

/* Disks one exec can hand over: %v0..%v7 and %b0..%b7. */
#define EXEC_MAX_DISKS	8

struct disk {
	const char *backend;
	bool read_only;
	bool shared;		/* without O_EXCL */
	int vhost_fd;
	int backend_fd;
};

/* Opens a disk's two descriptors; reports why it cannot. */
static int disk_open(const char *cmd, struct disk *d)
{
	const char *why;

	d->backend_fd = cli_open_backend(cmd, d->backend, d->read_only, d->shared);
	if (d->backend_fd < 0)
		return -1;
	d->vhost_fd = kdev_open(&why);
	if (d->vhost_fd < 0) {
		fprintf(stderr, HELPER_NAME " %s: %s: %s: %s\n", cmd, KDEV_PATH,
			why, strerror(-d->vhost_fd));
		close(d->backend_fd);
		return -1;
	}
	return 0;
}

static void disk_close(struct disk *d)
{
	close(d->vhost_fd);
	close(d->backend_fd);
}

/* ------------------------------------------------------------------------
 * exec
 */

static void exec_usage(void)
{
	printf("Usage: " HELPER_NAME " exec [OPTIONS] -- PROGRAM [ARG]...\n"
	       "\n"
	       "Open " KDEV_PATH " (loading the module when needed) and a block\n"
	       "device for each --backend (an image file goes on a loop device of its\n"
	       "own, which goes away when PROGRAM exits), substitute their descriptor\n"
	       "numbers into the arguments and exec PROGRAM (QEMU) with both open:\n"
	       "  %%v, %%b      the first disk's " KDEV_PATH " and block device\n"
	       "  %%vN, %%bN    those of disk N (0..%d), in the order given\n"
	       "  %%%%          a %%\n"
	       "For example: -device vhost-blk-pci,vhostfd=%%v,backendfd=%%b\n"
	       "\n"
	       "Options:\n"
	       "  --backend DEV      a disk on the block device or image file DEV\n"
	       "                     (repeatable)\n"
	       "  --ro-backend DEV   a read-only disk on DEV (opened read-only)\n"
	       "  --read-only        every disk read-only\n"
	       "  --shared           open the block devices without O_EXCL, image\n"
	       "                     files without a lock (the destination of a\n"
	       "                     migration on the same host)\n"
	       "  --user USER        run PROGRAM as USER (and its groups)\n"
	       "  -h, --help         this text\n",
	       EXEC_MAX_DISKS - 1);
}

/*
 * Replaces %v, %b, %vN, %bN and %% in @arg; marks the disks used. NULL (and
 * a usage message) when @arg names a disk that was not given.
 */
static char *substitute(const char *arg, const struct disk *disks,
			unsigned int n, bool used[][2])
{
	/* "%v" (2 bytes) becomes at most 10 digits. */
	size_t len = strlen(arg) * 5 + 1, out = 0;
	char *res = malloc(len);
	unsigned int i;
	int fd;

	if (!res) {
		fprintf(stderr, HELPER_NAME " exec: %s\n", strerror(errno));
		return NULL;
	}
	while (*arg) {
		if (arg[0] != '%' || (arg[1] != 'v' && arg[1] != 'b' && arg[1] != '%')) {
			res[out++] = *arg++;
			continue;
		}
		if (arg[1] == '%') {
			res[out++] = '%';
			arg += 2;
			continue;
		}
		i = isdigit((unsigned char)arg[2]) ? (unsigned int)(arg[2] - '0') : 0;
		if (i >= n) {
			usage_error("exec", "%%%c%c: there is no disk %u (give %u --backend)",
				    arg[1], arg[2], i, i + 1);
			free(res);
			return NULL;
		}
		fd = arg[1] == 'v' ? disks[i].vhost_fd : disks[i].backend_fd;
		used[i][arg[1] == 'b'] = true;
		out += sprintf(res + out, "%d", fd);
		arg += isdigit((unsigned char)arg[2]) ? 3 : 2;
	}
	res[out] = '\0';
	return res;
}

int cmd_exec(int argc, char **argv)
{
	enum { OPT_BACKEND = 256, OPT_RO_BACKEND, OPT_RO, OPT_SHARED, OPT_USER };
	static const struct option opts[] = {
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "ro-backend", required_argument, NULL, OPT_RO_BACKEND },
		{ "read-only", no_argument, NULL, OPT_RO },
		{ "shared", no_argument, NULL, OPT_SHARED },
		{ "user", required_argument, NULL, OPT_USER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct disk disks[EXEC_MAX_DISKS];
	bool used[EXEC_MAX_DISKS][2] = { { false } };
	const char *user = NULL;
	unsigned int n = 0, i, opened = 0;
	bool read_only = false, shared = false;
	char **args;
	int c, a;

	/* "+": the options end at the program's name. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_BACKEND:
		case OPT_RO_BACKEND:
			if (n == EXEC_MAX_DISKS)
				return usage_error("exec", "at most %d disks", EXEC_MAX_DISKS);
			disks[n].backend = optarg;
			disks[n++].read_only = c == OPT_RO_BACKEND;
			break;
		case OPT_RO:
			read_only = true;
			break;
		case OPT_SHARED:
			shared = true;
			break;
		case OPT_USER:
			user = optarg;
			break;
		case 'h':
			exec_usage();
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (!n)
		return usage_error("exec", "--backend is required");
	if (optind == argc)
		return usage_error("exec", "no program to run (give it after --)");

	for (; opened < n; opened++) {
		disks[opened].read_only |= read_only;
		disks[opened].shared = shared;
		if (disk_open("exec", &disks[opened]))
			goto err;
		/* For the program: both survive the exec. */
		fcntl(disks[opened].vhost_fd, F_SETFD, 0);
		fcntl(disks[opened].backend_fd, F_SETFD, 0);
	}

	args = calloc(argc - optind + 1, sizeof(*args));
	if (!args) {
		fprintf(stderr, HELPER_NAME " exec: %s\n", strerror(errno));
		goto err;
	}
	for (a = optind; a < argc; a++) {
		args[a - optind] = substitute(argv[a], disks, n, used);
		if (!args[a - optind])
			goto err_usage;
	}
	for (i = 0; i < n; i++) {
		if (!used[i][0] || !used[i][1]) {
			usage_error("exec", "--backend %s: the command does not use %%v%u and %%b%u",
				    disks[i].backend, i, i);
			goto err_usage;
		}
	}
	if (user && cli_drop_privileges("exec", user))
		goto err;
	execvp(args[0], args);
	fprintf(stderr, HELPER_NAME " exec: %s: %s\n", args[0], strerror(errno));
err:
	for (i = 0; i < opened; i++)
		disk_close(&disks[i]);
	return EXIT_FAIL;
err_usage:
	for (i = 0; i < opened; i++)
		disk_close(&disks[i]);
	return EXIT_USAGE;
}

/* ------------------------------------------------------------------------
 * send-fds
 */

static void send_fds_usage(void)
{
	printf("Usage: " HELPER_NAME " send-fds --qmp SOCKET --backend DEV --id ID\n"
	       "       [--read-only] [--shared] [--device-add [--num-queues N]\n"
	       "       [--queue-size N] [--serial S]]\n"
	       "\n"
	       "Open " KDEV_PATH " and the block device DEV (an image file: a loop\n"
	       "device of its own, gone when QEMU closes it) and pass both to the QEMU\n"
	       "listening on the QMP socket SOCKET (getfd), named ID-vhostfd and\n"
	       "ID-backendfd; print the device properties that use them. A later\n"
	       "device_add on the same QMP socket finds them:\n"
	       "  device_add vhost-blk-pci,id=ID,vhostfd=ID-vhostfd,backendfd=ID-backendfd\n"
	       "\n"
	       "Options:\n"
	       "  --qmp SOCKET     QEMU's QMP unix socket\n"
	       "  --backend DEV    block device or image file of the disk\n"
	       "  --id ID          the device's id; names the descriptors\n"
	       "  --read-only      open DEV read-only and make the disk read-only\n"
	       "  --shared         open DEV without O_EXCL (by default it is exclusive,\n"
	       "                   for as long as QEMU holds it)\n"
	       "  --device-add     add the vhost-blk-pci device too, with:\n"
	       "  --num-queues N   its virtqueues, 1..%d (" KDEV_PATH " gets as many)\n"
	       "  --queue-size N   its virtqueue size, a power of 2 up to 1024\n"
	       "  --serial S       its serial, up to %d characters\n"
	       "  -h, --help       this text\n",
	       VHOST_BLK_MAX_QUEUES, VIRTIO_BLK_ID_BYTES);
}

/* QEMU's rule for ids: a letter, then letters, digits, '-', '.', '_'. */
static bool id_valid(const char *id)
{
	if (!isalpha((unsigned char)*id))
		return false;
	for (; *id; id++) {
		if (!isalnum((unsigned char)*id) && !strchr("-._", *id))
			return false;
	}
	return true;
}

/* A serial is printable ASCII; '"' and '\' need escaping in JSON. */
static bool serial_valid(const char *s)
{
	for (; *s; s++) {
		if (!isprint((unsigned char)*s))
			return false;
	}
	return true;
}

static void json_escape(char *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			*out++ = '\\';
		*out++ = *s;
	}
	*out = '\0';
}

struct send_fds_opts {
	const char *qmp;
	const char *id;
	bool device_add;
	unsigned int num_queues;	/* 0: QEMU's default */
	unsigned int queue_size;	/* 0: QEMU's default */
	const char *serial;
};

static int device_add(struct qmp *qmp, const struct send_fds_opts *o,
		      bool read_only, const char **why)
{
	char cmd[512], serial[2 * VIRTIO_BLK_ID_BYTES + 1] = "";
	int len;

	len = snprintf(cmd, sizeof(cmd),
		       "{\"execute\": \"device_add\", \"arguments\": {"
		       "\"driver\": \"vhost-blk-pci\", \"id\": \"%s\", "
		       "\"vhostfd\": \"%s-vhostfd\", \"backendfd\": \"%s-backendfd\", "
		       "\"read-only\": %s", o->id, o->id, o->id,
		       read_only ? "true" : "false");
	if (o->num_queues)
		len += snprintf(cmd + len, sizeof(cmd) - len, ", \"num-queues\": %u",
				o->num_queues);
	if (o->queue_size)
		len += snprintf(cmd + len, sizeof(cmd) - len, ", \"queue-size\": %u",
				o->queue_size);
	if (o->serial) {
		json_escape(serial, o->serial);
		len += snprintf(cmd + len, sizeof(cmd) - len, ", \"serial\": \"%s\"",
				serial);
	}
	snprintf(cmd + len, sizeof(cmd) - len, "}}");
	return qmp_command(qmp, cmd, -1, why);
}

/* Passes @fd as @id-@what; on failure, closes the ones passed before. */
static int send_fd(struct qmp *qmp, const char *id, const char *what, int fd,
		   const char **why)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"%s-%s\"}}",
		 id, what);
	return qmp_command(qmp, cmd, fd, why);
}

/* Forgets a descriptor passed before; QEMU may have taken it already. */
static void close_fd(struct qmp *qmp, const char *id, const char *what)
{
	const char *why;
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"%s-%s\"}}",
		 id, what);
	qmp_command(qmp, cmd, -1, &why);
}

static int send_fds(const struct send_fds_opts *o, struct disk *d)
{
	const char *why, *step = o->qmp;
	struct qmp qmp;
	int ret;

	ret = qmp_connect(&qmp, o->qmp, &why);
	if (ret)
		goto err;
	step = "getfd";
	ret = send_fd(&qmp, o->id, "vhostfd", d->vhost_fd, &why);
	if (ret)
		goto err_qmp;
	ret = send_fd(&qmp, o->id, "backendfd", d->backend_fd, &why);
	if (ret)
		goto err_vhostfd;
	if (o->device_add) {
		step = "device_add";
		ret = device_add(&qmp, o, d->read_only, &why);
		if (ret)
			goto err_backendfd;
	} else {
		printf("vhostfd=%s-vhostfd,backendfd=%s-backendfd\n", o->id, o->id);
	}
	qmp_close(&qmp);
	return 0;

err_backendfd:
	close_fd(&qmp, o->id, "backendfd");
err_vhostfd:
	close_fd(&qmp, o->id, "vhostfd");
err_qmp:
	qmp_close(&qmp);
err:
	fprintf(stderr, HELPER_NAME " send-fds: %s: %s%s%s\n", step, why,
		ret == -EINVAL ? "" : ": ", ret == -EINVAL ? "" : strerror(-ret));
	return ret;
}

int cmd_send_fds(int argc, char **argv)
{
	enum { OPT_QMP = 256, OPT_BACKEND, OPT_ID, OPT_RO, OPT_SHARED, OPT_ADD,
	       OPT_QUEUES, OPT_QSIZE, OPT_SERIAL };
	static const struct option opts[] = {
		{ "qmp", required_argument, NULL, OPT_QMP },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "id", required_argument, NULL, OPT_ID },
		{ "read-only", no_argument, NULL, OPT_RO },
		{ "shared", no_argument, NULL, OPT_SHARED },
		{ "device-add", no_argument, NULL, OPT_ADD },
		{ "num-queues", required_argument, NULL, OPT_QUEUES },
		{ "queue-size", required_argument, NULL, OPT_QSIZE },
		{ "serial", required_argument, NULL, OPT_SERIAL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct send_fds_opts o = { 0 };
	struct disk d = { 0 };
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_QMP:
			o.qmp = optarg;
			break;
		case OPT_BACKEND:
			d.backend = optarg;
			break;
		case OPT_ID:
			if (!id_valid(optarg) || strlen(optarg) > 64)
				return usage_error("send-fds", "--id: '%s' is not a QEMU id (a letter, then up to 63 letters, digits, '-', '.', '_')",
						   optarg);
			o.id = optarg;
			break;
		case OPT_RO:
			d.read_only = true;
			break;
		case OPT_SHARED:
			d.shared = true;
			break;
		case OPT_ADD:
			o.device_add = true;
			break;
		case OPT_QUEUES:
			if (parse_uint("send-fds", "--num-queues", optarg, 1,
				       VHOST_BLK_MAX_QUEUES, &o.num_queues))
				return EXIT_USAGE;
			break;
		case OPT_QSIZE:
			if (parse_uint("send-fds", "--queue-size", optarg, 1, 1024,
				       &o.queue_size))
				return EXIT_USAGE;
			if (o.queue_size & (o.queue_size - 1))
				return usage_error("send-fds", "--queue-size: %u is not a power of 2",
						   o.queue_size);
			break;
		case OPT_SERIAL:
			if (strlen(optarg) > VIRTIO_BLK_ID_BYTES || !serial_valid(optarg))
				return usage_error("send-fds", "--serial: '%s' is not up to %d printable characters",
						   optarg, VIRTIO_BLK_ID_BYTES);
			o.serial = optarg;
			break;
		case 'h':
			send_fds_usage();
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return unexpected_arg("send-fds", argv[optind]);
	if (!o.qmp || !d.backend || !o.id)
		return usage_error("send-fds", "--qmp, --backend and --id are required");
	if (!o.device_add && (o.num_queues || o.queue_size || o.serial))
		return usage_error("send-fds", "--num-queues, --queue-size and --serial go with --device-add");

	if (disk_open("send-fds", &d))
		return EXIT_FAIL;
	/*
	 * QEMU becomes the owner later; the device gets the queues of the
	 * device_add before (more than the default 16 need it, fewer cost
	 * less memory).
	 */
	if (o.num_queues) {
		const char *why;

		ret = kdev_set_num_queues(d.vhost_fd, o.num_queues, &why);
		if (ret) {
			fprintf(stderr, HELPER_NAME " send-fds: --num-queues %u: %s%s%s\n",
				o.num_queues, why, ret == -ENOTTY ? "" : ": ",
				ret == -ENOTTY ? "" : strerror(-ret));
			disk_close(&d);
			return EXIT_FAIL;
		}
	}
	ret = send_fds(&o, &d);
	/* QEMU holds its own copies now. */
	disk_close(&d);
	return ret ? EXIT_FAIL : EXIT_OK;
}
