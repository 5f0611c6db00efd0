// SPDX-License-Identifier: GPL-2.0
/*
 * vhostblk-setup: set up /dev/vhost-blk devices for QEMU.
 *
 * Commands:
 *   info [--json]   the loaded module's ABI version and offered features
 *
 * Exit status: 0 success, 1 the operation failed, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vhost_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#define HELPER_VERSION	"0.1"
#define VHOST_BLK_DEV	"/dev/vhost-blk"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

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

struct device_info {
	uint32_t abi_version;
	uint64_t features;
};

/* Returns 0 or -1 with errno set; *what names the step that failed. */
static int read_device_info(const char *path, struct device_info *info,
			    const char **what)
{
	int fd, saved;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		*what = "open";
		return -1;
	}
	*what = "VHOST_BLK_GET_ABI_VERSION";
	if (ioctl(fd, VHOST_BLK_GET_ABI_VERSION, &info->abi_version) < 0)
		goto fail;
	*what = "VHOST_GET_FEATURES";
	if (ioctl(fd, VHOST_GET_FEATURES, &info->features) < 0)
		goto fail;
	close(fd);
	return 0;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

static void print_info(const struct device_info *info, bool json)
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

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: vhostblk-setup [--help] [--version] COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  info [--json]   show the ABI version and features of " VHOST_BLK_DEV "\n"
		"\n"
		"Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct device_info info;
	const char *what;
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			printf("Usage: vhostblk-setup info [--json]\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vhostblk-setup info: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (read_device_info(VHOST_BLK_DEV, &info, &what) < 0) {
		fprintf(stderr, "vhostblk-setup: %s: %s: %s\n", VHOST_BLK_DEV, what, strerror(errno));
		return EXIT_FAIL;
	}
	print_info(&info, json);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	/* Options before the command only; the command parses the rest. */
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("vhostblk-setup %s (ABI %d)\n", HELPER_VERSION, VHOST_BLK_ABI_VERSION);
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
	fprintf(stderr, "vhostblk-setup: unknown command '%s'; see --help\n", argv[0]);
	return EXIT_USAGE;
}
