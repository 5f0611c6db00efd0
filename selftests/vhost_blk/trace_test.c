// SPDX-License-Identifier: GPL-2.0
/*
 * The tracepoints vhost_blk:req_start and vhost_blk:req_done: each request
 * of a device fires both once, with its device id, queue, head, type,
 * sector, length, and at the end its status and latency. Read through a
 * tracefs instance of the test's own, filtered on the device's id.
 *
 * Needs root, the module, null_blk and tracefs (mounted here if it is not).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define KiB		1024UL
#define MiB		(1024UL * 1024)
#define TRACEFS		"/sys/kernel/tracing"

/* One line of the trace, parsed. */
struct event {
	bool done;
	unsigned int dev, queue, head, type, len, status;
	unsigned long long sector, latency_ns;
};

FIXTURE(tracepoints) {
	char inst[96];
	struct vblk_backend be;
	struct vblk_dev dev;
	unsigned int id;
};

/* Writes @val to the file @name of the instance. */
static int inst_write(const char *inst, const char *name, const char *val)
{
	char path[192];

	snprintf(path, sizeof(path), "%s/%s", inst, name);
	return vblk_write_file(path, val);
}

FIXTURE_SETUP(tracepoints)
{
	struct vblk_backend_opts bo = { .size = 16 * MiB };
	struct vblk_opts o = { .nqueues = 2, .exact_queues = true };
	char filter[64];
	int ret;

	if (access(TRACEFS "/instances", F_OK))
		ASSERT_EQ(0, mount("tracefs", TRACEFS, "tracefs", 0, NULL));
	snprintf(self->inst, sizeof(self->inst), TRACEFS "/instances/vblk-%d",
		 (int)getpid());
	ASSERT_EQ(0, mkdir(self->inst, 0700));
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("null_blk: %s", strerror(-ret));
	ASSERT_EQ(0, vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR));
	self->id = vblk_dev_id(self->dev.fd);
	ASSERT_NE(0U, self->id);
	/* Only this device's requests, in this instance only. */
	snprintf(filter, sizeof(filter), "dev == %u", self->id);
	ASSERT_EQ(0, inst_write(self->inst, "events/vhost_blk/filter", filter));
	ASSERT_EQ(0, inst_write(self->inst, "events/vhost_blk/enable", "1"));
}

FIXTURE_TEARDOWN(tracepoints)
{
	inst_write(self->inst, "events/vhost_blk/enable", "0");
	rmdir(self->inst);
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

/* The instance's events so far, in order, into @ev; their number. */
static int read_events(const char *inst, struct event *ev, int max)
{
	char path[192], line[512];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/trace", inst);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (n < max && fgets(line, sizeof(line), f)) {
		struct event *e = &ev[n];
		char *p;

		memset(e, 0, sizeof(*e));
		p = strstr(line, "req_start: ");
		if (p && sscanf(p, "req_start: dev=%u queue=%u head=%u type=%u sector=%llu len=%u",
				&e->dev, &e->queue, &e->head, &e->type,
				&e->sector, &e->len) == 6) {
			n++;
			continue;
		}
		p = strstr(line, "req_done: ");
		if (p && sscanf(p, "req_done: dev=%u queue=%u head=%u type=%u sector=%llu len=%u status=%u latency_ns=%llu",
				&e->dev, &e->queue, &e->head, &e->type,
				&e->sector, &e->len, &e->status,
				&e->latency_ns) == 8) {
			e->done = true;
			n++;
		}
	}
	fclose(f);
	return n;
}

TEST_F(tracepoints, each_request_fires_start_and_done_with_its_fields)
{
	struct vblk_queue *q = &self->dev.queues[1];
	struct vblk_buf buf;
	struct event ev[16];
	int n, i;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 8 * KiB, VBLK_PAGE_SIZE, &buf));
	vblk_pattern_fill(buf.hva, buf.len, 3);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(q, 64, &buf));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(q, 64, &buf));
	/* Past the end: a start and a done with IOERR. */
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_read(q, 16 * MiB / 512, &buf));
	ASSERT_EQ(0, inst_write(self->inst, "events/vhost_blk/enable", "0"));

	n = read_events(self->inst, ev, 16);
	ASSERT_EQ(6, n) TH_LOG("events of device %u in the trace", self->id);
	for (i = 0; i < n; i++) {
		static const unsigned int type[] = { VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_IN,
						     VIRTIO_BLK_T_IN };
		static const unsigned long long sector[] = { 64, 64, 16 * MiB / 512 };
		static const unsigned int status[] = { VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK,
						       VIRTIO_BLK_S_IOERR };
		const struct event *e = &ev[i];

		/* One at a time: each start, then its done. */
		EXPECT_EQ(i % 2 == 1, e->done) TH_LOG("event %d", i);
		EXPECT_EQ(self->id, e->dev);
		EXPECT_EQ(1U, e->queue);
		EXPECT_EQ(type[i / 2], e->type);
		EXPECT_EQ(sector[i / 2], e->sector);
		EXPECT_EQ(8 * KiB, e->len);
		if (e->done) {
			EXPECT_EQ(ev[i - 1].head, e->head);
			EXPECT_EQ(status[i / 2], e->status);
			EXPECT_LT(0ULL, e->latency_ns);
		}
	}
}

TEST_HARNESS_MAIN
