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
#include "commands.h"

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

static bool valid_target(const char *s)
{
	size_t n = strlen(s);

	return n > 2 && !strncmp(s, "vd", 2) &&
	       strspn(s + 2, "abcdefghijklmnopqrstuvwxyz") == n - 2;
}

/* What the two commands are told; each takes some of the options. */
struct snippet_opts {
	const char *socket;
	unsigned int num_queues;
	const char *mem;	/* qemu-args */
	const char *id;		/* qemu-args */
	const char *target;	/* libvirt-xml */
};

/* The options a command takes besides --socket, --num-queues, --help. */
enum { TAKES_MEM = 1, TAKES_ID = 2, TAKES_TARGET = 4 };

static const struct {
	struct option opt;
	unsigned int only;	/* 0: every command's, else a TAKES_* */
} snippet_options[] = {
	{ { "socket", required_argument, NULL, 's' }, 0 },
	{ { "num-queues", required_argument, NULL, 'q' }, 0 },
	{ { "mem", required_argument, NULL, 'm' }, TAKES_MEM },
	{ { "id", required_argument, NULL, 'i' }, TAKES_ID },
	{ { "target", required_argument, NULL, 't' }, TAKES_TARGET },
	{ { "help", no_argument, NULL, 'h' }, 0 },
};

#define NR_SNIPPET_OPTIONS	(sizeof(snippet_options) / sizeof(snippet_options[0]))

/*
 * Parses the options of @cmd, which takes those of @takes, into @o (its
 * defaults set by the caller); --help prints @help. Returns -1 to go on,
 * else the exit status.
 */
static int parse_snippet_opts(const char *cmd, unsigned int takes,
			      void (*help)(void), int argc, char **argv,
			      struct snippet_opts *o)
{
	struct option opts[NR_SNIPPET_OPTIONS + 1];
	unsigned int i, n = 0;
	int c;

	for (i = 0; i < NR_SNIPPET_OPTIONS; i++)
		if (!snippet_options[i].only || (snippet_options[i].only & takes))
			opts[n++] = snippet_options[i].opt;
	opts[n] = (struct option){ NULL, 0, NULL, 0 };

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'q':
			if (parse_uint(cmd, "--num-queues", optarg, 1,
				       VHOST_BLK_MAX_QUEUES, &o->num_queues))
				return EXIT_USAGE;
			break;
		case 'm':
			if (!valid_size(optarg))
				return usage_error(cmd, "--mem: '%s' is not a size like 4G",
						   optarg);
			o->mem = optarg;
			break;
		case 'i':
			if (!valid_id(optarg))
				return usage_error(cmd, "--id: '%s' is not a QEMU id",
						   optarg);
			o->id = optarg;
			break;
		case 't':
			if (!valid_target(optarg))
				return usage_error(cmd, "--target: '%s' is not a virtio disk name like vdb",
						   optarg);
			o->target = optarg;
			break;
		case 'h':
			help();
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return unexpected_arg(cmd, argv[optind]);
	if (!o->socket)
		return usage_error(cmd, "--socket is required");
	return -1;
}

static void qemu_args_help(void)
{
	printf("Usage: " HELPER_NAME " qemu-args --socket PATH [--num-queues N] [--mem SIZE]\n"
	       "       [--id ID]\n"
	       "\n"
	       "Print, on one line, the QEMU options that connect a vhost-user-blk-pci\n"
	       "disk to a back-end serving at PATH: guest RAM as a shared memfd of\n"
	       "SIZE (default 1G; it must equal -m), a socket chardev that reconnects,\n"
	       "and the device with N queues (default 1; at most the --num-queues of\n"
	       "serve). ID (default vhostblk0) names the chardev and the device; for a\n"
	       "second disk use another ID and only its -chardev and -device.\n");
}

int cmd_qemu_args(int argc, char **argv)
{
	struct snippet_opts o = { .num_queues = 1, .mem = "1G", .id = "vhostblk0" };
	int ret;

	ret = parse_snippet_opts("qemu-args", TAKES_MEM | TAKES_ID, qemu_args_help,
				 argc, argv, &o);
	if (ret >= 0)
		return ret;
	printf("-object memory-backend-memfd,id=mem,size=%s,share=on"
	       " -machine memory-backend=mem", o.mem);
	print_chardev(o.id, o.socket);
	printf(" -device vhost-user-blk-pci,id=%s,chardev=", o.id);
	print_qemu_value(o.id);
	printf(",num-queues=%u\n", o.num_queues);
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

static void libvirt_xml_help(void)
{
	printf("Usage: " HELPER_NAME " libvirt-xml --socket PATH [--target DEV] [--num-queues N]\n"
	       "\n"
	       "Print the libvirt domain XML for a disk served at PATH: the\n"
	       "<memoryBacking> element the domain needs (shared memfd guest RAM)\n"
	       "and the <disk type='vhostuser'> element, guest name DEV (default\n"
	       "vdb), N queues (default 1).\n");
}

int cmd_libvirt_xml(int argc, char **argv)
{
	struct snippet_opts o = { .num_queues = 1, .target = "vdb" };
	int ret;

	ret = parse_snippet_opts("libvirt-xml", TAKES_TARGET, libvirt_xml_help,
				 argc, argv, &o);
	if (ret >= 0)
		return ret;
	printf("<!-- in <domain>: guest memory the back-end can map -->\n"
	       "<memoryBacking>\n"
	       "  <source type='memfd'/>\n"
	       "  <access mode='shared'/>\n"
	       "</memoryBacking>\n"
	       "<!-- in <devices> -->\n"
	       "<disk type='vhostuser' device='disk'>\n");
	if (o.num_queues > 1)
		printf("  <driver name='qemu' type='raw' queues='%u'/>\n", o.num_queues);
	else
		printf("  <driver name='qemu' type='raw'/>\n");
	printf("  <source type='unix' path='");
	print_xml_attr(o.socket);
	printf("'>\n"
	       "    <reconnect enabled='yes' timeout='10'/>\n"
	       "  </source>\n"
	       "  <target dev='%s' bus='virtio'/>\n"
	       "</disk>\n", o.target);
	return EXIT_OK;
}
