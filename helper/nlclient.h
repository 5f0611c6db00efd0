/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A client of the "vhost_blk" generic netlink family
 * (<linux/vhost_blk_nl.h>), with libnl-genl-3: what every open device is
 * (DEV_GET) and what it counted (STATS_GET). Functions return 0 (or a
 * count) or a negative errno; none prints. -ENOENT from nlc_open(): the
 * family is not registered (the module is not loaded); -EPERM from a
 * request: the caller lacks CAP_NET_ADMIN; -ENODEV: no device has that id.
 */
#ifndef NLCLIENT_H
#define NLCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/vhost_blk.h>
#include <linux/vhost_blk_nl.h>

struct nlc;

/* What DEV_GET says of one device. */
struct nlc_dev {
	uint32_t id;
	uint32_t state;			/* enum vhost_blk_dev_state */
	bool has_owner_pid;		/* in our pid namespace */
	uint32_t owner_pid;
	char owner_comm[32];		/* "" without an owner */
	bool has_backend;
	uint32_t major, minor;
	char backend[64];		/* as in /sys/block */
	bool read_only;			/* with a backend only */
	uint64_t features;
	uint32_t num_queues;
	/*
	 * Per queue, in queue order (none before the owner set the device
	 * up): the thread id of the worker that last served it (0: none yet,
	 * or outside our pid namespace), and its busy-poll time in
	 * microseconds (0: it does not poll).
	 */
	unsigned int nworkers;
	uint32_t workers[VHOST_BLK_MAX_QUEUES];
	unsigned int npoll_us;
	uint32_t poll_us[VHOST_BLK_MAX_QUEUES];
};

/* One nest of counters: v[] by VHOST_BLK_A_STAT_*, the histogram apart. */
struct nlc_counters {
	uint32_t queue;			/* per queue only */
	uint64_t v[VHOST_BLK_A_STAT_MAX + 1];
	uint64_t hist[VHOST_BLK_LAT_BUCKETS];
};

/* What STATS_GET says of one device. */
struct nlc_stats {
	uint32_t id;
	struct nlc_counters total;
	unsigned int nqueues;
	struct nlc_counters queue[VHOST_BLK_MAX_QUEUES];
};

int nlc_open(struct nlc **nlc);
void nlc_close(struct nlc *nlc);

int nlc_dev_get(struct nlc *nlc, uint32_t id, struct nlc_dev *dev);
/* Every device, in id order, in *devs (malloc'd; free it): their number. */
int nlc_dev_dump(struct nlc *nlc, struct nlc_dev **devs);
int nlc_stats_get(struct nlc *nlc, uint32_t id, struct nlc_stats *stats);
/* The same for the counters. */
int nlc_stats_dump(struct nlc *nlc, struct nlc_stats **stats);

/* "no-owner", "no-backend", "running", "queue-error", or "unknown". */
const char *nlc_state_name(uint32_t state);

/* Requests of every type. */
uint64_t nlc_requests(const struct nlc_counters *c);
/*
 * From a latency histogram (bucket i: [2^i, 2^(i+1)) us, bucket 0 from 0):
 * the mean, each request counted at its bucket's midpoint (1 us for bucket
 * 0, 1.5 * 2^i us for the others), and the 99th percentile as the upper
 * bound 2^(i+1) us of the bucket it falls in. False when it is empty.
 */
bool nlc_lat_mean_us(const uint64_t *hist, double *mean);
bool nlc_lat_p99_us(const uint64_t *hist, uint64_t *p99);

#endif /* NLCLIENT_H */
