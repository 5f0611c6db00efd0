// SPDX-License-Identifier: GPL-2.0
/*
 * list: every open /dev/vhost-blk device, one line each (or a JSON array),
 * from the vhost_blk netlink family.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "nlclient.h"

/* A name from the kernel, in one word: blanks and control bytes as '?'. */
static void print_word(const char *s, int width)
{
	int n = 0;

	for (; *s; s++, n++)
		putchar((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f ? '?' : *s);
	if (!n) {
		putchar('-');
		n++;
	}
	for (; n < width; n++)
		putchar(' ');
}

/*
 * The busy-poll time: "-" when no queue polls, "50us" when every queue
 * polls that long, else each queue's time ("10,20,0us").
 */
static void print_poll(const struct nlc_dev *d)
{
	bool same = true, any = false;
	unsigned int i;

	for (i = 0; i < d->npoll_us; i++) {
		any |= d->poll_us[i] != 0;
		same &= d->poll_us[i] == d->poll_us[0];
	}
	if (!any) {
		putchar('-');
		return;
	}
	for (i = 0; i < (same ? 1 : d->npoll_us); i++)
		printf("%s%" PRIu32, i ? "," : "", d->poll_us[i]);
	printf("us");
}

/* @n values as a JSON array. */
static void print_json_array(const uint32_t *v, unsigned int n)
{
	unsigned int i;

	putchar('[');
	for (i = 0; i < n; i++)
		printf("%s%" PRIu32, i ? ", " : "", v[i]);
	putchar(']');
}

static void print_brief(const struct nlc_dev *d)
{
	char buf[32];

	printf("%-6" PRIu32 " %-11s ", d->id, nlc_state_name(d->state));
	if (d->has_owner_pid)
		snprintf(buf, sizeof(buf), "%" PRIu32, d->owner_pid);
	else
		snprintf(buf, sizeof(buf), "-");
	printf("%-7s ", buf);
	print_word(d->owner_comm, 16);
	putchar(' ');
	print_word(d->backend, 8);
	if (d->has_backend)
		snprintf(buf, sizeof(buf), "%" PRIu32 ":%" PRIu32, d->major, d->minor);
	else
		snprintf(buf, sizeof(buf), "-");
	printf(" %-7s %-2s %-3" PRIu32 " ", buf,
	       !d->has_backend ? "-" : d->read_only ? "ro" : "rw", d->num_queues);
	print_poll(d);
	putchar('\n');
}

static void print_json(const struct nlc_dev *d)
{
	printf("{\"id\": %" PRIu32 ", \"state\": \"%s\", \"owner_pid\": ", d->id,
	       nlc_state_name(d->state));
	if (d->has_owner_pid)
		printf("%" PRIu32, d->owner_pid);
	else
		printf("null");
	printf(", \"owner_comm\": ");
	if (d->owner_comm[0])
		cli_json_string(d->owner_comm);
	else
		printf("null");
	printf(", \"backend\": ");
	if (d->has_backend) {
		cli_json_string(d->backend);
		printf(", \"backend_major\": %" PRIu32 ", \"backend_minor\": %" PRIu32
		       ", \"read_only\": %s", d->major, d->minor,
		       d->read_only ? "true" : "false");
	} else {
		printf("null, \"backend_major\": null, \"backend_minor\": null, "
		       "\"read_only\": null");
	}
	printf(", \"num_queues\": %" PRIu32 ", \"features\": %" PRIu64,
	       d->num_queues, d->features);
	printf(", \"workers\": ");
	print_json_array(d->workers, d->nworkers);
	printf(", \"poll_us\": ");
	print_json_array(d->poll_us, d->npoll_us);
	putchar('}');
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct nlc_dev *devs;
	struct nlc *nlc;
	bool json = false;
	int c, i, n;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			printf("Usage: " HELPER_NAME " list [--json]\n"
			       "\n"
			       "List every open vhost-blk device, one line each: id, state\n"
			       "(no-owner, no-backend, running, queue-error, stopped), owner pid and\n"
			       "command, backend and its major:minor, ro or rw, queues, busy-poll\n"
			       "time (50us; per queue when they differ: 10,20us); '-' where there\n"
			       "is none. --json: a JSON array of objects, with each queue's worker\n"
			       "thread id (workers) and busy-poll time (poll_us) too. Needs root\n"
			       "(CAP_NET_ADMIN).\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return unexpected_arg("list", argv[optind]);
	n = nlc_open(&nlc);
	if (!n) {
		n = nlc_dev_dump(nlc, &devs);
		nlc_close(nlc);
	}
	if (n < 0)
		return cli_nl_error("list", n);
	if (json)
		putchar('[');
	for (i = 0; i < n; i++) {
		if (!json) {
			print_brief(&devs[i]);
			continue;
		}
		if (i)
			printf(", ");
		print_json(&devs[i]);
	}
	if (json)
		printf("]\n");
	free(devs);
	return EXIT_OK;
}
