// SPDX-License-Identifier: GPL-2.0
/*
 * stats: what the open /dev/vhost-blk devices counted, from the vhost_blk
 * netlink family: since their open, or with --watch per interval, as rates.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "nlclient.h"

#define MiB		(1024.0 * 1024.0)
#define SECTOR		512.0

/* The counters by their JSON name, in attribute order. */
static const struct {
	int attr;
	const char *name;
} counters[] = {
	{ VHOST_BLK_A_STAT_REQ_IN, "req_in" },
	{ VHOST_BLK_A_STAT_REQ_OUT, "req_out" },
	{ VHOST_BLK_A_STAT_REQ_FLUSH, "req_flush" },
	{ VHOST_BLK_A_STAT_REQ_GET_ID, "req_get_id" },
	{ VHOST_BLK_A_STAT_REQ_DISCARD, "req_discard" },
	{ VHOST_BLK_A_STAT_REQ_WRITE_ZEROES, "req_write_zeroes" },
	{ VHOST_BLK_A_STAT_REQ_SECURE_ERASE, "req_secure_erase" },
	{ VHOST_BLK_A_STAT_REQ_OTHER, "req_other" },
	{ VHOST_BLK_A_STAT_SECTORS_READ, "sectors_read" },
	{ VHOST_BLK_A_STAT_SECTORS_WRITTEN, "sectors_written" },
	{ VHOST_BLK_A_STAT_ERR_IOERR, "err_ioerr" },
	{ VHOST_BLK_A_STAT_ERR_UNSUPP, "err_unsupp" },
	{ VHOST_BLK_A_STAT_INFLIGHT, "inflight" },
	{ VHOST_BLK_A_STAT_BOUNCED_REQS, "bounced_reqs" },
	{ VHOST_BLK_A_STAT_BOUNCED_BYTES, "bounced_bytes" },
	{ VHOST_BLK_A_STAT_KICKS, "kicks" },
	{ VHOST_BLK_A_STAT_INTERRUPTS, "interrupts" },
	{ VHOST_BLK_A_STAT_USED_BATCHES, "used_batches" },
	{ VHOST_BLK_A_STAT_DRIVER_ERRORS, "driver_errors" },
	{ VHOST_BLK_A_STAT_POLLED, "polled" },
};

#define NCOUNTERS	(sizeof(counters) / sizeof(counters[0]))

struct opts {
	uint32_t id;		/* 0: every device */
	bool json, queues;
	unsigned int watch;	/* seconds; 0: no --watch */
};

/* ------------------------------------------------------------------------
 * Since the open
 */

static void print_latency_json(const uint64_t *hist)
{
	uint64_t p99;
	double mean;

	if (nlc_lat_mean_us(hist, &mean))
		printf("\"lat_mean_us\": %.1f, ", mean);
	else
		printf("\"lat_mean_us\": null, ");
	if (nlc_lat_p99_us(hist, &p99))
		printf("\"lat_p99_us\": %" PRIu64, p99);
	else
		printf("\"lat_p99_us\": null");
}

static void print_counters_json(const struct nlc_counters *c)
{
	size_t i;

	printf("\"requests\": %" PRIu64, nlc_requests(c));
	for (i = 0; i < NCOUNTERS; i++)
		printf(", \"%s\": %" PRIu64, counters[i].name, c->v[counters[i].attr]);
	printf(", \"latency_hist\": [");
	for (i = 0; i < VHOST_BLK_LAT_BUCKETS; i++)
		printf("%s%" PRIu64, i ? ", " : "", c->hist[i]);
	printf("], \"read_mib\": %.3f, \"written_mib\": %.3f, ",
	       c->v[VHOST_BLK_A_STAT_SECTORS_READ] * SECTOR / MiB,
	       c->v[VHOST_BLK_A_STAT_SECTORS_WRITTEN] * SECTOR / MiB);
	print_latency_json(c->hist);
}

static void print_stats_json(const struct nlc_stats *s)
{
	unsigned int q;

	printf("{\"id\": %" PRIu32 ", \"total\": {", s->id);
	print_counters_json(&s->total);
	printf("}, \"queues\": [");
	for (q = 0; q < s->nqueues; q++) {
		printf("%s{\"queue\": %" PRIu32 ", ", q ? ", " : "", s->queue[q].queue);
		print_counters_json(&s->queue[q]);
		putchar('}');
	}
	printf("]}");
}

#define HEADER_FMT	"%-6s %-5s %10s %10s %10s %8s %8s %8s %10s %10s %8s %9s %8s\n"

static void print_header(void)
{
	printf(HEADER_FMT, "ID", "QUEUE", "REQUESTS", "READS", "WRITES", "FLUSHES",
	       "OTHER", "ERRORS", "READ_MiB", "WRITE_MiB", "INFLIGHT", "MEAN_us",
	       "P99_us");
}

static void print_counters(uint32_t id, const char *queue, const struct nlc_counters *c)
{
	const uint64_t *v = c->v;
	char mean_s[32] = "-", p99_s[32] = "-";
	uint64_t p99;
	double mean;

	if (nlc_lat_mean_us(c->hist, &mean))
		snprintf(mean_s, sizeof(mean_s), "%.1f", mean);
	if (nlc_lat_p99_us(c->hist, &p99))
		snprintf(p99_s, sizeof(p99_s), "%" PRIu64, p99);
	printf("%-6" PRIu32 " %-5s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %8" PRIu64
	       " %8" PRIu64 " %8" PRIu64 " %10.1f %10.1f %8" PRIu64 " %9s %8s\n",
	       id, queue, nlc_requests(c), v[VHOST_BLK_A_STAT_REQ_IN],
	       v[VHOST_BLK_A_STAT_REQ_OUT], v[VHOST_BLK_A_STAT_REQ_FLUSH],
	       nlc_requests(c) - v[VHOST_BLK_A_STAT_REQ_IN] -
	       v[VHOST_BLK_A_STAT_REQ_OUT] - v[VHOST_BLK_A_STAT_REQ_FLUSH],
	       v[VHOST_BLK_A_STAT_ERR_IOERR] + v[VHOST_BLK_A_STAT_ERR_UNSUPP],
	       v[VHOST_BLK_A_STAT_SECTORS_READ] * SECTOR / MiB,
	       v[VHOST_BLK_A_STAT_SECTORS_WRITTEN] * SECTOR / MiB,
	       v[VHOST_BLK_A_STAT_INFLIGHT], mean_s, p99_s);
}

static void print_stats(const struct nlc_stats *s, bool queues)
{
	char name[16];
	unsigned int q;

	print_counters(s->id, "all", &s->total);
	for (q = 0; queues && q < s->nqueues; q++) {
		snprintf(name, sizeof(name), "%" PRIu32, s->queue[q].queue);
		print_counters(s->id, name, &s->queue[q]);
	}
}

/* The device's or every device's counters in *stats: their number. */
static int sample(struct nlc *nlc, uint32_t id, struct nlc_stats **stats)
{
	int ret;

	if (!id)
		return nlc_stats_dump(nlc, stats);
	*stats = malloc(sizeof(**stats));
	if (!*stats)
		return -ENOMEM;
	ret = nlc_stats_get(nlc, id, *stats);
	if (ret) {
		free(*stats);
		*stats = NULL;
		return ret;
	}
	return 1;
}

/* Reports why the counters could not be read; EXIT_FAIL. */
static int sample_error(uint32_t id, int err, bool watching)
{
	if (err == -ENODEV && watching) {
		fprintf(stderr, HELPER_NAME " stats: device %" PRIu32 ": closed\n", id);
		return EXIT_FAIL;
	}
	if (err == -ENODEV) {
		fprintf(stderr, HELPER_NAME " stats: device %" PRIu32 ": no such device\n", id);
		return EXIT_FAIL;
	}
	return cli_nl_error("stats", err);
}

static int stats_once(struct nlc *nlc, const struct opts *o)
{
	struct nlc_stats *s;
	int i, n;

	n = sample(nlc, o->id, &s);
	if (n < 0)
		return sample_error(o->id, n, false);
	if (o->json) {
		putchar('[');
		for (i = 0; i < n; i++) {
			if (i)
				printf(", ");
			print_stats_json(&s[i]);
		}
		printf("]\n");
	} else {
		if (n)
			print_header();
		for (i = 0; i < n; i++)
			print_stats(&s[i], o->queues);
	}
	free(s);
	return EXIT_OK;
}

/* ------------------------------------------------------------------------
 * --watch: per interval
 */

/* What one queue (or the total) did in an interval of @secs. */
struct rates {
	double iops, read_iops, write_iops, read_mib_s, write_mib_s;
	uint64_t hist[VHOST_BLK_LAT_BUCKETS];
};

static void rates_of(const struct nlc_counters *now, const struct nlc_counters *then,
		     double secs, struct rates *r)
{
	const uint64_t *a = now->v, *b = then->v;
	int i;

	r->iops = (nlc_requests(now) - nlc_requests(then)) / secs;
	r->read_iops = (a[VHOST_BLK_A_STAT_REQ_IN] - b[VHOST_BLK_A_STAT_REQ_IN]) / secs;
	r->write_iops = (a[VHOST_BLK_A_STAT_REQ_OUT] - b[VHOST_BLK_A_STAT_REQ_OUT]) / secs;
	r->read_mib_s = (a[VHOST_BLK_A_STAT_SECTORS_READ] -
			 b[VHOST_BLK_A_STAT_SECTORS_READ]) * SECTOR / MiB / secs;
	r->write_mib_s = (a[VHOST_BLK_A_STAT_SECTORS_WRITTEN] -
			  b[VHOST_BLK_A_STAT_SECTORS_WRITTEN]) * SECTOR / MiB / secs;
	for (i = 0; i < VHOST_BLK_LAT_BUCKETS; i++)
		r->hist[i] = now->hist[i] - then->hist[i];
}

/* Whether @now can follow @then: the same device, its counters grown. */
static bool same_device(const struct nlc_stats *now, const struct nlc_stats *then)
{
	size_t i;

	if (now->nqueues != then->nqueues)
		return false;
	for (i = 0; i < NCOUNTERS; i++)
		if (counters[i].attr != VHOST_BLK_A_STAT_INFLIGHT &&
		    now->total.v[counters[i].attr] < then->total.v[counters[i].attr])
			return false;
	for (i = 0; i < VHOST_BLK_LAT_BUCKETS; i++)
		if (now->total.hist[i] < then->total.hist[i])
			return false;
	return true;
}

#define WATCH_FMT	"%-6s %-5s %10s %10s %10s %11s %11s %9s %8s\n"

static void print_rates(uint32_t id, const char *queue, const struct rates *r, bool json)
{
	char mean_s[32] = "-", p99_s[32] = "-", id_s[16];
	uint64_t p99;
	double mean;

	if (json) {
		printf("\"iops\": %.1f, \"read_iops\": %.1f, \"write_iops\": %.1f, "
		       "\"read_mib_s\": %.3f, \"write_mib_s\": %.3f, ",
		       r->iops, r->read_iops, r->write_iops, r->read_mib_s, r->write_mib_s);
		print_latency_json(r->hist);
		return;
	}
	if (nlc_lat_mean_us(r->hist, &mean))
		snprintf(mean_s, sizeof(mean_s), "%.1f", mean);
	if (nlc_lat_p99_us(r->hist, &p99))
		snprintf(p99_s, sizeof(p99_s), "%" PRIu64, p99);
	snprintf(id_s, sizeof(id_s), "%" PRIu32, id);
	printf("%-6s %-5s %10.1f %10.1f %10.1f %11.2f %11.2f %9s %8s\n", id_s, queue,
	       r->iops, r->read_iops, r->write_iops, r->read_mib_s, r->write_mib_s,
	       mean_s, p99_s);
}

static void print_interval(const struct nlc_stats *now, int n_now,
			   const struct nlc_stats *then, int n_then, double secs,
			   const struct opts *o)
{
	const char *sep = "";
	struct rates r;
	unsigned int q;
	char name[16];
	int i, j;

	if (o->json)
		printf("{\"interval_s\": %.3f, \"devices\": [", secs);
	else
		printf(WATCH_FMT, "ID", "QUEUE", "IOPS", "READ_IOPS", "WRITE_IOPS",
		       "READ_MiB/s", "WRITE_MiB/s", "MEAN_us", "P99_us");
	for (i = 0, j = 0; i < n_now; i++) {
		/* Both in id order; a device new in this interval waits for the next. */
		while (j < n_then && then[j].id < now[i].id)
			j++;
		if (j == n_then || then[j].id != now[i].id ||
		    !same_device(&now[i], &then[j]))
			continue;
		rates_of(&now[i].total, &then[j].total, secs, &r);
		if (o->json) {
			printf("%s{\"id\": %" PRIu32 ", \"total\": {", sep, now[i].id);
			print_rates(now[i].id, "all", &r, true);
			printf("}, \"queues\": [");
			for (q = 0; q < now[i].nqueues; q++) {
				rates_of(&now[i].queue[q], &then[j].queue[q], secs, &r);
				printf("%s{\"queue\": %" PRIu32 ", ", q ? ", " : "",
				       now[i].queue[q].queue);
				print_rates(now[i].id, NULL, &r, true);
				putchar('}');
			}
			printf("]}");
			sep = ", ";
			continue;
		}
		print_rates(now[i].id, "all", &r, false);
		for (q = 0; o->queues && q < now[i].nqueues; q++) {
			rates_of(&now[i].queue[q], &then[j].queue[q], secs, &r);
			snprintf(name, sizeof(name), "%" PRIu32, now[i].queue[q].queue);
			print_rates(now[i].id, name, &r, false);
		}
	}
	printf(o->json ? "]}\n" : "\n");
	fflush(stdout);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits until @deadline (now_s()); true when SIGINT or SIGTERM came first. */
static bool wait_until(const sigset_t *sigs, double deadline)
{
	for (;;) {
		double left = deadline - now_s();
		struct timespec ts;

		if (left <= 0)
			return false;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - ts.tv_sec) * 1e9);
		if (sigtimedwait(sigs, NULL, &ts) > 0)
			return true;
		if (errno != EAGAIN && errno != EINTR)
			return false;
	}
}

static int stats_watch(struct nlc *nlc, const struct opts *o)
{
	struct nlc_stats *then, *now;
	double t_then, t_now;
	int n_then, n_now, ret = EXIT_OK;
	sigset_t sigs;

	/* Taken by sigtimedwait() only: a signal ends the loop between samples. */
	signal(SIGINT, SIG_DFL);	/* not ignored, as in a shell's background job */
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	n_then = sample(nlc, o->id, &then);
	if (n_then < 0)
		return sample_error(o->id, n_then, false);
	t_then = now_s();
	for (;;) {
		if (wait_until(&sigs, t_then + o->watch))
			break;
		n_now = sample(nlc, o->id, &now);
		if (n_now < 0) {
			ret = sample_error(o->id, n_now, true);
			break;
		}
		t_now = now_s();
		print_interval(now, n_now, then, n_then, t_now - t_then, o);
		free(then);
		then = now;
		n_then = n_now;
		t_then = t_now;
	}
	free(then);
	return ret;
}

static void usage(void)
{
	printf("Usage: " HELPER_NAME " stats [ID] [--queues] [--json] [--watch[=SECONDS]]\n"
	       "\n"
	       "Show the counters of the vhost-blk device ID (see list), or of every\n"
	       "device, since its open: requests by type, errors, MiB read and\n"
	       "written, requests in flight, mean and 99th percentile latency (from\n"
	       "the kernel's log2 histogram: see the man page); --queues: per queue\n"
	       "too. --json: a JSON array, every counter, per queue always.\n"
	       "--watch: every SECONDS (1 to 3600, default 1) the rates of the\n"
	       "interval (IOPS, MiB/s) and its latency, until SIGINT or SIGTERM\n"
	       "(status 0) or until device ID is closed (status 1); with --json one\n"
	       "JSON object per interval and line. Needs root (CAP_NET_ADMIN).\n");
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "queues", no_argument, NULL, 'q' },
		{ "watch", optional_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { 0 };
	unsigned int id;
	struct nlc *nlc;
	int c, ret;

	/*
	 * Options after the ID too: a fresh scan (optind 0) that permutes,
	 * not main()'s, which stopped at the command.
	 */
	optind = 0;
	while ((c = getopt_long(argc, argv, "jqh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = true;
			break;
		case 'q':
			o.queues = true;
			break;
		case 'w':
			o.watch = 1;
			if (optarg && parse_uint("stats", "--watch", optarg, 1, 3600, &o.watch))
				return EXIT_USAGE;
			break;
		case 'h':
			usage();
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		if (parse_uint("stats", "ID", argv[optind], 1, UINT32_MAX, &id))
			return EXIT_USAGE;
		o.id = id;
		optind++;
	}
	if (optind != argc)
		return unexpected_arg("stats", argv[optind]);
	ret = nlc_open(&nlc);
	if (ret)
		return cli_nl_error("stats", ret);
	ret = o.watch ? stats_watch(nlc, &o) : stats_once(nlc, &o);
	nlc_close(nlc);
	return ret;
}
