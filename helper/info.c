// SPDX-License-Identifier: GPL-2.0
/*
 * info: the loaded module's ABI version and the virtio features its
 * devices offer.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vhost_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "cli.h"
#include "commands.h"
#include "kdev.h"
#include "nlclient.h"

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

/*
 * What a device offers only with a backend, when its block device supports
 * them (read-only: a read-only device or disk); VHOST_BLK_BACKEND_FEATURES
 * in kernel/main.c. A new device has none, so info lists them apart.
 */
#define BACKEND_FEATURES	((1ULL << VIRTIO_BLK_F_RO) | \
				 (1ULL << VIRTIO_BLK_F_DISCARD) | \
				 (1ULL << VIRTIO_BLK_F_WRITE_ZEROES) | \
				 (1ULL << VIRTIO_BLK_F_SECURE_ERASE))

/* The names of @features' bits in a list: ' ' or JSON separated. */
static void print_features(uint64_t features, bool json)
{
	const char *sep = "";
	size_t i;

	for (i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++) {
		if (!(features & (1ULL << feature_names[i].bit)))
			continue;
		printf(json ? "%s\"%s\"" : "%s %s", sep, feature_names[i].name);
		if (json)
			sep = ", ";
	}
}

/*
 * The open devices and the running ones (running or queue-error), from the
 * netlink family: 0, or its -errno.
 */
static int count_devices(unsigned int *open, unsigned int *running)
{
	struct nlc_dev *devs;
	struct nlc *nlc;
	int i, n;

	n = nlc_open(&nlc);
	if (n)
		return n;
	n = nlc_dev_dump(nlc, &devs);
	nlc_close(nlc);
	if (n < 0)
		return n;
	*open = n;
	*running = 0;
	for (i = 0; i < n; i++)
		if (devs[i].state == VHOST_BLK_STATE_RUNNING ||
		    devs[i].state == VHOST_BLK_STATE_QUEUE_ERROR)
			(*running)++;
	free(devs);
	return 0;
}

/* "devices N open, M running", or why they cannot be counted. */
static void print_devices(bool json)
{
	unsigned int open, running;
	char why[256];
	int ret;

	ret = count_devices(&open, &running);
	if (!ret) {
		printf(json ? ", \"devices\": {\"open\": %u, \"running\": %u}" :
			      "devices %u open, %u running\n", open, running);
		return;
	}
	cli_nl_reason(ret, why, sizeof(why));
	if (json) {
		printf(", \"devices\": null, \"devices_error\": ");
		cli_json_string(why);
	} else {
		printf("devices unknown: %s\n", why);
	}
}

static void print_info(const struct kdev_info *info, bool json)
{
	uint64_t backend = BACKEND_FEATURES & ~info->features;

	if (json)
		printf("{\"abi_version\": %" PRIu32 ", \"features\": [", info->abi_version);
	else
		printf("abi_version %" PRIu32 "\nfeatures", info->abi_version);
	print_features(info->features, json);
	if (json) {
		printf("], \"backend_features\": [");
		print_features(backend, json);
		printf("]");
		print_devices(json);
		printf("}\n");
		return;
	}
	printf("\nbackend_features");
	print_features(backend, json);
	printf(" (per disk, when its block device supports them; ro: a read-only disk)\n");
	print_devices(json);
}

/* Why KDEV_PATH is missing, and what to do: one line. */
static void report_missing(void)
{
	switch (kdev_module_state(NULL, 0)) {
	case KDEV_MODULE_LOADABLE:
		fprintf(stderr, HELPER_NAME " info: " KDEV_PATH ": missing: module "
			KDEV_MODULE " is not loaded (modprobe " KDEV_MODULE ")\n");
		break;
	case KDEV_MODULE_MISSING:
		fprintf(stderr, HELPER_NAME " info: " KDEV_PATH ": missing: module "
			KDEV_MODULE " is not installed for this kernel (make install, then modprobe "
			KDEV_MODULE ")\n");
		break;
	case KDEV_MODULE_LOADED:
		fprintf(stderr, HELPER_NAME " info: " KDEV_PATH ": missing although module "
			KDEV_MODULE " is loaded (is devtmpfs mounted?)\n");
		break;
	}
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
			       "Show the ABI version of the loaded vhost_blk module, the virtio\n"
			       "features its devices offer, and those a device offers only with a\n"
			       "backend whose block device supports them, and how many devices\n"
			       "are open and running (from the netlink family, as root; otherwise\n"
			       "why not) (--json: one JSON object). Does not load the module.\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return unexpected_arg("info", argv[optind]);
	ret = kdev_read_info(&info, &why);
	if (ret == -ENOENT) {
		report_missing();
		return EXIT_FAIL;
	}
	if (ret) {
		fprintf(stderr, HELPER_NAME " info: %s: %s: %s\n", KDEV_PATH, why,
			strerror(-ret));
		return EXIT_FAIL;
	}
	print_info(&info, json);
	return EXIT_OK;
}
