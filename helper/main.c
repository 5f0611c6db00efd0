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
 *   list         every open device: state, owner, backend
 *   stats        what the devices counted, or their rates (--watch)
 *
 * Invoked under a name starting with "vhost-user-blk" (a link), the program
 * is a vhost-user back-end program: the options of `serve` directly, with
 * the conventions --socket-path, --fd, --blk-file, --read-only and
 * --print-capabilities.
 *
 * Exit status: 0 success, 1 the operation failed, 2 usage error.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <linux/vhost_blk.h>

#include "cli.h"
#include "commands.h"
#include "kdev.h"

/* Names under which the program is the vhost-user back-end itself. */
#define VHOST_USER_PREFIX	"vhost-user-blk"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " HELPER_NAME " [--help] [--version] COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  info [--json]         show the ABI version and features of " KDEV_PATH "\n"
		"  check [--backend DEV] tell what is missing to serve a disk\n"
		"  serve --backend DEV (--socket PATH | --fd N) [--num-queues N] [--workers N]\n"
		"        [--queue-size N] [--read-only] [--shared] [--serial S]\n"
		"        [--socket-mode MODE] [--socket-group GROUP] [--allow-uid USER]\n"
		"        [--allow-gid GROUP] [--user USER]\n"
		"                        serve DEV (a block device or an image file) to\n"
		"                        QEMU as a vhost-user-blk back-end\n"
		"  qemu-args --socket PATH [--num-queues N] [--mem SIZE | --no-mem] [--id ID]\n"
		"                        print the QEMU options for a disk served at PATH,\n"
		"                        for $(...)\n"
		"  libvirt-xml --socket PATH [--target DEV] [--num-queues N]\n"
		"                        print the libvirt domain XML for it\n"
		"  exec (--backend DEV | --ro-backend DEV)... [--read-only] [--shared]\n"
		"        [--user USER] -- QEMU ARGS...\n"
		"                        run QEMU with the descriptors of its vhost-blk-pci\n"
		"                        disks (%%v, %%b in ARGS; --ro-backend: read-only)\n"
		"  send-fds --qmp SOCKET --backend DEV --id ID [--shared] [--device-add]\n"
		"                        pass them to a running QEMU, for hot-plug\n"
		"  list [--json]         list every open vhost-blk device (root)\n"
		"  stats [ID] [--queues] [--json] [--watch[=SECONDS]]\n"
		"                        show what the devices counted (root)\n"
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
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
		bool serve;	/* cmd_serve(), which takes a name */
	} commands[] = {
		{ "info", cmd_info, false },
		{ "check", cmd_check, false },
		{ "serve", NULL, true },
		{ "qemu-args", cmd_qemu_args, false },
		{ "libvirt-xml", cmd_libvirt_xml, false },
		{ "exec", cmd_exec, false },
		{ "send-fds", cmd_send_fds, false },
		{ "list", cmd_list, false },
		{ "stats", cmd_stats, false },
	};
	const char *prog = argc ? base_name(argv[0]) : HELPER_NAME;
	char name[32];
	int c;

	if (!strncmp(prog, VHOST_USER_PREFIX, strlen(VHOST_USER_PREFIX)))
		return cmd_serve(prog, argc, argv);

	/* Options before the command only; the command parses the rest. */
	if (argc)
		argv[0] = (char *)HELPER_NAME;
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
	for (c = 0; c < (int)(sizeof(commands) / sizeof(commands[0])); c++) {
		if (strcmp(argv[0], commands[c].name))
			continue;
		/* getopt's own messages: "vhostblk-setup COMMAND: ...". */
		snprintf(name, sizeof(name), HELPER_NAME " %s", commands[c].name);
		argv[0] = name;
		return commands[c].serve ? cmd_serve(name, argc, argv) :
					   commands[c].run(argc, argv);
	}
	fprintf(stderr, HELPER_NAME ": %s: unknown command (see " HELPER_NAME " --help)\n",
		argv[0]);
	return EXIT_USAGE;
}
