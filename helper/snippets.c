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

/*
 * Whether @path survives the shell's word splitting and pathname expansion
 * as one word when qemu-args' output is used as $(...): no blank, no
 * pattern character. Quotes inside $(...) are not removed, so quoting
 * cannot help; any other character passes through as it is.
 */
static bool splits_safely(const char *path)
{
	return !strpbrk(path, " \t\n*?[");
}

static void print_chardev(const char *id, const char *path)
{
	printf("-chardev socket,id=%s,path=", id);
	print_qemu_value(path);
	printf(",reconnect-ms=1000");
}

/* The default id: "vhostblk-" and the socket's name without ".sock". */
static void default_id(char *id, size_t size, const char *path)
{
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	size_t len = strlen(name), i, n;

	if (len > 5 && !strcmp(name + len - 5, ".sock"))
		len -= 5;
	n = snprintf(id, size, "vhostblk-");
	for (i = 0; i < len && n + 1 < size; i++, n++)
		id[n] = isalnum((unsigned char)name[i]) || strchr("-._", name[i]) ?
			name[i] : '_';
	id[n] = '\0';
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
	const char *mem;	/* qemu-args; NULL: --no-mem */
	const char *id;		/* qemu-args; NULL: from the socket's name */
	const char *target;	/* libvirt-xml */
};

/* The options a command takes besides --socket, --num-queues, --help. */
enum { TAKES_MEM = 1, TAKES_ID = 2, TAKES_TARGET = 4 };

/* --no-mem's getopt value. */
#define OPT_NO_MEM	256

static const struct {
	struct option opt;
	unsigned int only;	/* 0: every command's, else a TAKES_* */
} snippet_options[] = {
	{ { "socket", required_argument, NULL, 's' }, 0 },
	{ { "num-queues", required_argument, NULL, 'q' }, 0 },
	{ { "mem", required_argument, NULL, 'm' }, TAKES_MEM },
	{ { "no-mem", no_argument, NULL, OPT_NO_MEM }, TAKES_MEM },
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
		case OPT_NO_MEM:
			o->mem = NULL;
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
	if ((takes & TAKES_ID) && !splits_safely(o->socket))
		return usage_error(cmd, "--socket: '%s': a blank or one of *?[ would split or expand it in $(...)",
				   o->socket);
	return -1;
}

static void qemu_args_help(void)
{
	printf("Usage: " HELPER_NAME " qemu-args --socket PATH [--num-queues N]\n"
	       "       [--mem SIZE | --no-mem] [--id ID]\n"
	       "\n"
	       "Print, on one line, the QEMU options that connect a vhost-user-blk-pci\n"
	       "disk to a back-end serving at PATH: guest RAM as a shared memfd of\n"
	       "SIZE (default 1G; it must equal -m; --no-mem: leave it out, for a\n"
	       "second disk or a guest whose RAM is shared already), a socket chardev\n"
	       "that reconnects, and the device with N queues (default 1; at most the\n"
	       "--num-queues of serve). ID (default: vhostblk- and PATH's file name\n"
	       "without .sock) names the chardev and the device; the memory is ID-mem.\n"
	       "The output is meant for $(...): no quoting, one word per argument; PATH\n"
	       "must have no blank and none of *?[.\n");
}

int cmd_qemu_args(int argc, char **argv)
{
	struct snippet_opts o = { .num_queues = 1, .mem = "1G" };
	char id[128];
	int ret;

	ret = parse_snippet_opts("qemu-args", TAKES_MEM | TAKES_ID, qemu_args_help,
				 argc, argv, &o);
	if (ret >= 0)
		return ret;
	if (!o.id) {
		default_id(id, sizeof(id), o.socket);
		o.id = id;
	}
	if (o.mem)
		printf("-object memory-backend-memfd,id=%s-mem,size=%s,share=on"
		       " -machine memory-backend=%s-mem ", o.id, o.mem, o.id);
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
	/*
	 * Always explicit: without queues, QEMU gives the device one queue per
	 * vCPU, more than a disk served with fewer queues offers, and the
	 * domain does not start.
	 */
	printf("  <driver name='qemu' type='raw' queues='%u'/>\n", o.num_queues);
	printf("  <source type='unix' path='");
	print_xml_attr(o.socket);
	printf("'>\n"
	       "    <reconnect enabled='yes' timeout='10'/>\n"
	       "  </source>\n"
	       "  <target dev='%s' bus='virtio'/>\n"
	       "</disk>\n", o.target);
	return EXIT_OK;
}
