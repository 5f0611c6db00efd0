// SPDX-License-Identifier: GPL-2.0
/*
 * A seeded, time-bounded random mix of valid and malformed requests on
 * several queues at once, many in flight, against an in-memory model of the
 * disk: reads, writes, flushes, discards, write-zeroes and GET_ID of random
 * sizes and shapes (split headers, indirect or not, several segments,
 * buffers at odd offsets), mixed with requests that must fail (ranges beyond
 * the capacity or overflowing it, lengths not in sectors, data in the wrong
 * direction, bad range segments) or are unsupported (unknown types, unknown
 * flags, secure erase on a null_blk). Chains that stop a queue are
 * malformed_test's.
 *
 * Each request's status and used length are checked when it completes, a
 * read's data against the model, the bytes around its buffers against guard
 * bytes, and at the end the whole block device against the model. Requests
 * in flight never overlap a request in flight that writes: the order of
 * such requests is not defined. The model takes discarded sectors to read
 * as zeroes, which null_blk's memory backing does.
 *
 * VBLK_SEED sets the seed (printed at the start), VBLK_RANDOM_SECONDS the
 * time spent submitting (default 20).
 *
 * VBLK_FAULTS=<percent> runs the same mix under fault injection (a kernel
 * with CONFIG_FAIL_MAKE_REQUEST, CONFIG_FAILSLAB and debugfs, as `make
 * check-debug` boots): fail_make_request fails that share of the bios
 * submitted to the backend (the disk's make-it-fail), failslab that share of
 * the slab allocations made by the device's vhost worker, the thread that
 * runs the module's request path (task-filter and the worker's
 * make-it-fail; the stacktrace filter that could name the module's code
 * does not exist on x86_64). Then a request that would have succeeded may
 * complete with IOERR, and only then: every request still completes, exactly
 * once (the library rejects a head that is not in flight, the drain at the
 * end waits for every one); a read that succeeds still returns the model's
 * data, and a write, discard or write-zeroes that fails leaves its sectors
 * unknown to the model (neither reads nor the final comparison check them)
 * until a later write succeeds. The test fails if either fault never fired.
 *
 * Needs root, the vhost_blk module loaded and null_blk.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define KiB		1024UL
#define MiB		(1024UL * 1024)

#define DISK_SIZE	(16 * MiB)
#define CAPACITY	(DISK_SIZE / VBLK_SECTOR_SIZE)
#define SERIAL		"random-model-0123456"

#define MAX_QUEUES	4
#define SLOTS		32		/* requests in flight per queue, at most */
#define SLOT_AREA	(96 * KiB)	/* guest memory of one request */
#define MAX_SEGS	8
#define MAX_SECTORS	128		/* of a read or write */
#define MAX_RANGES	4		/* segments of a valid range request */
#define RANGE_MAX_SECTORS 256

#define GUARD_BYTE	0xe7
#define FILL_BYTE	0x5a
#define MAX_FAILURES	8

/* Fault injection: debugfs, and "times", which counts down per fault. */
#define FAULT_DEBUGFS	"/sys/kernel/debug/"
#define FAULT_TIMES	1000000L

#define F_EVENT_IDX	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_INDIRECT	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)

enum kind {
	K_READ, K_WRITE, K_FLUSH, K_DISCARD, K_WRITE_ZEROES, K_GET_ID,
	K_BAD_RANGE, K_BAD_LENGTH, K_WRONG_DIR, K_UNKNOWN_TYPE, K_BAD_SEGMENTS,
	K_UNSUPP_SEGMENTS, K_FLUSH_DATA, K_NR
};

static const char *const kind_names[K_NR] = {
	"read", "write", "flush", "discard", "write-zeroes", "get-id",
	"out-of-range", "bad-length", "wrong-direction", "unknown-type",
	"bad-segments", "unsupported-segments", "flush-with-data",
};

/* Out of 100. */
static const unsigned int kind_weights[K_NR] = {
	28, 26, 4, 5, 5, 3, 6, 5, 3, 4, 5, 3, 3,
};

/* A sector range a request reads or writes. */
struct extent {
	uint64_t sector;
	uint32_t num;
	bool write;
};

/* A request and its guest memory; in flight, or on its queue's free list. */
struct slot {
	struct vblk_req req;
	struct vblk_buf area;		/* guest memory of this slot */
	struct vblk_buf segs[MAX_SEGS];
	enum kind kind;
	unsigned long nr;		/* request number, for messages */
	uint8_t want_status;
	uint32_t want_used;
	struct extent ext[MAX_RANGES];	/* what it touches when it works */
	unsigned int n_ext;		/* extents in ext */
	bool zero;			/* discard, write-zeroes: zeroes ext */
	bool untouched;			/* the device must not write the data */
	size_t extent_end;		/* bytes of the area in use */
	struct slot *free_next;
};

/*
 * The disk as it must be, and the requests in flight on each sector. A
 * sector is unknown after a write to it failed (fault injection only).
 */
struct model {
	uint8_t *disk;
	uint16_t readers[CAPACITY];
	uint16_t writers[CAPACITY];
	bool unknown[CAPACITY];
};

FIXTURE(random_mix) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_opts opts;
	uint64_t seed, rng;
	unsigned int nqueues;
	struct model *m;
	struct slot *slots;
	struct slot *free[MAX_QUEUES];
	uint32_t wz_limit;		/* the config's max_write_zeroes_sectors,
					 * 0 when the backend cannot zero */
	unsigned int inflight, max_inflight;
	unsigned long counts[K_NR];
	unsigned long nr, failures;
	unsigned long completed;	/* requests reaped */
	unsigned int faults;		/* VBLK_FAULTS: percent, 0 = none */
	bool faults_on;
	pid_t worker;			/* the device's vhost worker */
	unsigned long faulted;		/* requests failed by a fault */
};

static uint64_t next_rand(FIXTURE_DATA(random_mix) *self)
{
	/* xorshift64* */
	self->rng ^= self->rng >> 12;
	self->rng ^= self->rng << 25;
	self->rng ^= self->rng >> 27;
	return self->rng * 0x2545f4914f6cdd1dULL;
}

/* A number in [0, n). */
static uint64_t rnd(FIXTURE_DATA(random_mix) *self, uint64_t n)
{
	return n ? next_rand(self) % n : 0;
}

static bool chance(FIXTURE_DATA(random_mix) *self, unsigned int percent)
{
	return rnd(self, 100) < percent;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ------------------------------------------------------------------------
 * Fault injection
 */

static int fault_write(const char *fault, const char *attr, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), FAULT_DEBUGFS "%s/%s", fault, attr);
	return vblk_write_file(path, val);
}

/* The fault's "times" left; -1 if unreadable. */
static long fault_times_left(const char *fault)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), FAULT_DEBUGFS "%s/times", fault);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static int set_make_it_fail(const char *dir, const char *name, bool on)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/%s/make-it-fail", dir, name);
	return vblk_write_file(path, on ? "1" : "0");
}

static const char *const fault_names[] = { "fail_make_request", "failslab" };

/* Arms both faults for the backend and the worker. */
static void faults_start(struct __test_metadata *_metadata,
			 FIXTURE_DATA(random_mix) *self)
{
	char pct[16], times[24], pid[16];
	unsigned int i;
	int ret;

	snprintf(pct, sizeof(pct), "%u", self->faults);
	snprintf(times, sizeof(times), "%ld", FAULT_TIMES);
	self->worker = vblk_vhost_worker(getpid());
	ASSERT_LT(0, self->worker) TH_LOG("no thread vhost-%d", (int)getpid());
	snprintf(pid, sizeof(pid), "%d", (int)self->worker);

	/* Nothing fails until the filters are in place. */
	for (i = 0; i < ARRAY_SIZE(fault_names); i++) {
		ret = fault_write(fault_names[i], "probability", "0");
		ASSERT_EQ(0, ret) TH_LOG(FAULT_DEBUGFS "%s: %s (a kernel with fault injection and debugfs?)",
					 fault_names[i], strerror(-ret));
	}
	self->faults_on = true;
	/* failslab: only the worker's allocations, sleeping ones included. */
	ASSERT_EQ(0, fault_write("failslab", "task-filter", "Y"));
	ASSERT_EQ(0, fault_write("failslab", "ignore-gfp-wait", "N"));
	ASSERT_EQ(0, fault_write("failslab", "cache-filter", "N"));
	/* fail_make_request: the disk's make-it-fail is its filter. */
	ASSERT_EQ(0, fault_write("fail_make_request", "task-filter", "N"));
	for (i = 0; i < ARRAY_SIZE(fault_names); i++) {
		ASSERT_EQ(0, fault_write(fault_names[i], "interval", "1"));
		ASSERT_EQ(0, fault_write(fault_names[i], "space", "0"));
		ASSERT_EQ(0, fault_write(fault_names[i], "verbose", "1"));
		ASSERT_EQ(0, fault_write(fault_names[i], "times", times));
	}
	ASSERT_EQ(0, set_make_it_fail("/proc", pid, true));
	ASSERT_EQ(0, set_make_it_fail("/sys/block", self->be.name, true));
	for (i = 0; i < ARRAY_SIZE(fault_names); i++)
		ASSERT_EQ(0, fault_write(fault_names[i], "probability", pct));
	TH_LOG("faults: %u%% of the bios on %s, %u%% of the slab allocations of thread %d (vhost-%d)",
	       self->faults, self->be.name, self->faults, (int)self->worker,
	       (int)getpid());
}

/*
 * Disarms both faults; what each injected goes to @injected (if not NULL).
 * Best effort: it also runs from the teardown after a failed assertion.
 */
static void faults_stop(FIXTURE_DATA(random_mix) *self, long injected[2])
{
	char pid[16];
	unsigned int i;
	long left;

	if (!self->faults_on)
		return;
	self->faults_on = false;
	for (i = 0; i < ARRAY_SIZE(fault_names); i++)
		fault_write(fault_names[i], "probability", "0");
	set_make_it_fail("/sys/block", self->be.name, false);
	if (self->worker > 0) {
		snprintf(pid, sizeof(pid), "%d", (int)self->worker);
		set_make_it_fail("/proc", pid, false);
	}
	for (i = 0; i < ARRAY_SIZE(fault_names); i++) {
		left = fault_times_left(fault_names[i]);
		if (injected)
			injected[i] = left < 0 ? -1 : FAULT_TIMES - left;
	}
}

FIXTURE_SETUP(random_mix)
{
	struct vblk_backend_opts bo = { .size = DISK_SIZE, .discard = true };
	static const unsigned int sizes[] = { 64, 128, 256 };
	struct vhost_blk_config cfg;
	unsigned int q, i;
	int ret;

	self->faults = env_u64("VBLK_FAULTS", 0);
	ASSERT_GE(100U, self->faults);
	self->seed = env_u64("VBLK_SEED", now_ns() ^ ((uint64_t)getpid() << 32));
	self->rng = self->seed ? self->seed : 1;
	TH_LOG("seed %llu (VBLK_SEED=%llu repeats this run)",
	       (unsigned long long)self->seed, (unsigned long long)self->seed);

	self->nqueues = 2 + rnd(self, MAX_QUEUES - 1);
	self->opts = (struct vblk_opts){
		.features = (chance(self, 50) ? F_EVENT_IDX : 0) |
			    (chance(self, 50) ? F_INDIRECT : 0),
		.nqueues = self->nqueues,
		.queue_size = sizes[rnd(self, ARRAY_SIZE(sizes))],
	};
	TH_LOG("%u queues of %u, event_idx %s, indirect %s", self->nqueues,
	       self->opts.queue_size,
	       self->opts.features & F_EVENT_IDX ? "on" : "off",
	       self->opts.features & F_INDIRECT ? "on" : "off");

	self->m = calloc(1, sizeof(*self->m));
	ASSERT_NE(NULL, self->m);
	self->m->disk = malloc(DISK_SIZE);
	ASSERT_NE(NULL, self->m->disk);
	vblk_pattern_fill(self->m->disk, DISK_SIZE, self->seed);

	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	ret = vblk_backend_pwrite(&self->be, self->m->disk, DISK_SIZE, 0);
	if (!ret)
		ret = vblk_dev_start(&self->dev, &self->opts, self->be.path, O_RDWR);
	if (!ret)
		ret = vblk_dev_set_serial(&self->dev, SERIAL);
	if (!ret)
		ret = vblk_dev_get_config(&self->dev, &cfg);
	if (ret) {
		vblk_dev_close(&self->dev);
		vblk_backend_destroy(&self->be);
	}
	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
	self->wz_limit = le32toh(cfg.max_write_zeroes_sectors);
	ASSERT_LT(self->wz_limit + 1000, CAPACITY);
	/* Without the command, the device offers no WRITE_ZEROES (no emulation). */

	self->slots = calloc(self->nqueues * SLOTS, sizeof(*self->slots));
	ASSERT_NE(NULL, self->slots);
	for (q = 0; q < self->nqueues; q++) {
		for (i = 0; i < SLOTS; i++) {
			struct slot *s = &self->slots[q * SLOTS + i];

			ASSERT_EQ(0, vblk_mem_alloc_in(&self->dev.mem, i % 2,
						       SLOT_AREA, VBLK_PAGE_SIZE,
						       &s->area));
			s->free_next = self->free[q];
			self->free[q] = s;
		}
	}
	if (self->faults)
		faults_start(_metadata, self);
}

FIXTURE_TEARDOWN(random_mix)
{
	faults_stop(self, NULL);
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
	if (self->m)
		free(self->m->disk);
	free(self->m);
	free(self->slots);
}

/* ------------------------------------------------------------------------
 * The model: sector ranges in flight
 */

static bool conflicts(const struct model *m, const struct extent *e)
{
	uint64_t s;

	for (s = e->sector; s < e->sector + e->num; s++)
		if (m->writers[s] || (e->write && m->readers[s]))
			return true;
	return false;
}

static void lock(struct model *m, const struct extent *e, int delta)
{
	uint64_t s;

	for (s = e->sector; s < e->sector + e->num; s++) {
		if (e->write)
			m->writers[s] += delta;
		else
			m->readers[s] += delta;
	}
}

/*
 * The first offset at which @buf differs from the model's bytes at @disk_off,
 * or -1; bytes of unknown sectors are not compared.
 */
static ssize_t model_diff(const struct model *m, uint64_t disk_off,
			  const uint8_t *buf, size_t len)
{
	size_t pos = 0, chunk;
	ssize_t at;

	while (pos < len) {
		uint64_t at_disk = disk_off + pos;

		chunk = VBLK_SECTOR_SIZE - at_disk % VBLK_SECTOR_SIZE;
		if (chunk > len - pos)
			chunk = len - pos;
		if (!m->unknown[at_disk / VBLK_SECTOR_SIZE]) {
			at = vblk_mem_diff(buf + pos, m->disk + at_disk, chunk);
			if (at >= 0)
				return pos + at;
		}
		pos += chunk;
	}
	return -1;
}

/* ------------------------------------------------------------------------
 * Requests
 */

/* A valid sector range of up to @max sectors. */
static struct extent random_extent(FIXTURE_DATA(random_mix) *self, uint32_t max,
				   bool write)
{
	/* Mostly small: 1 to 8 sectors half of the time. */
	uint32_t num = 1 + rnd(self, chance(self, 50) ? 8 : max);

	return (struct extent){ rnd(self, CAPACITY - num + 1), num, write };
}

/*
 * Lays @len bytes of data out as segments in the slot's area: up to
 * MAX_SEGS of them, in whole sectors at sector offsets, or (@odd) of any
 * lengths at any offsets, which the device copies through bounce pages.
 */
static void layout(FIXTURE_DATA(random_mix) *self, struct slot *s, size_t len,
		   bool odd)
{
	unsigned int n = 1 + rnd(self, MAX_SEGS), i;
	size_t unit = odd ? 1 : VBLK_SECTOR_SIZE, off = 0, left = len;

	if (n > len / unit)
		n = len / unit ? len / unit : 1;
	for (i = 0; i < n; i++) {
		size_t piece = i + 1 == n ? left :
			       unit * (1 + rnd(self, (left / unit) - (n - i - 1)));

		off += unit * rnd(self, odd ? 700 : 3);
		s->segs[i] = vblk_buf_slice(&s->area, off, piece);
		off += piece;
		left -= piece;
	}
	s->req.nsegs = n;
	s->extent_end = off;
}

/* The segments of @s hold, in order, the pattern of @seed. */
static void fill_segments(struct slot *s, uint64_t seed)
{
	static uint8_t data[MAX_SECTORS * VBLK_SECTOR_SIZE];
	size_t len = vblk_bufs_len(s->segs, s->req.nsegs);

	vblk_pattern_fill(data, len, seed);
	vblk_bufs_scatter(s->segs, s->req.nsegs, data);
}

/* One range segment per extent, in the area. */
static void write_ranges(struct slot *s, const struct extent *ext,
			 unsigned int n, const uint32_t *flags)
{
	struct virtio_blk_discard_write_zeroes *r = s->area.hva;
	unsigned int i;

	for (i = 0; i < n; i++) {
		r[i].sector = htole64(ext[i].sector);
		r[i].num_sectors = htole32(ext[i].num);
		r[i].flags = htole32(flags ? flags[i] : 0);
	}
	s->segs[0] = vblk_buf_slice(&s->area, 0, n * sizeof(*r));
	s->req.nsegs = 1;
	s->extent_end = n * sizeof(*r);
}

/* A read or write of a valid range. */
static void make_rw(FIXTURE_DATA(random_mix) *self, struct slot *s, bool write)
{
	struct extent e = random_extent(self, MAX_SECTORS, write);
	size_t len = (size_t)e.num * VBLK_SECTOR_SIZE;

	s->ext[0] = e;
	s->n_ext = 1;
	s->req.type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	s->req.sector = e.sector;
	layout(self, s, len, chance(self, 25));
	s->want_used = write ? 1 : len + 1;
	if (write)
		fill_segments(s, next_rand(self));
}

/*
 * A DISCARD or WRITE_ZEROES of valid segments. A backend that cannot zero
 * (null_blk) gets no WRITE_ZEROES offered: such a request completes UNSUPP
 * and changes nothing.
 */
static void make_zeroing(FIXTURE_DATA(random_mix) *self, struct slot *s,
			 uint32_t type)
{
	unsigned int n = 1 + rnd(self, MAX_RANGES), i;
	uint32_t flags[MAX_RANGES] = { 0 };

	for (i = 0; i < n; i++) {
		s->ext[i] = random_extent(self, RANGE_MAX_SECTORS, true);
		if (type == VIRTIO_BLK_T_WRITE_ZEROES && chance(self, 50))
			flags[i] = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	}
	s->req.type = type;
	write_ranges(s, s->ext, n, flags);
	if (type == VIRTIO_BLK_T_WRITE_ZEROES && !self->wz_limit) {
		s->want_status = VIRTIO_BLK_S_UNSUPP;
		s->untouched = true;
		return;
	}
	s->n_ext = n;
	s->zero = true;
}

static void make_get_id(FIXTURE_DATA(random_mix) *self, struct slot *s)
{
	size_t len = 1 + rnd(self, 2 * VIRTIO_BLK_ID_BYTES);

	s->req.type = VIRTIO_BLK_T_GET_ID;
	size_t off = rnd(self, 4096);

	s->segs[0] = vblk_buf_slice(&s->area, off, len);
	s->req.nsegs = 1;
	s->extent_end = off + len;
	s->want_used = 1 + (len < VIRTIO_BLK_ID_BYTES ? len : VIRTIO_BLK_ID_BYTES);
}

/* A read or write that starts or ends beyond the capacity. */
static void make_out_of_range(FIXTURE_DATA(random_mix) *self, struct slot *s)
{
	uint32_t num = 1 + rnd(self, 16);
	uint64_t sector;

	switch (rnd(self, 4)) {
	case 0:		/* starts beyond */
		sector = CAPACITY + rnd(self, 1ULL << 40);
		break;
	case 1:		/* runs past the end */
		sector = CAPACITY - rnd(self, num);
		break;
	case 2:		/* sector + length overflows */
		sector = -(uint64_t)rnd(self, num) - 1;
		break;
	default:
		sector = (1ULL << 63) + rnd(self, 1ULL << 62);
		break;
	}
	if (sector + num <= CAPACITY && sector < CAPACITY)
		sector = CAPACITY;
	s->req.type = chance(self, 50) ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
	s->req.sector = sector;
	layout(self, s, (size_t)num * VBLK_SECTOR_SIZE, chance(self, 25));
	s->want_status = VIRTIO_BLK_S_IOERR;
	s->untouched = true;
}

static void make_bad_length(FIXTURE_DATA(random_mix) *self, struct slot *s)
{
	size_t len = VBLK_SECTOR_SIZE * rnd(self, 16) + 1 + rnd(self, 511);

	s->req.type = chance(self, 50) ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
	s->req.sector = rnd(self, CAPACITY - 32);
	layout(self, s, len, true);
	s->want_status = VIRTIO_BLK_S_IOERR;
	s->untouched = true;
}

/* Data the device would write for OUT, or read for IN and GET_ID. */
static void make_wrong_direction(FIXTURE_DATA(random_mix) *self, struct slot *s)
{
	static const uint32_t types[] = {
		VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_GET_ID,
	};

	s->req.type = types[rnd(self, ARRAY_SIZE(types))];
	s->req.sector = rnd(self, CAPACITY - 32);
	s->req.dir = s->req.type == VIRTIO_BLK_T_OUT ? VBLK_DIR_IN : VBLK_DIR_OUT;
	layout(self, s, VBLK_SECTOR_SIZE * (1 + rnd(self, 16)), false);
	s->want_status = VIRTIO_BLK_S_IOERR;
	s->untouched = true;
}

static void make_unknown_type(FIXTURE_DATA(random_mix) *self, struct slot *s)
{
	static const uint32_t types[] = {
		2, 3, 5, 6, 7, 9, 10, 12, 15, 16, 20, 26, 27, 0x80000000,
	};

	s->req.type = chance(self, 70) ? types[rnd(self, ARRAY_SIZE(types))] :
		      27 + rnd(self, 0xffffffffULL - 27);
	s->req.sector = next_rand(self);
	if (chance(self, 70)) {
		s->req.dir = chance(self, 50) ? VBLK_DIR_IN : VBLK_DIR_OUT;
		layout(self, s, 1 + rnd(self, 8 * KiB), chance(self, 50));
	}
	s->want_status = VIRTIO_BLK_S_UNSUPP;
	s->untouched = true;
}

/*
 * DISCARD or WRITE_ZEROES whose segments are wrong: IOERR; UNSUPP for a
 * WRITE_ZEROES the device does not offer.
 */
static void make_bad_segments(FIXTURE_DATA(random_mix) *self, struct slot *s)
{
	struct extent ext[VHOST_BLK_MAX_RANGE_SEGS + 1];
	unsigned int n = 1 + rnd(self, MAX_RANGES), i, bad;

	s->req.type = chance(self, 50) ? VIRTIO_BLK_T_DISCARD :
		      VIRTIO_BLK_T_WRITE_ZEROES;
	for (i = 0; i < ARRAY_SIZE(ext); i++)
		ext[i] = random_extent(self, RANGE_MAX_SECTORS, true);
	bad = rnd(self, n);
	switch (rnd(self, 6)) {
	case 0:		/* no segment */
		n = 0;
		break;
	case 1:		/* too many */
		n = VHOST_BLK_MAX_RANGE_SEGS + 1;
		break;
	case 2:		/* beyond the capacity */
		ext[bad].sector = CAPACITY - rnd(self, ext[bad].num);
		break;
	case 3:		/* overflowing it */
		ext[bad].sector = -(uint64_t)rnd(self, ext[bad].num) - 1;
		break;
	case 4:		/* longer than the device's limit */
		s->req.type = VIRTIO_BLK_T_WRITE_ZEROES;
		ext[bad].sector = 0;
		ext[bad].num = self->wz_limit + 1 + rnd(self, 1000);
		break;
	default:	/* in a device-writable buffer */
		s->req.dir = VBLK_DIR_IN;
		break;
	}
	write_ranges(s, ext, n, NULL);
	if (!n)
		s->req.nsegs = 0;
	else if (chance(self, 20))	/* and a partial segment on top */
		s->segs[0].len += 1 + rnd(self, 15);
	s->want_status = s->req.type == VIRTIO_BLK_T_WRITE_ZEROES &&
			 !self->wz_limit && s->req.dir != VBLK_DIR_IN ?
			 VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_IOERR;
	s->untouched = true;
}

/* Range requests the device does not support: UNSUPP. */
static void make_unsupported_segments(FIXTURE_DATA(random_mix) *self,
				      struct slot *s)
{
	struct extent ext[MAX_RANGES];
	uint32_t flags[MAX_RANGES] = { 0 };
	unsigned int n = 1 + rnd(self, MAX_RANGES), i;

	for (i = 0; i < n; i++)
		ext[i] = random_extent(self, RANGE_MAX_SECTORS, true);
	switch (rnd(self, 3)) {
	case 0:		/* a flag neither type knows */
		s->req.type = chance(self, 50) ? VIRTIO_BLK_T_DISCARD :
			      VIRTIO_BLK_T_WRITE_ZEROES;
		flags[rnd(self, n)] = 2U << rnd(self, 31);
		break;
	case 1:		/* UNMAP is WRITE_ZEROES's */
		s->req.type = VIRTIO_BLK_T_DISCARD;
		flags[rnd(self, n)] = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
		break;
	default:	/* null_blk cannot secure erase */
		s->req.type = VIRTIO_BLK_T_SECURE_ERASE;
		break;
	}
	write_ranges(s, ext, n, flags);
	s->want_status = VIRTIO_BLK_S_UNSUPP;
	s->untouched = true;
}

static void make_flush_with_data(FIXTURE_DATA(random_mix) *self, struct slot *s)
{
	s->req.type = VIRTIO_BLK_T_FLUSH;
	s->req.dir = chance(self, 50) ? VBLK_DIR_IN : VBLK_DIR_OUT;
	layout(self, s, VBLK_SECTOR_SIZE * (1 + rnd(self, 8)), false);
	s->want_status = VIRTIO_BLK_S_IOERR;
	s->untouched = true;
}

static enum kind random_kind(FIXTURE_DATA(random_mix) *self)
{
	unsigned int r = rnd(self, 100), k;

	for (k = 0; k < K_NR - 1 && r >= kind_weights[k]; k++)
		r -= kind_weights[k];
	return k;
}

/*
 * The bytes of the area around the segments, up to a sector past the last:
 * @fill sets them to GUARD_BYTE, else they are checked. The offset of the
 * first that is not a guard byte, or -1.
 */
static ssize_t guard_bytes(const struct slot *s, bool fill)
{
	uint8_t *base = s->area.hva;
	size_t off = 0, end = s->extent_end + VBLK_SECTOR_SIZE;
	unsigned int i;
	ssize_t bad;

	for (i = 0; i <= s->req.nsegs; i++) {
		size_t start = i < s->req.nsegs ?
			       (size_t)((uint8_t *)s->segs[i].hva - base) : end;

		if (start > off && fill) {
			memset(base + off, GUARD_BYTE, start - off);
		} else if (start > off) {
			bad = vblk_mem_check_byte(base + off, start - off, GUARD_BYTE);
			if (bad >= 0)
				return off + bad;
		}
		if (i < s->req.nsegs && start + s->segs[i].len > off)
			off = start + s->segs[i].len;
	}
	return -1;
}

/* Whether the device may write @req's data buffers. */
static bool data_in(const struct vblk_req *req)
{
	if (req->dir != VBLK_DIR_AUTO)
		return req->dir == VBLK_DIR_IN;
	return req->type == VIRTIO_BLK_T_IN || req->type == VIRTIO_BLK_T_GET_ID;
}

/* Fills @s with a random request. */
static void make_request(FIXTURE_DATA(random_mix) *self, struct slot *s)
{
	enum kind kind = random_kind(self);
	unsigned int i;

	vblk_req_init(&s->req, 0, 0, s->segs, 0);
	s->req.priv = s;
	s->kind = kind;
	s->n_ext = 0;
	s->zero = false;
	s->untouched = false;
	s->want_status = VIRTIO_BLK_S_OK;
	s->want_used = 1;
	s->extent_end = 0;

	switch (kind) {
	case K_READ:
	case K_WRITE:
		make_rw(self, s, kind == K_WRITE);
		break;
	case K_FLUSH:
		s->req.type = VIRTIO_BLK_T_FLUSH;
		s->req.sector = next_rand(self);
		break;
	case K_DISCARD:
		make_zeroing(self, s, VIRTIO_BLK_T_DISCARD);
		break;
	case K_WRITE_ZEROES:
		make_zeroing(self, s, VIRTIO_BLK_T_WRITE_ZEROES);
		break;
	case K_GET_ID:
		make_get_id(self, s);
		break;
	case K_BAD_RANGE:
		make_out_of_range(self, s);
		break;
	case K_BAD_LENGTH:
		make_bad_length(self, s);
		break;
	case K_WRONG_DIR:
		make_wrong_direction(self, s);
		break;
	case K_UNKNOWN_TYPE:
		make_unknown_type(self, s);
		break;
	case K_BAD_SEGMENTS:
		make_bad_segments(self, s);
		break;
	case K_UNSUPP_SEGMENTS:
		make_unsupported_segments(self, s);
		break;
	default:
		make_flush_with_data(self, s);
		break;
	}
	guard_bytes(s, true);
	/* Buffers the device writes, or must not write, hold FILL_BYTE. */
	for (i = 0; i < s->req.nsegs && data_in(&s->req); i++)
		memset(s->segs[i].hva, FILL_BYTE, s->segs[i].len);
	s->req.hdr_descs = chance(self, 20) ? 2 + rnd(self, 3) : 1;
	s->req.indirect = (self->opts.features & F_INDIRECT) && chance(self, 60);
}

/* ------------------------------------------------------------------------
 * Completion
 */

static void describe(const struct slot *s, char *buf, size_t len)
{
	snprintf(buf, len, "request %lu (%s, type %#x, sector %#llx, %u segs, %zu bytes, hdr/%u%s)",
		 s->nr, kind_names[s->kind], s->req.type,
		 (unsigned long long)s->req.sector, s->req.nsegs,
		 vblk_bufs_len(s->segs, s->req.nsegs), s->req.hdr_descs,
		 s->req.indirect ? ", indirect" : "");
}

/* What went wrong with a completed request, or NULL. */
static const char *check_done(FIXTURE_DATA(random_mix) *self, struct slot *s,
			      ssize_t *at)
{
	const struct model *m = self->m;
	size_t len = vblk_bufs_len(s->segs, s->req.nsegs);
	unsigned int i;
	size_t off = 0;

	*at = -1;
	/* Under fault injection, IOERR is the other answer to a valid request. */
	if (self->faults && s->want_status == VIRTIO_BLK_S_OK &&
	    s->req.status == VIRTIO_BLK_S_IOERR) {
		if (s->req.used_len != 1)
			return "used.len";
		if ((*at = guard_bytes(s, false)) >= 0)
			return "a guard byte";
		return NULL;
	}
	if (s->req.status != s->want_status)
		return "status";
	if (s->req.used_len != s->want_used)
		return "used.len";
	if ((*at = guard_bytes(s, false)) >= 0)
		return "a guard byte";
	if (s->kind == K_READ) {
		for (i = 0; i < s->req.nsegs; off += s->segs[i].len, i++) {
			*at = model_diff(m, s->req.sector * VBLK_SECTOR_SIZE + off,
					 s->segs[i].hva, s->segs[i].len);
			if (*at >= 0) {
				*at += off;
				return "data read";
			}
		}
	} else if (s->kind == K_GET_ID) {
		size_t n = len < VIRTIO_BLK_ID_BYTES ? len : VIRTIO_BLK_ID_BYTES;

		if (memcmp(s->segs[0].hva, SERIAL, n))
			return "the serial";
		if ((*at = vblk_mem_check_byte((uint8_t *)s->segs[0].hva + n,
					       len - n, FILL_BYTE)) >= 0)
			return "bytes after the serial";
	} else if (s->untouched && data_in(&s->req)) {
		for (i = 0; i < s->req.nsegs; i++) {
			*at = vblk_mem_check_byte(s->segs[i].hva, s->segs[i].len,
						  FILL_BYTE);
			if (*at >= 0)
				return "a buffer it must not write";
		}
	}
	return NULL;
}

/* Applies a completed request to the model and frees its slot. */
static void complete(struct __test_metadata *_metadata,
		     FIXTURE_DATA(random_mix) *self, unsigned int q, struct slot *s)
{
	unsigned int i;
	const char *what;
	char desc[192];
	ssize_t at;

	what = check_done(self, s, &at);
	if (what) {
		describe(s, desc, sizeof(desc));
		self->failures++;
		EXPECT_TRUE(!what)
			TH_LOG("seed %llu, queue %u, %s: wrong %s (status %u, want %u; used.len %u, want %u; offset %zd)",
			       (unsigned long long)self->seed, q, desc, what,
			       s->req.status, s->want_status, s->req.used_len,
			       s->want_used, at);
	}
	if (self->faults && s->want_status == VIRTIO_BLK_S_OK &&
	    s->req.status != VIRTIO_BLK_S_OK)
		self->faulted++;
	for (i = 0; i < s->n_ext; i++) {
		const struct extent *e = &s->ext[i];
		uint8_t *p = self->m->disk + e->sector * VBLK_SECTOR_SIZE;

		lock(self->m, e, -1);
		if (!e->write)
			continue;
		/* A failed write may have written any part of its range. */
		memset(&self->m->unknown[e->sector], s->req.status != VIRTIO_BLK_S_OK,
		       e->num * sizeof(self->m->unknown[0]));
		if (s->req.status != VIRTIO_BLK_S_OK)
			continue;
		if (s->zero)
			memset(p, 0, (size_t)e->num * VBLK_SECTOR_SIZE);
		else
			vblk_bufs_gather(s->segs, s->req.nsegs, p);
	}
	self->completed++;
	s->free_next = self->free[q];
	self->free[q] = s;
	self->inflight--;
}

/* Reaps what queue @q completed; waits for one first when @wait. */
static void reap(struct __test_metadata *_metadata, FIXTURE_DATA(random_mix) *self,
		 unsigned int q, bool wait)
{
	struct vblk_queue *vq = &self->dev.queues[q];
	struct vblk_req *req;
	int ret;

	if (wait) {
		ASSERT_LE(0, vblk_queue_kick(vq));
		ret = vblk_reap(vq, &req, VBLK_TIMEOUT_MS);
		ASSERT_EQ(0, ret) TH_LOG("seed %llu: queue %u, %u in flight: %s",
					 (unsigned long long)self->seed, q,
					 vq->inflight, strerror(-ret));
		complete(_metadata, self, q, req->priv);
	}
	while (vblk_queue_used_pending(vq)) {
		ASSERT_EQ(0, vblk_reap(vq, &req, 0));
		complete(_metadata, self, q, req->priv);
	}
}

/* Reaps at least one request of any queue that has some in flight. */
static void reap_any(struct __test_metadata *_metadata,
		     FIXTURE_DATA(random_mix) *self)
{
	unsigned int q;

	for (q = 0; q < self->nqueues; q++)
		ASSERT_LE(0, vblk_queue_kick(&self->dev.queues[q]));
	for (q = 0; q < self->nqueues; q++) {
		if (self->dev.queues[q].inflight) {
			reap(_metadata, self, q, true);
			return;
		}
	}
}

/* Whether @s overlaps a request in flight that writes, or writes where
 * one in flight reads. */
static bool slot_conflicts(FIXTURE_DATA(random_mix) *self, const struct slot *s)
{
	unsigned int i;

	for (i = 0; i < s->n_ext; i++)
		if (conflicts(self->m, &s->ext[i]))
			return true;
	return false;
}

/*
 * Submits one random request on queue @q. It waits, rather than draws
 * another, when it overlaps requests in flight or the queue has no room: the
 * requests a seed makes do not depend on timing.
 */
static void submit_one(struct __test_metadata *_metadata,
		       FIXTURE_DATA(random_mix) *self, unsigned int q)
{
	struct vblk_queue *vq = &self->dev.queues[q];
	struct slot *s;
	unsigned int i;
	int ret;

	while (!self->free[q])
		reap(_metadata, self, q, true);
	s = self->free[q];
	self->free[q] = s->free_next;
	make_request(self, s);
	while (slot_conflicts(self, s))
		reap_any(_metadata, self);
	while (vblk_req_ring_descs(&s->req) > vq->nfree)
		reap(_metadata, self, q, true);
	for (i = 0; i < s->n_ext; i++)
		lock(self->m, &s->ext[i], 1);
	s->nr = self->nr++;
	self->counts[s->kind]++;
	ret = vblk_queue_add(vq, &s->req);
	ASSERT_EQ(0, ret) TH_LOG("add: %s", strerror(-ret));
	if (++self->inflight > self->max_inflight)
		self->max_inflight = self->inflight;
	if (chance(self, 40))
		ASSERT_LE(0, vblk_queue_kick(vq));
}

/* The whole block device holds what the model says. */
static void check_device(struct __test_metadata *_metadata,
			 FIXTURE_DATA(random_mix) *self)
{
	uint8_t *data = malloc(DISK_SIZE);
	unsigned long unknown = 0, s;
	ssize_t bad;

	ASSERT_NE(NULL, data);
	ASSERT_EQ(0, vblk_backend_pread(&self->be, data, DISK_SIZE, 0));
	bad = model_diff(self->m, 0, data, DISK_SIZE);
	free(data);
	ASSERT_EQ(-1, bad) TH_LOG("seed %llu: the device differs at sector %zd",
				  (unsigned long long)self->seed,
				  bad / VBLK_SECTOR_SIZE);
	for (s = 0; s < CAPACITY; s++)
		unknown += self->m->unknown[s];
	if (unknown)
		TH_LOG("%lu sectors not compared: a write to them failed", unknown);
}

TEST_F_TIMEOUT(random_mix, a_random_mix_of_requests_matches_the_model, 120)
{
	uint64_t end = now_ns() + env_u64("VBLK_RANDOM_SECONDS", 20) * 1000000000ULL;
	unsigned int q, k;

	while (now_ns() < end && self->failures < MAX_FAILURES) {
		for (k = 0; k < 16; k++) {
			q = rnd(self, self->nqueues);
			submit_one(_metadata, self, q);
		}
		for (q = 0; q < self->nqueues; q++)
			reap(_metadata, self, q, false);
	}
	/* Drain every queue. */
	for (q = 0; q < self->nqueues; q++)
		while (self->dev.queues[q].inflight)
			reap(_metadata, self, q, true);
	ASSERT_EQ(0U, self->inflight);
	/* None lost: every request submitted came back. */
	ASSERT_EQ(self->nr, self->completed);

	TH_LOG("%lu requests, up to %u in flight", self->nr, self->max_inflight);
	for (k = 0; k < K_NR; k++)
		TH_LOG("  %-22s %lu", kind_names[k], self->counts[k]);
	if (self->faults) {
		long injected[2];

		faults_stop(self, injected);
		TH_LOG("faults injected: %ld bios failed, %ld slab allocations failed; %lu requests failed by them",
		       injected[0], injected[1], self->faulted);
		EXPECT_LT(0, injected[0]) TH_LOG("fail_make_request never fired");
		EXPECT_LT(0, injected[1]) TH_LOG("failslab never fired");
		EXPECT_LT(0UL, self->faulted) TH_LOG("no request failed");
	}
	EXPECT_EQ(0UL, self->failures);
	check_device(_metadata, self);
}

TEST_HARNESS_MAIN
