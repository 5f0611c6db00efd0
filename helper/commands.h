/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhostblk-setup's commands, which main.c dispatches to. Each cmd_*()
 * parses its own options (getopt_long with optind reset) and returns the
 * exit status (cli.h).
 */
#ifndef COMMANDS_H
#define COMMANDS_H

int cmd_info(int argc, char **argv);		/* info.c */
int cmd_check(int argc, char **argv);		/* check.c */
/* @prog: the name to show in help, the command or a vhost-user binary. */
int cmd_serve(const char *prog, int argc, char **argv);	/* serve_cmd.c */
int cmd_qemu_args(int argc, char **argv);	/* snippets.c */
int cmd_libvirt_xml(int argc, char **argv);	/* snippets.c */
int cmd_exec(int argc, char **argv);		/* fds.c */
int cmd_send_fds(int argc, char **argv);	/* fds.c */
int cmd_list(int argc, char **argv);		/* list.c */
int cmd_stats(int argc, char **argv);		/* stats.c */

#endif /* COMMANDS_H */
