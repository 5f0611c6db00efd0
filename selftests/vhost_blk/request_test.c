// SPDX-License-Identifier: GPL-2.0
/*
 * Requests on the good path: a started vhost-blk device on a memory-backed
 * block device, driven by the in-process virtio-blk driver of vblk.h. Every
 * test checks statuses, used lengths and the data, byte for byte.
 *
 * The variants cover the ring configurations (queue size, EVENT_IDX,
 * INDIRECT_DESC) and the backends (null_blk, brd, loop). A chain must fit the
 * ring unless it is indirect, so tests that want long chains size them to
 * what the variant allows; exactly VHOST_BLK_SEG_MAX segments have their own
 * fixture, whose variants all fit them.
 *
 * Needs root, the vhost_blk module loaded, null_blk, brd and loop.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define NQUEUES		4
#define KiB		1024UL
#define MiB		(1024UL * 1024)

#define F_EVENT_IDX	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_INDIRECT	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)

/* The data at @p is the pattern of @seed, or the test fails at the first
 * byte that is not. */
#define ASSERT_PATTERN(p, len, seed) do {				\
	ssize_t __bad = vblk_pattern_check(p, len, seed);		\
	ASSERT_EQ(-1, __bad) TH_LOG("data differs at byte %zd", __bad);	\
} while (0)

#define ASSERT_ZEROES(p, len) do {					\
	ssize_t __bad = vblk_mem_check_byte(p, len, 0);			\
	ASSERT_EQ(-1, __bad) TH_LOG("byte %zd is not zero", __bad);	\
} while (0)

struct ring_config {
	enum vblk_backend_kind backend;
	unsigned int queue_size;
	bool event_idx;
	bool indirect;
};

/*
 * A memory-backed block device and a vhost-blk device serving it on
 * NQUEUES queues of @cfg. Cleans up after itself on failure.
 */
static int start_device(const struct ring_config *cfg, struct vblk_backend *be,
			struct vblk_dev *dev)
{
	struct vblk_backend_opts bo = { .size = 64 * MiB, .discard = true };
	struct vblk_opts o = {
		.features = (cfg->event_idx ? F_EVENT_IDX : 0) |
			    (cfg->indirect ? F_INDIRECT : 0),
		.nqueues = NQUEUES,
		.queue_size = cfg->queue_size,
	};
	int ret;

	ret = vblk_backend_create(be, cfg->backend, &bo);
	if (ret)
		return ret;
	ret = vblk_dev_start(dev, &o, be->path, O_RDWR);
	if (ret)
		vblk_backend_destroy(be);
	return ret;
}

static void stop_device(struct vblk_backend *be, struct vblk_dev *dev)
{
	/* Closing the device drops its reference on the block device. */
	vblk_dev_close(dev);
	vblk_backend_destroy(be);
}

/* Descriptors one request may take: the ring, or an indirect table. */
static unsigned int max_chain(const struct ring_config *cfg)
{
	return cfg->indirect ? VBLK_MAX_QUEUE_SIZE : cfg->queue_size;
}

/* Data segments that fit one chain with a one-descriptor header. */
static unsigned int max_segs(const struct ring_config *cfg)
{
	unsigned int n = max_chain(cfg) - 2;

	return n < VHOST_BLK_SEG_MAX ? n : VHOST_BLK_SEG_MAX;
}

/*
 * @n segments of @seg_len bytes each (0: 512, 1024 or 1536 by turns), at
 * @offset in their page, alternately in the two guest memory regions.
 */
static int alloc_segs(struct vblk_dev *dev, struct vblk_buf *segs,
		      unsigned int n, size_t seg_len, size_t offset)
{
	unsigned int i;
	int ret;

	for (i = 0; i < n; i++) {
		size_t len = seg_len ? seg_len : 512 * (1 + i % 3);
		struct vblk_buf page;

		ret = vblk_mem_alloc_in(&dev->mem, i % dev->mem.nregions,
					offset + len, VBLK_PAGE_SIZE, &page);
		if (ret)
			return ret;
		segs[i] = vblk_buf_slice(&page, offset, len);
	}
	return 0;
}

/* One request of @type over @segs, its chain shaped by @cfg and @hdr_descs. */
static int exec_segs(struct vblk_queue *q, const struct ring_config *cfg,
		     uint32_t type, uint64_t sector, const struct vblk_buf *segs,
		     unsigned int nsegs, unsigned int hdr_descs,
		     struct vblk_req *req)
{
	vblk_req_init(req, type, sector, segs, nsegs);
	req->indirect = cfg->indirect;
	req->hdr_descs = hdr_descs;
	return vblk_exec(q, req);
}

/*
 * Writes the pattern of @seed through @out, reads it back through @in (same
 * total length, any layout) and checks it; also checks the used lengths.
 */
static void round_trip(struct __test_metadata *_metadata, struct vblk_queue *q,
		       const struct ring_config *cfg, uint64_t sector,
		       const struct vblk_buf *out, unsigned int nout,
		       const struct vblk_buf *in, unsigned int nin,
		       unsigned int hdr_descs, uint64_t seed)
{
	size_t len = vblk_bufs_len(out, nout);
	struct vblk_req req;
	uint8_t *data;
	unsigned int i;

	ASSERT_EQ(len, vblk_bufs_len(in, nin));
	data = malloc(len);
	ASSERT_NE(NULL, data);
	vblk_pattern_fill(data, len, seed);
	vblk_bufs_scatter(out, nout, data);
	for (i = 0; i < nin; i++)
		memset(in[i].hva, 0xa5, in[i].len);

	ASSERT_EQ(VIRTIO_BLK_S_OK, exec_segs(q, cfg, VIRTIO_BLK_T_OUT, sector,
					     out, nout, hdr_descs, &req));
	EXPECT_EQ(1U, req.used_len);
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec_segs(q, cfg, VIRTIO_BLK_T_IN, sector,
					     in, nin, hdr_descs, &req));
	EXPECT_EQ(len + 1, req.used_len);

	memset(data, 0, len);
	vblk_bufs_gather(in, nin, data);
	ASSERT_PATTERN(data, len, seed);
	free(data);
}

FIXTURE(request) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_queue *q;
};

FIXTURE_VARIANT(request) {
	struct ring_config cfg;
};

FIXTURE_VARIANT_ADD(request, nullb_q256) {
	.cfg = { VBLK_BE_NULLB, 256, false, false },
};

FIXTURE_VARIANT_ADD(request, nullb_q16_event_idx) {
	.cfg = { VBLK_BE_NULLB, 16, true, false },
};

FIXTURE_VARIANT_ADD(request, nullb_q16_indirect) {
	.cfg = { VBLK_BE_NULLB, 16, false, true },
};

FIXTURE_VARIANT_ADD(request, nullb_q256_event_idx_indirect) {
	.cfg = { VBLK_BE_NULLB, 256, true, true },
};

FIXTURE_VARIANT_ADD(request, nullb_q1024_event_idx_indirect) {
	.cfg = { VBLK_BE_NULLB, 1024, true, true },
};

FIXTURE_VARIANT_ADD(request, brd_q256_event_idx) {
	.cfg = { VBLK_BE_BRD, 256, true, false },
};

FIXTURE_VARIANT_ADD(request, loop_q256_event_idx_indirect) {
	.cfg = { VBLK_BE_LOOP, 256, true, true },
};

FIXTURE_SETUP(request)
{
	int ret = start_device(&variant->cfg, &self->be, &self->dev);

	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
	self->q = &self->dev.queues[0];
}

FIXTURE_TEARDOWN(request)
{
	stop_device(&self->be, &self->dev);
}

TEST_F(request, write_then_read_returns_the_same_data)
{
	uint64_t last = self->be.size / VBLK_SECTOR_SIZE - 128;
	struct vblk_buf out, in;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 64 * KiB, VBLK_PAGE_SIZE, &out));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 64 * KiB, VBLK_PAGE_SIZE, &in));
	/* At the start, in the middle, and up to the last sector. */
	round_trip(_metadata, self->q, &variant->cfg, 0, &out, 1, &in, 1, 1, 1);
	round_trip(_metadata, self->q, &variant->cfg, 4096, &out, 1, &in, 1, 1, 2);
	round_trip(_metadata, self->q, &variant->cfg, last, &out, 1, &in, 1, 1, 3);

	/* What the device wrote is on the block device. */
	ASSERT_EQ(0, vblk_backend_pread(&self->be, in.hva, in.len,
					last * VBLK_SECTOR_SIZE));
	ASSERT_PATTERN(in.hva, in.len, 3);
}

TEST_F(request, read_returns_what_was_written_through_the_device_node)
{
	struct vblk_buf buf;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 32 * KiB, VBLK_PAGE_SIZE, &buf));
	vblk_pattern_fill(buf.hva, buf.len, 7);
	ASSERT_EQ(0, vblk_backend_pwrite(&self->be, buf.hva, buf.len, 1 * MiB));
	memset(buf.hva, 0, buf.len);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(self->q, MiB / VBLK_SECTOR_SIZE, &buf));
	ASSERT_PATTERN(buf.hva, buf.len, 7);
}

TEST_F(request, used_len_is_data_plus_status_for_in_and_status_for_out)
{
	struct vblk_buf buf;
	struct vblk_req req;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 12 * KiB, VBLK_PAGE_SIZE, &buf));
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec_segs(self->q, &variant->cfg,
					     VIRTIO_BLK_T_OUT, 8, &buf, 1, 1, &req));
	EXPECT_EQ(1U, req.used_len);
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec_segs(self->q, &variant->cfg,
					     VIRTIO_BLK_T_IN, 8, &buf, 1, 1, &req));
	EXPECT_EQ(12 * KiB + 1, req.used_len);
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec_segs(self->q, &variant->cfg,
					     VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 1, &req));
	EXPECT_EQ(1U, req.used_len);
}

TEST_F(request, data_spread_over_many_descriptors_in_both_regions_round_trips)
{
	unsigned int n = max_segs(&variant->cfg), i;
	struct vblk_buf out[VHOST_BLK_SEG_MAX], in[VHOST_BLK_SEG_MAX];
	size_t total;

	ASSERT_EQ(0, alloc_segs(&self->dev, out, n, 0, 0));
	total = vblk_bufs_len(out, n);
	/* Read back in a different layout: one buffer... */
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, total, 512, &in[0]));
	round_trip(_metadata, self->q, &variant->cfg, 16, out, n, in, 1, 1, 11);
	/* ...and the write's own lengths in reverse order and regions. */
	for (i = 0; i < n; i++)
		ASSERT_EQ(0, vblk_mem_alloc_in(&self->dev.mem, (i + 1) % 2,
					       out[n - 1 - i].len, 512, &in[i]));
	round_trip(_metadata, self->q, &variant->cfg, 2048, out, n, in, n, 1, 12);
}

TEST_F(request, odd_in_page_offsets_and_lengths_are_bounced_and_round_trip)
{
	static const struct { size_t off, len; } layout[] = {
		{ 1, 1000 }, { 4000, 3000 }, { 7, 96 }, { 4095, 4096 },
	};
	unsigned int n = ARRAY_SIZE(layout), i;
	struct vblk_buf out[ARRAY_SIZE(layout)], in[3], page;

	for (i = 0; i < n; i++) {
		ASSERT_EQ(0, vblk_mem_alloc_in(&self->dev.mem, i % 2,
					       layout[i].off + layout[i].len,
					       VBLK_PAGE_SIZE, &page));
		out[i] = vblk_buf_slice(&page, layout[i].off, layout[i].len);
	}
	ASSERT_EQ(0, vblk_bufs_len(out, n) % VBLK_SECTOR_SIZE);
	/* Read back 8 KiB as one odd piece crossing a page, and two more. */
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 3 * VBLK_PAGE_SIZE,
				    VBLK_PAGE_SIZE, &page));
	in[0] = vblk_buf_slice(&page, 3, 5000);
	in[1] = vblk_buf_slice(&page, 5003, 3000);
	in[2] = vblk_buf_slice(&page, 8003, 192);
	round_trip(_metadata, self->q, &variant->cfg, 64, out, n, in, 3, 1, 21);

	/* One sector-sized buffer at an odd address, both ways. */
	out[0] = vblk_buf_slice(&page, 1, 4096);
	in[0] = vblk_buf_slice(&page, 4097 + 2, 4096);
	round_trip(_metadata, self->q, &variant->cfg, 128, out, 1, in, 1, 1, 22);
}

TEST_F(request, header_split_across_two_and_three_descriptors_works)
{
	struct vblk_buf out, in;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 8 * KiB, VBLK_PAGE_SIZE, &out));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 8 * KiB, VBLK_PAGE_SIZE, &in));
	round_trip(_metadata, self->q, &variant->cfg, 32, &out, 1, &in, 1, 2, 31);
	round_trip(_metadata, self->q, &variant->cfg, 48, &out, 1, &in, 1, 3, 32);
	/* Header bytes one by one, as far as the ring allows. */
	if (max_chain(&variant->cfg) >= 18)
		round_trip(_metadata, self->q, &variant->cfg, 64, &out, 1, &in, 1,
			   16, 33);
}

TEST_F(request, one_mib_requests_round_trip)
{
	struct vblk_buf whole, out[8], in;
	unsigned int i;

	/* One segment of VHOST_BLK_SIZE_MAX. */
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, MiB, VBLK_PAGE_SIZE, &whole));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, MiB, VBLK_PAGE_SIZE, &in));
	ASSERT_EQ((size_t)VHOST_BLK_SIZE_MAX, whole.len);
	round_trip(_metadata, self->q, &variant->cfg, 0, &whole, 1, &in, 1, 1, 41);

	/* Eight segments of 128 KiB, read back as one. */
	for (i = 0; i < ARRAY_SIZE(out); i++)
		out[i] = vblk_buf_slice(&whole, i * 128 * KiB, 128 * KiB);
	round_trip(_metadata, self->q, &variant->cfg, 4096, out, 8, &in, 1, 1, 42);
}

TEST_F(request, flush_succeeds_and_ignores_the_sector)
{
	struct vblk_req req;

	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_flush(self->q));
	ASSERT_EQ(VIRTIO_BLK_S_OK, exec_segs(self->q, &variant->cfg,
					     VIRTIO_BLK_T_FLUSH, ~0ULL, NULL, 0,
					     1, &req));
	EXPECT_EQ(1U, req.used_len);
}

TEST_F(request, unknown_type_completes_unsupp)
{
	struct vblk_buf buf;
	struct vblk_req req;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 512, 512, &buf));
	ASSERT_EQ(VIRTIO_BLK_S_UNSUPP, exec_segs(self->q, &variant->cfg, 0x7f,
						 0, &buf, 1, 1, &req));
	EXPECT_EQ(1U, req.used_len);
	/* And the queue goes on. */
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_flush(self->q));
}

TEST_F(request, access_beyond_capacity_fails_ioerr_and_changes_nothing)
{
	uint64_t capacity = self->be.size / VBLK_SECTOR_SIZE;
	struct vblk_buf buf;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 8 * KiB, VBLK_PAGE_SIZE, &buf));
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_read(self->q, capacity, &buf));
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_read(self->q, capacity - 8, &buf));
	vblk_pattern_fill(buf.hva, buf.len, 51);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_write(self->q, capacity - 8, &buf));
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_write(self->q, ~0ULL - 8, &buf));

	/* The last sectors were not written, partly or at all. */
	ASSERT_EQ(0, vblk_backend_pread(&self->be, buf.hva, 4 * KiB,
					(capacity - 8) * VBLK_SECTOR_SIZE));
	ASSERT_ZEROES(buf.hva, 4 * KiB);
}

/* The serial GET_ID returns into a 20-byte buffer full of 0xaa. */
static void get_id(struct __test_metadata *_metadata, struct vblk_dev *dev,
		   size_t len, uint8_t *id)
{
	struct vblk_buf buf, seg;
	struct vblk_req req;

	ASSERT_EQ(0, vblk_mem_alloc(&dev->mem, VIRTIO_BLK_ID_BYTES, 1, &buf));
	memset(buf.hva, 0xaa, buf.len);
	seg = vblk_buf_slice(&buf, 0, len);
	vblk_req_init(&req, VIRTIO_BLK_T_GET_ID, 0, &seg, 1);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_exec(&dev->queues[0], &req));
	EXPECT_EQ(len + 1, req.used_len);
	memcpy(id, buf.hva, VIRTIO_BLK_ID_BYTES);
}

TEST_F(request, get_id_without_serial_returns_zeroes)
{
	uint8_t id[VIRTIO_BLK_ID_BYTES];

	get_id(_metadata, &self->dev, sizeof(id), id);
	ASSERT_ZEROES(id, sizeof(id));
}

TEST_F(request, get_id_returns_a_full_length_serial_unterminated)
{
	const char serial[] = "ABCDEFGHIJ0123456789";
	uint8_t id[VIRTIO_BLK_ID_BYTES];

	ASSERT_EQ(VIRTIO_BLK_ID_BYTES, strlen(serial));
	ASSERT_EQ(0, vblk_dev_set_serial(&self->dev, serial));
	get_id(_metadata, &self->dev, sizeof(id), id);
	ASSERT_EQ(0, memcmp(id, serial, sizeof(id)));
}

TEST_F(request, get_id_pads_a_short_serial_with_zeroes)
{
	uint8_t id[VIRTIO_BLK_ID_BYTES];

	ASSERT_EQ(0, vblk_dev_set_serial(&self->dev, "vblk-7"));
	get_id(_metadata, &self->dev, sizeof(id), id);
	ASSERT_EQ(0, memcmp(id, "vblk-7", 6));
	ASSERT_ZEROES(id + 6, sizeof(id) - 6);
}

TEST_F(request, get_id_into_a_short_buffer_returns_a_prefix)
{
	uint8_t id[VIRTIO_BLK_ID_BYTES];

	ASSERT_EQ(0, vblk_dev_set_serial(&self->dev, "ABCDEFGHIJ0123456789"));
	get_id(_metadata, &self->dev, 8, id);
	ASSERT_EQ(0, memcmp(id, "ABCDEFGH", 8));
	/* Nothing written past the buffer. */
	ASSERT_EQ(-1, vblk_mem_check_byte(id + 8, sizeof(id) - 8, 0xaa));
}

/* 64 KiB of pattern at @sector, then @type over its middle 16 KiB. */
static int range_over_pattern(struct vblk_queue *q, struct vblk_buf *buf,
			      uint32_t type, uint64_t sector, uint32_t flags)
{
	vblk_pattern_fill(buf->hva, buf->len, sector);
	if (vblk_write(q, sector, buf) != VIRTIO_BLK_S_OK)
		return -EIO;
	return vblk_range(q, type, sector + 48, 32, flags);
}

/* Pattern, zeroes, pattern: what range_over_pattern leaves when it works. */
static void check_zeroed_middle(struct __test_metadata *_metadata,
				struct vblk_queue *q, struct vblk_buf *buf,
				uint64_t sector)
{
	uint8_t *want = malloc(buf->len);
	ssize_t bad;

	ASSERT_NE(NULL, want);
	vblk_pattern_fill(want, buf->len, sector);
	memset(want + 24 * KiB, 0, 16 * KiB);
	memset(buf->hva, 0xa5, buf->len);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(q, sector, buf));
	bad = vblk_mem_diff(want, buf->hva, buf->len);
	free(want);
	ASSERT_EQ(-1, bad) TH_LOG("data differs at byte %zd", bad);
}

/* The pattern range_over_pattern wrote, untouched. */
static void check_pattern_intact(struct __test_metadata *_metadata,
				 struct vblk_queue *q, struct vblk_buf *buf,
				 uint64_t sector)
{
	memset(buf->hva, 0xa5, buf->len);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(q, sector, buf));
	ASSERT_PATTERN(buf->hva, buf->len, sector);
}

/*
 * WRITE_ZEROES is offered only where the block device zeroes by itself
 * (loop here; not null_blk or brd) and is never turned into writes of zero
 * pages: where the backend turns a request down at run time (loop over
 * tmpfs, which has no FALLOC_FL_ZERO_RANGE, when the guest does not allow
 * unmapping), it completes UNSUPP and nothing is written.
 */
TEST_F(request, write_zeroes_zeroes_where_the_backend_can_and_is_unsupp_elsewhere)
{
	uint64_t features = 0;
	struct vblk_buf buf;
	int status;

	ASSERT_EQ(0, vblk_dev_get_features(&self->dev, &features));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 64 * KiB, VBLK_PAGE_SIZE, &buf));
	if (!(features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES))) {
		ASSERT_NE(VBLK_BE_LOOP, variant->cfg.backend);
		ASSERT_EQ(VIRTIO_BLK_S_UNSUPP,
			  range_over_pattern(self->q, &buf,
					     VIRTIO_BLK_T_WRITE_ZEROES, 1024, 0));
		check_pattern_intact(_metadata, self->q, &buf, 1024);
		ASSERT_EQ(VIRTIO_BLK_S_UNSUPP,
			  range_over_pattern(self->q, &buf,
					     VIRTIO_BLK_T_WRITE_ZEROES, 2048,
					     VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP));
		check_pattern_intact(_metadata, self->q, &buf, 2048);
		return;
	}
	ASSERT_EQ(VIRTIO_BLK_S_OK,
		  range_over_pattern(self->q, &buf, VIRTIO_BLK_T_WRITE_ZEROES,
				     2048, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP));
	check_zeroed_middle(_metadata, self->q, &buf, 2048);
	status = range_over_pattern(self->q, &buf, VIRTIO_BLK_T_WRITE_ZEROES,
				    1024, 0);
	if (variant->cfg.backend == VBLK_BE_LOOP) {
		ASSERT_EQ(VIRTIO_BLK_S_UNSUPP, status);
		check_pattern_intact(_metadata, self->q, &buf, 1024);
	} else {
		ASSERT_EQ(VIRTIO_BLK_S_OK, status);
		check_zeroed_middle(_metadata, self->q, &buf, 1024);
	}
}

TEST_F(request, discard_reads_back_as_zeroes_where_the_backend_discards)
{
	uint64_t discard_max;
	struct vblk_buf buf;
	int status;

	ASSERT_EQ(0, vblk_sysfs_u64(self->be.name, "queue/discard_max_bytes",
				    &discard_max));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 64 * KiB, VBLK_PAGE_SIZE, &buf));
	status = range_over_pattern(self->q, &buf,
				    VIRTIO_BLK_T_DISCARD, 4096, 0);
	if (!discard_max) {
		/* brd: no discard, and nothing changed. */
		ASSERT_EQ(VIRTIO_BLK_S_UNSUPP, status);
		ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(self->q, 4096, &buf));
		ASSERT_PATTERN(buf.hva, buf.len, 4096);
		return;
	}
	ASSERT_EQ(VIRTIO_BLK_S_OK, status);
	check_zeroed_middle(_metadata, self->q, &buf, 4096);
}

/* Bytes of request @i of a batch, and where it goes. */
#define BATCH_LEN	(4 * KiB)
#define BATCH_SECTOR(i)	(8192 + (uint64_t)(i) * BATCH_LEN / VBLK_SECTOR_SIZE)

/*
 * Submits @n requests of @type on @q with one kick, waits for all, checks
 * each completed OK with the right used length. Returns the first failure.
 */
static int run_batch(struct vblk_queue *q, const struct ring_config *cfg,
		     uint32_t type, struct vblk_buf *bufs, struct vblk_req *reqs,
		     unsigned int n, uint64_t first_sector)
{
	struct vblk_req *done;
	unsigned int i;
	int ret;

	for (i = 0; i < n; i++) {
		vblk_req_init(&reqs[i], type,
			      first_sector + (uint64_t)i * BATCH_LEN / VBLK_SECTOR_SIZE,
			      &bufs[i], 1);
		reqs[i].indirect = cfg->indirect;
		ret = vblk_queue_add(q, &reqs[i]);
		if (ret)
			return ret;
	}
	ret = vblk_queue_kick(q);
	if (ret < 0)
		return ret;
	for (i = 0; i < n; i++) {
		ret = vblk_reap(q, &done, VBLK_TIMEOUT_MS);
		if (ret)
			return ret;
	}
	for (i = 0; i < n; i++) {
		uint32_t want = type == VIRTIO_BLK_T_IN ? BATCH_LEN + 1 : 1;

		if (!reqs[i].done || reqs[i].status != VIRTIO_BLK_S_OK ||
		    reqs[i].used_len != want)
			return -EIO;
	}
	return q->inflight ? -EPROTO : 0;
}

/* Requests that fit the ring at once: chains of header, data, status. */
static unsigned int ring_capacity(const struct ring_config *cfg)
{
	return cfg->indirect ? cfg->queue_size : cfg->queue_size / 3;
}

TEST_F(request, a_full_ring_of_requests_in_flight_completes)
{
	unsigned int n = ring_capacity(&variant->cfg), i, round;
	struct vblk_buf bufs[VBLK_MAX_QUEUE_SIZE];
	struct vblk_req reqs[VBLK_MAX_QUEUE_SIZE];

	ASSERT_LE(n, ARRAY_SIZE(bufs));
	for (i = 0; i < n; i++)
		ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, BATCH_LEN,
					    VBLK_PAGE_SIZE, &bufs[i]));
	/* Twice, so the second round wraps the ring. */
	for (round = 0; round < 2; round++) {
		for (i = 0; i < n; i++)
			vblk_pattern_fill(bufs[i].hva, BATCH_LEN, round * 1000 + i);
		ASSERT_EQ(0, run_batch(self->q, &variant->cfg, VIRTIO_BLK_T_OUT,
				       bufs, reqs, n, 8192));
		ASSERT_EQ(self->q->num, self->q->nfree);
		for (i = 0; i < n; i++)
			memset(bufs[i].hva, 0, BATCH_LEN);
		ASSERT_EQ(0, run_batch(self->q, &variant->cfg, VIRTIO_BLK_T_IN,
				       bufs, reqs, n, 8192));
		for (i = 0; i < n; i++)
			ASSERT_PATTERN(bufs[i].hva, BATCH_LEN, round * 1000 + i);
	}
	/* Nothing more arrives. */
	EXPECT_EQ(0U, vblk_queue_used_pending(self->q));
}

struct queue_load {
	struct vblk_queue *q;
	const struct ring_config *cfg;
	struct vblk_buf bufs[64];
	struct vblk_req reqs[64];
	unsigned int n;
	uint64_t first_sector;
	int ret;
	const char *what;
};

/* Rounds of write batch, read batch, check, on one queue's own area. */
static void *queue_load_thread(void *arg)
{
	struct queue_load *l = arg;
	unsigned int i, round;

	for (round = 0; round < 4; round++) {
		uint64_t seed = l->first_sector * 100 + round * 64;

		for (i = 0; i < l->n; i++)
			vblk_pattern_fill(l->bufs[i].hva, BATCH_LEN, seed + i);
		l->what = "write batch";
		l->ret = run_batch(l->q, l->cfg, VIRTIO_BLK_T_OUT, l->bufs,
				   l->reqs, l->n, l->first_sector);
		if (l->ret)
			return NULL;
		for (i = 0; i < l->n; i++)
			memset(l->bufs[i].hva, 0, BATCH_LEN);
		l->what = "read batch";
		l->ret = run_batch(l->q, l->cfg, VIRTIO_BLK_T_IN, l->bufs,
				   l->reqs, l->n, l->first_sector);
		if (l->ret)
			return NULL;
		l->what = "data check";
		for (i = 0; i < l->n; i++)
			if (vblk_pattern_check(l->bufs[i].hva, BATCH_LEN,
					       seed + i) != -1) {
				l->ret = -EILSEQ;
				return NULL;
			}
	}
	return NULL;
}

/* Queues 0 to @nq - 1 under load, each from its own thread, all at once. */
static void load_queues(struct __test_metadata *_metadata, struct vblk_dev *dev,
			const struct vblk_backend *be,
			const struct ring_config *cfg, unsigned int nq)
{
	struct queue_load load[NQUEUES];
	pthread_t threads[NQUEUES];
	unsigned int i, j, n = ring_capacity(cfg);
	uint8_t *data;

	if (n > ARRAY_SIZE(load[0].bufs))
		n = ARRAY_SIZE(load[0].bufs);
	for (i = 0; i < nq; i++) {
		load[i] = (struct queue_load){
			.q = &dev->queues[i], .cfg = cfg, .n = n,
			.first_sector = (i + 1) * 16384,
		};
		for (j = 0; j < n; j++)
			ASSERT_EQ(0, vblk_mem_alloc(&dev->mem, BATCH_LEN,
						    VBLK_PAGE_SIZE,
						    &load[i].bufs[j]));
	}
	for (i = 0; i < nq; i++)
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, queue_load_thread,
					    &load[i]));
	for (i = 0; i < nq; i++)
		ASSERT_EQ(0, pthread_join(threads[i], NULL));
	for (i = 0; i < nq; i++)
		EXPECT_EQ(0, load[i].ret) TH_LOG("queue %u: %s: %s", i,
						 load[i].what,
						 strerror(-load[i].ret));

	/* Each queue's area on the block device holds its last round. */
	data = malloc(BATCH_LEN);
	ASSERT_NE(NULL, data);
	for (i = 0; i < nq; i++) {
		for (j = 0; j < n; j++) {
			uint64_t seed = load[i].first_sector * 100 + 3 * 64 + j;

			ASSERT_EQ(0, vblk_backend_pread(be, data, BATCH_LEN,
				load[i].first_sector * VBLK_SECTOR_SIZE +
				j * BATCH_LEN));
			ASSERT_PATTERN(data, BATCH_LEN, seed);
		}
	}
	free(data);
}

TEST_F(request, two_queues_under_concurrent_load_keep_their_data)
{
	load_queues(_metadata, &self->dev, &self->be, &variant->cfg, 2);
}

TEST_F(request, four_queues_under_concurrent_load_keep_their_data)
{
	load_queues(_metadata, &self->dev, &self->be, &variant->cfg, NQUEUES);
}

TEST_F(request, dirty_log_marks_read_data_status_and_used_ring)
{
	struct vblk_buf buf, untouched;
	uint64_t status_gpa;
	struct vblk_req req;

	/* Data above the hole between the regions, where gpa != offset. */
	ASSERT_EQ(0, vblk_mem_alloc_in(&self->dev.mem, 1, 16 * KiB,
				       VBLK_PAGE_SIZE, &buf));
	ASSERT_EQ(0, vblk_mem_alloc_in(&self->dev.mem, 1, VBLK_PAGE_SIZE,
				       VBLK_PAGE_SIZE, &untouched));
	vblk_pattern_fill(buf.hva, buf.len, 71);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(self->q, 0, &buf));

	ASSERT_EQ(0, vblk_dev_log_start(&self->dev));
	memset(buf.hva, 0, buf.len);
	ASSERT_EQ(VIRTIO_BLK_S_OK,
		  exec_segs(self->q, &variant->cfg, VIRTIO_BLK_T_IN, 0, &buf, 1,
			    1, &req));
	ASSERT_PATTERN(buf.hva, buf.len, 71);
	status_gpa = self->q->meta.gpa + req.head * VBLK_META_SLOT +
		     VBLK_HDR_SIZE;
	EXPECT_TRUE(vblk_log_all_dirty(&self->dev, buf.gpa, buf.len));
	EXPECT_TRUE(vblk_log_dirty(&self->dev, status_gpa, 1));
	EXPECT_TRUE(vblk_log_dirty(&self->dev, self->q->used_gpa, 4));
	EXPECT_FALSE(vblk_log_dirty(&self->dev, untouched.gpa, untouched.len));

	/* Stopped: nothing more is logged. */
	ASSERT_EQ(0, vblk_dev_log_stop(&self->dev));
	vblk_log_clear(&self->dev);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(self->q, 0, &buf));
	EXPECT_FALSE(vblk_log_dirty(&self->dev, buf.gpa, buf.len));
}

/* Chains of exactly VHOST_BLK_SEG_MAX data segments: variants they fit. */
FIXTURE(seg_max) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_queue *q;
};

FIXTURE_VARIANT(seg_max) {
	struct ring_config cfg;
};

FIXTURE_VARIANT_ADD(seg_max, nullb_q256_direct) {
	.cfg = { VBLK_BE_NULLB, 256, false, false },
};

FIXTURE_VARIANT_ADD(seg_max, nullb_q16_event_idx_indirect) {
	.cfg = { VBLK_BE_NULLB, 16, true, true },
};

FIXTURE_VARIANT_ADD(seg_max, loop_q256_indirect) {
	.cfg = { VBLK_BE_LOOP, 256, false, true },
};

FIXTURE_SETUP(seg_max)
{
	int ret = start_device(&variant->cfg, &self->be, &self->dev);

	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
	self->q = &self->dev.queues[0];
}

FIXTURE_TEARDOWN(seg_max)
{
	stop_device(&self->be, &self->dev);
}

TEST_F(seg_max, exactly_seg_max_page_segments_round_trip)
{
	struct vblk_buf out[VHOST_BLK_SEG_MAX], in[VHOST_BLK_SEG_MAX];

	ASSERT_EQ(0, alloc_segs(&self->dev, out, VHOST_BLK_SEG_MAX, 4096, 0));
	ASSERT_EQ(0, alloc_segs(&self->dev, in, VHOST_BLK_SEG_MAX, 4096, 0));
	round_trip(_metadata, self->q, &variant->cfg, 0, out, VHOST_BLK_SEG_MAX,
		   in, VHOST_BLK_SEG_MAX, 1, 61);
}

TEST_F(seg_max, exactly_seg_max_odd_offset_segments_round_trip)
{
	struct vblk_buf out[VHOST_BLK_SEG_MAX], in[VHOST_BLK_SEG_MAX];

	/* Each 512 bytes at an odd address: every one bounced. */
	ASSERT_EQ(0, alloc_segs(&self->dev, out, VHOST_BLK_SEG_MAX, 512, 3));
	ASSERT_EQ(0, alloc_segs(&self->dev, in, VHOST_BLK_SEG_MAX, 512, 4093));
	round_trip(_metadata, self->q, &variant->cfg, 4096, out,
		   VHOST_BLK_SEG_MAX, in, VHOST_BLK_SEG_MAX, 1, 62);
}

/* A started device driven through the raw queue interface. */
FIXTURE(raw) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_queue *q;
};

FIXTURE_SETUP(raw)
{
	static const struct ring_config cfg = { VBLK_BE_NULLB, 64, false, false };
	int ret = start_device(&cfg, &self->be, &self->dev);

	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
	self->q = &self->dev.queues[0];
}

FIXTURE_TEARDOWN(raw)
{
	stop_device(&self->be, &self->dev);
}

TEST_F(raw, a_hand_made_chain_with_a_status_byte_in_the_data_buffer_works)
{
	struct virtio_blk_outhdr *hdr;
	struct vring_used_elem e;
	struct vblk_buf h, data, data4k;
	uint16_t ids[2];

	/* Header, then one writable buffer: 4 KiB of data and the status. */
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 16, 16, &h));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 4097, VBLK_PAGE_SIZE, &data));
	data4k = vblk_buf_slice(&data, 0, 4096);
	vblk_pattern_fill(data.hva, 4096, 81);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(self->q, 8, &data4k));
	memset(data.hva, 0xff, data.len);
	hdr = h.hva;
	hdr->type = htole32(VIRTIO_BLK_T_IN);
	hdr->sector = htole64(8);

	ASSERT_EQ(0, vblk_queue_take_descs(self->q, 2, ids));
	vblk_queue_set_desc(self->q, ids[0], h.gpa, 16, VRING_DESC_F_NEXT, ids[1]);
	vblk_queue_set_desc(self->q, ids[1], data.gpa, 4097, VRING_DESC_F_WRITE, 0);
	vblk_queue_publish(self->q, ids[0]);
	ASSERT_LE(0, vblk_queue_kick(self->q));
	ASSERT_EQ(0, vblk_queue_wait_used(self->q, &e, VBLK_TIMEOUT_MS));
	vblk_queue_put_descs(self->q, 2, ids);

	EXPECT_EQ(ids[0], e.id);
	EXPECT_EQ(4097U, e.len);
	EXPECT_EQ(VIRTIO_BLK_S_OK, ((uint8_t *)data.hva)[4096]);
	ASSERT_PATTERN(data.hva, 4096, 81);
	EXPECT_EQ(0U, vblk_queue_errors(self->q));
}

TEST_F(raw, a_chain_without_a_writable_byte_is_returned_empty_and_signals_an_error)
{
	struct virtio_blk_outhdr *hdr;
	struct vring_used_elem e;
	struct vblk_buf h, data;
	uint16_t ids[2];

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 16, 16, &h));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 512, 512, &data));
	hdr = h.hva;
	hdr->type = htole32(VIRTIO_BLK_T_OUT);

	ASSERT_EQ(0, vblk_queue_take_descs(self->q, 2, ids));
	vblk_queue_set_desc(self->q, ids[0], h.gpa, 16, VRING_DESC_F_NEXT, ids[1]);
	vblk_queue_set_desc(self->q, ids[1], data.gpa, 512, 0, 0);
	vblk_queue_publish(self->q, ids[0]);
	ASSERT_LE(0, vblk_queue_kick(self->q));
	ASSERT_EQ(0, vblk_queue_wait_used(self->q, &e, VBLK_TIMEOUT_MS));
	vblk_queue_put_descs(self->q, 2, ids);

	EXPECT_EQ(ids[0], e.id);
	EXPECT_EQ(0U, e.len);
	EXPECT_LE(1, vblk_queue_wait_error(self->q, VBLK_TIMEOUT_MS));
	/* The queue goes on. */
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_flush(self->q));
}

TEST_HARNESS_MAIN
