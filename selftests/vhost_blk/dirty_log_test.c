// SPDX-License-Identifier: GPL-2.0
/*
 * Dirty logging for live migration (VHOST_F_LOG_ALL with a log base): every
 * guest page a request writes must be marked in the log bitmap, and no
 * other page. A request writes its device-writable buffers (the data of IN
 * and GET_ID, and the status byte) and, through the vhost core, the used
 * ring; the driver-readable header, OUT data, indirect tables and the avail
 * ring are never marked.
 *
 * Each test clears the whole bitmap, runs requests, and compares the whole
 * bitmap with the set of pages it expects, bit by bit. The rings have 256
 * entries, so the used ring fits one page.
 *
 * Needs root, the vhost_blk module loaded and null_blk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define KiB		1024UL
#define MiB		(1024UL * 1024)

#define QUEUE_SIZE	256
#define DISK_SIZE	(16 * MiB)
#define DISK_SEED	0x10661ULL
#define BATCH		32
#define SLOW_NS		200000000UL
/*
 * Descriptors kept out of use: the library puts a request's status byte in
 * a slot indexed by its head, and the slots of the lowest heads share the
 * used ring's page. Heads from PARKED up have their status on pages of
 * their own, so that a missing status mark shows.
 */
#define PARKED		128

#define F_EVENT_IDX	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_INDIRECT	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)

FIXTURE(dirty_log) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_queue *q;
	uint8_t *want;		/* the bitmap each test expects */
};

FIXTURE_VARIANT(dirty_log) {
	uint64_t features;
};

FIXTURE_VARIANT_ADD(dirty_log, plain) {
	.features = 0,
};

FIXTURE_VARIANT_ADD(dirty_log, event_idx_indirect) {
	.features = F_EVENT_IDX | F_INDIRECT,
};

FIXTURE_SETUP(dirty_log)
{
	struct vblk_backend_opts bo = { .size = DISK_SIZE };
	struct vblk_opts o = {
		.features = variant->features, .queue_size = QUEUE_SIZE,
	};
	uint8_t *disk = malloc(MiB);
	uint16_t parked[PARKED];
	int ret;

	ASSERT_NE(NULL, disk);
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	/* The first MiB holds a pattern to read. */
	vblk_pattern_fill(disk, MiB, DISK_SEED);
	ret = vblk_backend_pwrite(&self->be, disk, MiB, 0);
	free(disk);
	if (!ret)
		ret = vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR);
	if (!ret)
		ret = vblk_dev_log_start(&self->dev);
	if (ret) {
		vblk_dev_close(&self->dev);
		vblk_backend_destroy(&self->be);
	}
	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
	self->q = &self->dev.queues[0];
	ASSERT_EQ(0, vblk_queue_take_descs(self->q, PARKED, parked));
	self->want = calloc(1, self->dev.log_size);
	ASSERT_NE(NULL, self->want);
}

FIXTURE_TEARDOWN(dirty_log)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
	free(self->want);
}

/* Expects the pages of [@gpa, @gpa + @len) marked. */
static void want_marked(FIXTURE_DATA(dirty_log) *self, uint64_t gpa, size_t len)
{
	uint64_t page;

	for (page = gpa / VBLK_PAGE_SIZE; len && page <= (gpa + len - 1) / VBLK_PAGE_SIZE;
	     page++)
		if (page / 8 < self->dev.log_size)
			self->want[page / 8] |= 1U << (page % 8);
}

/* The used ring: flags, index, entries and avail_event. */
static size_t used_ring_len(void)
{
	return 3 * sizeof(uint16_t) + QUEUE_SIZE * sizeof(struct vring_used_elem);
}

static void want_used_ring(FIXTURE_DATA(dirty_log) *self)
{
	want_marked(self, self->q->used_gpa, used_ring_len());
}

static void want_status(struct __test_metadata *_metadata,
			FIXTURE_DATA(dirty_log) *self, const struct vblk_req *req)
{
	uint64_t gpa = self->q->meta.gpa + (size_t)req->head * VBLK_META_SLOT +
		       VBLK_HDR_SIZE;

	/* On a page of its own, or its mark could be the used ring's. */
	ASSERT_LT((self->q->used_gpa + used_ring_len() - 1) / VBLK_PAGE_SIZE,
		  gpa / VBLK_PAGE_SIZE) TH_LOG("head %u", req->head);
	want_marked(self, gpa, 1);
}

/* Starts a test: nothing marked, nothing expected. */
static void clear(FIXTURE_DATA(dirty_log) *self)
{
	vblk_log_clear(&self->dev);
	memset(self->want, 0, self->dev.log_size);
}

/* The bitmap is exactly the expected one; lists the pages that differ. */
static void check_log(struct __test_metadata *_metadata,
		      FIXTURE_DATA(dirty_log) *self)
{
	unsigned int wrong = 0, bit;
	size_t i;

	for (i = 0; i < self->dev.log_size; i++) {
		uint8_t diff = self->dev.log[i] ^ self->want[i];

		for (bit = 0; diff && bit < 8; bit++) {
			uint64_t gpa = (i * 8 + bit) * VBLK_PAGE_SIZE;

			if (!(diff & (1U << bit)))
				continue;
			if (++wrong <= 8)
				TH_LOG("page %#llx: %s", (unsigned long long)gpa,
				       self->want[i] & (1U << bit) ?
				       "not marked" : "marked, but not written");
		}
	}
	EXPECT_EQ(0U, wrong);
}

/* The log marks what the test expects, plus @req's status byte and the
 * used ring, and nothing else. */
static void check_log_of(struct __test_metadata *_metadata,
			 FIXTURE_DATA(dirty_log) *self, const struct vblk_req *req)
{
	want_status(_metadata, self, req);
	want_used_ring(self);
	check_log(_metadata, self);
}

/* A buffer at @off in a fresh page of region @region; a page stays
 * unused after it, so that marks spilling over show. */
static struct vblk_buf buf_at(struct __test_metadata *_metadata,
			      FIXTURE_DATA(dirty_log) *self,
			      unsigned int region, size_t off, size_t len)
{
	struct vblk_buf page;
	size_t span = (off + len + VBLK_PAGE_SIZE - 1) / VBLK_PAGE_SIZE + 1;

	ASSERT_EQ(0, vblk_mem_alloc_in(&self->dev.mem, region,
				       span * VBLK_PAGE_SIZE, VBLK_PAGE_SIZE,
				       &page));
	return vblk_buf_slice(&page, off, len);
}

static int exec(FIXTURE_DATA(dirty_log) *self,
		const FIXTURE_VARIANT(dirty_log) *variant, struct vblk_req *req,
		uint32_t type, uint64_t sector, const struct vblk_buf *segs,
		unsigned int nsegs)
{
	vblk_req_init(req, type, sector, segs, nsegs);
	req->indirect = variant->features & F_INDIRECT;
	return vblk_exec(self->q, req);
}

/* Reads the disk's pattern at @sector into @segs and checks it. */
static void read_and_check(struct __test_metadata *_metadata,
			   FIXTURE_DATA(dirty_log) *self,
			   const FIXTURE_VARIANT(dirty_log) *variant,
			   uint64_t sector, const struct vblk_buf *segs,
			   unsigned int n, struct vblk_req *req)
{
	size_t len = vblk_bufs_len(segs, n);
	uint8_t *want = malloc(MiB), *got = malloc(len);
	unsigned int i;

	ASSERT_NE(NULL, want);
	ASSERT_NE(NULL, got);
	for (i = 0; i < n; i++)
		memset(segs[i].hva, 0, segs[i].len);
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec(self, variant, req, VIRTIO_BLK_T_IN,
					sector, segs, n));
	EXPECT_EQ(len + 1, req->used_len);
	vblk_pattern_fill(want, MiB, DISK_SEED);
	vblk_bufs_gather(segs, n, got);
	EXPECT_EQ(0, memcmp(want + sector * VBLK_SECTOR_SIZE, got, len));
	free(want);
	free(got);
}

/* A read into @segs marks exactly their pages, its status and the used ring. */
static void expect_read_marks(struct __test_metadata *_metadata,
			      FIXTURE_DATA(dirty_log) *self,
			      const FIXTURE_VARIANT(dirty_log) *variant,
			      uint64_t sector, const struct vblk_buf *segs,
			      unsigned int n)
{
	struct vblk_req req;
	unsigned int i;

	clear(self);
	read_and_check(_metadata, self, variant, sector, segs, n, &req);
	for (i = 0; i < n; i++)
		want_marked(self, segs[i].gpa, segs[i].len);
	check_log_of(_metadata, self, &req);
}

TEST_F(dirty_log, in_marks_exactly_its_data_pages_its_status_byte_and_the_used_ring)
{
	/* Pages apart, in both regions, one across a page boundary. */
	struct vblk_buf segs[] = {
		buf_at(_metadata, self, 0, 0, 4 * KiB),
		buf_at(_metadata, self, 1, 0, 8 * KiB),
		buf_at(_metadata, self, 0, 2 * KiB, 4 * KiB),
		buf_at(_metadata, self, 1, 3584, 512),
		buf_at(_metadata, self, 1, 512, 1 * KiB),
	};

	expect_read_marks(_metadata, self, variant, 8, segs, ARRAY_SIZE(segs));
}

#ifdef VBLK_FAULT_TESTS
#define FAILSLAB	"/sys/kernel/debug/failslab/"

static int failslab(const char *attr, const char *val)
{
	char path[96];

	snprintf(path, sizeof(path), FAILSLAB "%s", attr);
	return vblk_write_file(path, val);
}

/*
 * A read whose copy of the log ranges cannot be allocated completes IOERR,
 * and its status byte is marked all the same: the destination of a
 * migration must not show the old one. The worker's next slab allocation
 * is made to fail (failslab); that is the copy, the first thing a read
 * allocates. Built into dirty_log_faults only (VBLK_FAULT_TESTS), which
 * make check-debug runs on its kernel with fault injection.
 */
TEST_F(dirty_log, status_byte_is_marked_when_the_log_copy_cannot_be_allocated)
{
	struct vblk_buf seg = buf_at(_metadata, self, 0, 0, 4 * KiB);
	char path[64];
	struct vblk_req req;
	pid_t worker;
	int status;

	ASSERT_EQ(0, access(FAILSLAB, F_OK)) TH_LOG("a kernel with failslab");
	worker = vblk_vhost_worker(getpid());
	ASSERT_LT(0, worker);
	snprintf(path, sizeof(path), "/proc/%d/make-it-fail", (int)worker);
	ASSERT_EQ(0, failslab("probability", "0"));
	ASSERT_EQ(0, failslab("task-filter", "Y"));
	ASSERT_EQ(0, failslab("ignore-gfp-wait", "N"));
	ASSERT_EQ(0, failslab("cache-filter", "N"));
	ASSERT_EQ(0, failslab("interval", "1"));
	ASSERT_EQ(0, failslab("space", "0"));
	ASSERT_EQ(0, failslab("times", "1"));
	ASSERT_EQ(0, vblk_write_file(path, "1"));
	ASSERT_EQ(0, failslab("probability", "100"));

	clear(self);
	memset(seg.hva, 0, seg.len);
	status = exec(self, variant, &req, VIRTIO_BLK_T_IN, 8, &seg, 1);
	failslab("probability", "0");
	vblk_write_file(path, "0");
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, status);
	EXPECT_EQ(1U, req.used_len);
	check_log_of(_metadata, self, &req);
}
#endif

TEST_F(dirty_log, out_marks_only_its_status_byte_and_the_used_ring)
{
	struct vblk_buf segs[] = {
		buf_at(_metadata, self, 0, 0, 4 * KiB),
		buf_at(_metadata, self, 1, 1 * KiB, 8 * KiB),
	};
	struct vblk_req req;

	vblk_pattern_fill(segs[0].hva, segs[0].len, 1);
	vblk_pattern_fill(segs[1].hva, segs[1].len, 2);
	clear(self);
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec(self, variant, &req, VIRTIO_BLK_T_OUT,
					4096, segs, ARRAY_SIZE(segs)));
	EXPECT_EQ(1U, req.used_len);
	check_log_of(_metadata, self, &req);

	/* So does a flush. */
	clear(self);
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec(self, variant, &req, VIRTIO_BLK_T_FLUSH,
					0, NULL, 0));
	check_log_of(_metadata, self, &req);
}

TEST_F(dirty_log, get_id_marks_its_buffer)
{
	/* 20 bytes across a page boundary. */
	struct vblk_buf id = buf_at(_metadata, self, 1, VBLK_PAGE_SIZE - 8,
				    VIRTIO_BLK_ID_BYTES);
	struct vblk_req req;

	ASSERT_EQ(0, vblk_dev_set_serial(&self->dev, "dirty-log-serial-012"));
	clear(self);
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec(self, variant, &req, VIRTIO_BLK_T_GET_ID,
					0, &id, 1));
	EXPECT_EQ((uint32_t)VIRTIO_BLK_ID_BYTES + 1, req.used_len);
	EXPECT_EQ(0, memcmp(id.hva, "dirty-log-serial-012", VIRTIO_BLK_ID_BYTES));
	want_marked(self, id.gpa, id.len);
	check_log_of(_metadata, self, &req);
}

TEST_F(dirty_log, bounced_in_marks_its_pages_too)
{
	/* Odd offsets and lengths: copied through bounce pages. */
	struct vblk_buf segs[] = {
		buf_at(_metadata, self, 0, 1, 4 * KiB),
		buf_at(_metadata, self, 1, 3000, 1500),
		buf_at(_metadata, self, 0, 4095, 3 * KiB - 1500 + 1024),
	};

	ASSERT_EQ(0, vblk_bufs_len(segs, ARRAY_SIZE(segs)) % VBLK_SECTOR_SIZE);
	expect_read_marks(_metadata, self, variant, 64, segs, ARRAY_SIZE(segs));
}

TEST_F(dirty_log, every_read_of_a_batch_in_flight_is_marked)
{
	struct vblk_buf bufs[BATCH];
	struct vblk_req reqs[BATCH], *done;
	unsigned int i;

	for (i = 0; i < BATCH; i++)
		bufs[i] = buf_at(_metadata, self, i % 2, 0, 4 * KiB);
	clear(self);
	for (i = 0; i < BATCH; i++) {
		vblk_req_init(&reqs[i], VIRTIO_BLK_T_IN, i * 8, &bufs[i], 1);
		reqs[i].indirect = variant->features & F_INDIRECT;
		ASSERT_EQ(0, vblk_queue_add(self->q, &reqs[i]));
	}
	ASSERT_LE(0, vblk_queue_kick(self->q));
	for (i = 0; i < BATCH; i++)
		ASSERT_EQ(0, vblk_reap(self->q, &done, VBLK_TIMEOUT_MS));
	for (i = 0; i < BATCH; i++) {
		EXPECT_EQ(VIRTIO_BLK_S_OK, reqs[i].status);
		want_marked(self, bufs[i].gpa, bufs[i].len);
		if (i + 1 < BATCH)
			want_status(_metadata, self, &reqs[i]);
	}
	check_log_of(_metadata, self, &reqs[BATCH - 1]);
}

/* Switches the device to the block device @be; 0 or a negative errno. */
static int attach(struct vblk_dev *dev, const struct vblk_backend *be)
{
	int fd = vblk_backend_open(be, O_RDWR), ret;

	if (fd < 0)
		return fd;
	ret = vblk_dev_set_backend(dev, fd);
	close(fd);
	return ret;
}

TEST_F(dirty_log, starting_logging_first_drains_the_reads_in_flight)
{
	struct vblk_backend_opts bo = { .size = MiB, .completion_nsec = SLOW_NS };
	struct vblk_buf bufs[BATCH / 4];
	struct vblk_req reqs[BATCH / 4], *done;
	struct vblk_backend slow;
	unsigned int i;
	uint16_t idx;

	/* Reads taking SLOW_NS each, taken by the device before logging. */
	ASSERT_EQ(0, vblk_dev_log_stop(&self->dev));
	ASSERT_EQ(0, vblk_backend_create(&slow, VBLK_BE_NULLB, &bo));
	ASSERT_EQ(0, attach(&self->dev, &slow));
	for (i = 0; i < ARRAY_SIZE(bufs); i++) {
		bufs[i] = buf_at(_metadata, self, i % 2, 0, 4 * KiB);
		vblk_req_init(&reqs[i], VIRTIO_BLK_T_IN, i * 8, &bufs[i], 1);
		reqs[i].indirect = variant->features & F_INDIRECT;
		ASSERT_EQ(0, vblk_queue_add(self->q, &reqs[i]));
	}
	ASSERT_LE(0, vblk_queue_kick(self->q));
	do {
		ASSERT_EQ(0, vblk_queue_device_avail(self->q, &idx));
	} while (idx != self->q->avail_idx);
	ASSERT_EQ(0U, vblk_queue_used_pending(self->q)) TH_LOG("not in flight");

	/*
	 * A request copies its log ranges when it starts, so switching
	 * VHOST_F_LOG_ALL drains the device: when the switch returns, every
	 * read taken before is in the used ring and none completes unlogged
	 * after logging began.
	 */
	ASSERT_EQ(0, vblk_dev_log_start(&self->dev));
	EXPECT_EQ((unsigned int)ARRAY_SIZE(reqs), vblk_queue_used_pending(self->q));
	for (i = 0; i < ARRAY_SIZE(reqs); i++)
		ASSERT_EQ(0, vblk_reap(self->q, &done, VBLK_TIMEOUT_MS));
	for (i = 0; i < ARRAY_SIZE(reqs); i++)
		EXPECT_EQ(VIRTIO_BLK_S_OK, reqs[i].status);

	ASSERT_EQ(0, attach(&self->dev, &self->be));
	EXPECT_EQ(0, vblk_backend_destroy(&slow));
}

TEST_F(dirty_log, without_log_all_nothing_is_marked)
{
	struct vblk_buf buf = buf_at(_metadata, self, 1, 0, 8 * KiB);
	struct vblk_buf id = vblk_buf_slice(&buf, 0, VIRTIO_BLK_ID_BYTES);
	struct vblk_req req;

	/* The log base stays set; VHOST_F_LOG_ALL goes. */
	ASSERT_EQ(0, vblk_dev_log_stop(&self->dev));
	clear(self);
	read_and_check(_metadata, self, variant, 0, &buf, 1, &req);
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec(self, variant, &req, VIRTIO_BLK_T_OUT,
					4096, &buf, 1));
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec(self, variant, &req, VIRTIO_BLK_T_GET_ID,
					0, &id, 1));
	check_log(_metadata, self);

	/* And logging comes back. */
	ASSERT_EQ(0, vblk_dev_log_start(&self->dev));
	expect_read_marks(_metadata, self, variant, 0, &buf, 1);
}

TEST_HARNESS_MAIN
