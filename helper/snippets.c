// SPDX-License-Identifier: GPL-2.0
/*
 * qemu-args and libvirt-xml: how to connect QEMU or a libvirt domain to a
 * disk that `serve` exports at a socket.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <linux/vhost_blk.h>

#include "cli.h"

/* A QEMU option value: commas double. */
static void print_qemu_value(const char *s)
{
	for (; *s; s++) {
		if (*s == ',')
			putchar(',');
		putchar(*s);
	}
}

/* Whether @s must be quoted for a POSIX shell. */
static bool needs_quotes(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("/._-+:=,@%", *s))
			return true;
	return false;
}

/* "-chardev socket,...,path=P,..." as one shell word, quoted if needed. */
static void print_chardev(const char *id, const char *path)
{
	bool quote = needs_quotes(path);

	printf(" -chardev %ssocket,id=%s,path=", quote ? "'" : "", id);
	for (; *path; path++) {
		if (*path == ',')
			putchar(',');
		if (quote && *path == '\'')
			fputs("'\\'", stdout);
		putchar(*path);
	}
	printf(",reconnect-ms=1000%s", quote ? "'" : "");
}

/* QEMU sizes: a number with an optional K, M, G or T suffix. */
static bool valid_size(const char *s)
{
	size_t n = strspn(s, "0123456789");

	if (!n || strspn(s, "0") == n)
		return false;
	return !s[n] || (strchr("KMGTkmgt", s[n]) && !s[n + 1]);
}

static bool valid_id(const char *s)
{
	size_t n = strlen(s);

	return n && isalpha((unsigned char)s[0]) &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") == n;
}

int cmd_qemu_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "num-queues", required_argument, NULL, 'q' },
		{ "mem", required_argument, NULL, 'm' },
		{ "id", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *mem = "1G", *id = "vhostblk0";
	unsigned int queues = 1;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'q':
			if (parse_uint("qemu-args", "--num-queues", optarg, 1,
				       VHOST_BLK_MAX_QUEUES, &queues))
				return EXIT_USAGE;
			break;
		case 'm':
			if (!valid_size(optarg))
				return usage_error("qemu-args", "--mem: '%s' is not a size like 4G",
						   optarg);
			mem = optarg;
			break;
		case 'i':
			if (!valid_id(optarg))
				return usage_error("qemu-args", "--id: '%s' is not a QEMU id",
						   optarg);
			id = optarg;
			break;
		case 'h':
			printf("Usage: " HELPER_NAME " qemu-args --socket PATH [--num-queues N] [--mem SIZE]\n"
			       "       [--id ID]\n"
			       "\n"
			       "Print, on one line, the QEMU options that connect a vhost-user-blk-pci\n"
			       "disk to a back-end serving at PATH: guest RAM as a shared memfd of\n"
			       "SIZE (default 1G; it must equal -m), a socket chardev that reconnects,\n"
			       "and the device with N queues (default 1; at most the --num-queues of\n"
			       "serve). ID (default vhostblk0) names the chardev and the device; for a\n"
			       "second disk use another ID and only its -chardev and -device.\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return unexpected_arg("qemu-args", argv[optind]);
	if (!sock)
		return usage_error("qemu-args", "--socket is required");
	printf("-object memory-backend-memfd,id=mem,size=%s,share=on"
	       " -machine memory-backend=mem", mem);
	print_chardev(id, sock);
	printf(" -device vhost-user-blk-pci,id=%s,chardev=", id);
	print_qemu_value(id);
	printf(",num-queues=%u\n", queues);
	return EXIT_OK;
}

static void print_xml_attr(const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", stdout);
			break;
		case '<':
			fputs("&lt;", stdout);
			break;
		case '>':
			fputs("&gt;", stdout);
			break;
		case '\'':
			fputs("&apos;", stdout);
			break;
		case '"':
			fputs("&quot;", stdout);
			break;
		default:
			putchar(*s);
		}
	}
}

static bool valid_target(const char *s)
{
	size_t n = strlen(s);

	return n > 2 && !strncmp(s, "vd", 2) &&
	       strspn(s + 2, "abcdefghijklmnopqrstuvwxyz") == n - 2;
}

int cmd_libvirt_xml(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "target", required_argument, NULL, 't' },
		{ "num-queues", required_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *target = "vdb";
	unsigned int queues = 1;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 't':
			if (!valid_target(optarg))
				return usage_error("libvirt-xml", "--target: '%s' is not a virtio disk name like vdb",
						   optarg);
			target = optarg;
			break;
		case 'q':
			if (parse_uint("libvirt-xml", "--num-queues", optarg, 1,
				       VHOST_BLK_MAX_QUEUES, &queues))
				return EXIT_USAGE;
			break;
		case 'h':
			printf("Usage: " HELPER_NAME " libvirt-xml --socket PATH [--target DEV] [--num-queues N]\n"
			       "\n"
			       "Print the libvirt domain XML for a disk served at PATH: the\n"
			       "<memoryBacking> element the domain needs (shared memfd guest RAM)\n"
			       "and the <disk type='vhostuser'> element, guest name DEV (default\n"
			       "vdb), N queues (default 1).\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return unexpected_arg("libvirt-xml", argv[optind]);
	if (!sock)
		return usage_error("libvirt-xml", "--socket is required");
	printf("<!-- in <domain>: guest memory the back-end can map -->\n"
	       "<memoryBacking>\n"
	       "  <source type='memfd'/>\n"
	       "  <access mode='shared'/>\n"
	       "</memoryBacking>\n"
	       "<!-- in <devices> -->\n"
	       "<disk type='vhostuser' device='disk'>\n");
	/*
	 * Always explicit: without queues, QEMU gives the device one queue per
	 * vCPU, more than a disk served with fewer queues offers, and the
	 * domain does not start.
	 */
	printf("  <driver name='qemu' type='raw' queues='%u'/>\n", queues);
	printf("  <source type='unix' path='");
	print_xml_attr(sock);
	printf("'>\n"
	       "    <reconnect enabled='yes' timeout='10'/>\n"
	       "  </source>\n"
	       "  <target dev='%s' bus='virtio'/>\n"
	       "</disk>\n", target);
	return EXIT_OK;
}
