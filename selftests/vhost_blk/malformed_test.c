// SPDX-License-Identifier: GPL-2.0
/*
 * Malformed requests and descriptor chains, each of which must end cleanly
 * (Documentation/abi.rst, "Requests"):
 *
 * - a request that can carry a status completes with VIRTIO_BLK_S_IOERR or
 *   VIRTIO_BLK_S_UNSUPP and used.len 1, and the queue goes on;
 * - a chain without a device-writable byte is returned with used.len 0 and
 *   the error eventfd fires, and the queue goes on;
 * - a chain the vhost core rejects (loops, indices out of range, addresses
 *   outside the memory table, bad indirect tables) stops the queue at that
 *   chain and the error eventfd fires; the device still closes cleanly.
 *
 * Never a hang, a kernel warning, or a byte written outside the guest's
 * buffers or the requested device range: the block device is seeded with a
 * pattern and mirrored in memory, and after each bad request the whole device
 * is compared with the mirror; guest buffers sit between guard bytes that are
 * checked after every request. Where the queue goes on, a good write and
 * read prove it; where it stops, the other queue still serves, and after the
 * close a fresh device on the same block device serves too.
 *
 * Needs root, the vhost_blk module loaded and null_blk.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define KiB		1024UL
#define MiB		(1024UL * 1024)

#define DISK_SIZE	(2 * MiB)
#define CAPACITY	(DISK_SIZE / VBLK_SECTOR_SIZE)
#define DISK_SEED	0xd15cULL
/* Where the good requests go, and where a request that must never be
 * served would have gone. */
#define GOOD_SECTOR	1536ULL
#define GOOD_LEN	(8 * KiB)
#define BLOCKED_SECTOR	3072ULL
#define NQUEUES		2

/* Guard bytes around guest buffers; data the device must not write. */
#define GUARD_BYTE	0xe7
#define FILL_BYTE	0x5a
#define MAX_GUARDED	64

/* Pieces of a hand-made chain: more than the vhost core's iov array. */
#define MAX_PIECES	1100
#define CORE_MAX_IOV	1024	/* UIO_MAXIOV, the size of vq->iov */

/* How long a stopped queue gets to (not) serve a request it was kicked for. */
#define STOPPED_MS	500

#define F_EVENT_IDX	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_INDIRECT	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)

#define W		VRING_DESC_F_WRITE
#define R		0

/* One descriptor of a hand-made chain. */
struct piece {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags;
};

/* A linear chain, laid out in the ring or in an indirect table. */
struct chain {
	struct piece p[MAX_PIECES];
	unsigned int n;
	bool indirect;
	uint16_t ids[MAX_PIECES];	/* ring descriptors it took */
	unsigned int nids;
	uint16_t avail;			/* its avail ring index */
};

/* A guest buffer between two runs of guard bytes. */
struct guarded {
	struct vblk_buf outer;
	size_t off, len;
};

/* A DISCARD or WRITE_ZEROES segment, in host byte order. */
struct segment {
	uint64_t sector;
	uint32_t num;
	uint32_t flags;
};

FIXTURE(malformed) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_queue *q;
	bool indirect;
	uint8_t *disk;			/* what the block device must hold */
	struct vhost_blk_config cfg;
	struct vblk_buf hdr, status;	/* of hand-made chains */
	struct vblk_buf table;		/* their indirect table */
	struct guarded guarded[MAX_GUARDED];
	unsigned int nguarded;
	struct chain c;
};

FIXTURE_VARIANT(malformed) {
	unsigned int queue_size;
	bool event_idx;
	bool indirect;
};

/* Direct rings are large enough for a chain of VHOST_BLK_SEG_MAX + 3. */
FIXTURE_VARIANT_ADD(malformed, q512) {
	.queue_size = 512,
};

FIXTURE_VARIANT_ADD(malformed, q512_event_idx) {
	.queue_size = 512, .event_idx = true,
};

FIXTURE_VARIANT_ADD(malformed, q64_indirect) {
	.queue_size = 64, .indirect = true,
};

FIXTURE_VARIANT_ADD(malformed, q256_event_idx_indirect) {
	.queue_size = 256, .event_idx = true, .indirect = true,
};

/* A guest buffer of @len at @page_off in its page, in region @region, with
 * a page of guard bytes before and after. */
static struct vblk_buf guarded(struct __test_metadata *_metadata,
			       FIXTURE_DATA(malformed) *self,
			       unsigned int region, size_t len, size_t page_off)
{
	size_t lead = VBLK_PAGE_SIZE + page_off;
	struct guarded *g;

	ASSERT_GT(MAX_GUARDED, self->nguarded);
	g = &self->guarded[self->nguarded++];
	ASSERT_EQ(0, vblk_mem_alloc_in(&self->dev.mem, region,
				       lead + len + VBLK_PAGE_SIZE,
				       VBLK_PAGE_SIZE, &g->outer));
	memset(g->outer.hva, GUARD_BYTE, g->outer.len);
	g->off = lead;
	g->len = len;
	return vblk_buf_slice(&g->outer, lead, len);
}

/* Every guard byte is intact. */
static void check_guards(struct __test_metadata *_metadata,
			 FIXTURE_DATA(malformed) *self)
{
	unsigned int i;

	for (i = 0; i < self->nguarded; i++) {
		const struct guarded *g = &self->guarded[i];
		const uint8_t *p = g->outer.hva;
		size_t tail = g->off + g->len;
		ssize_t before, after;

		before = vblk_mem_check_byte(p, g->off, GUARD_BYTE);
		after = vblk_mem_check_byte(p + tail, g->outer.len - tail,
					    GUARD_BYTE);
		ASSERT_EQ(-1, before) TH_LOG("buffer %u: byte %zd before it written",
					     i, g->off - before);
		ASSERT_EQ(-1, after) TH_LOG("buffer %u: byte %zd after it written",
					    i, after);
	}
}

/* The block device holds exactly the mirror. */
static void check_disk(struct __test_metadata *_metadata,
		       FIXTURE_DATA(malformed) *self)
{
	uint8_t *data = malloc(DISK_SIZE);
	ssize_t bad;

	ASSERT_NE(NULL, data);
	ASSERT_EQ(0, vblk_backend_pread(&self->be, data, DISK_SIZE, 0));
	bad = vblk_mem_diff(self->disk, data, DISK_SIZE);
	free(data);
	ASSERT_EQ(-1, bad) TH_LOG("device changed at sector %zd",
				  bad / VBLK_SECTOR_SIZE);
}

/* @buf still holds FILL_BYTE: the device wrote none of it. */
static void check_untouched(struct __test_metadata *_metadata,
			    const struct vblk_buf *buf)
{
	ssize_t bad = vblk_mem_check_byte(buf->hva, buf->len, FILL_BYTE);

	ASSERT_EQ(-1, bad) TH_LOG("the device wrote byte %zd of a buffer", bad);
}

/* A guarded buffer holding FILL_BYTE. */
static struct vblk_buf filled(struct __test_metadata *_metadata,
			      FIXTURE_DATA(malformed) *self,
			      unsigned int region, size_t len, size_t page_off)
{
	struct vblk_buf buf = guarded(_metadata, self, region, len, page_off);

	memset(buf.hva, FILL_BYTE, buf.len);
	return buf;
}

/* Starts a device on the fixture's block device, with its chain buffers. */
static int start(FIXTURE_DATA(malformed) *self,
		 const FIXTURE_VARIANT(malformed) *variant)
{
	struct vblk_opts o = {
		.features = (variant->event_idx ? F_EVENT_IDX : 0) |
			    (variant->indirect ? F_INDIRECT : 0),
		.nqueues = NQUEUES,
		.queue_size = variant->queue_size,
	};
	int ret;

	ret = vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR);
	if (ret)
		return ret;
	self->q = &self->dev.queues[0];
	self->indirect = variant->indirect;
	self->nguarded = 0;
	ret = vblk_dev_get_config(&self->dev, &self->cfg);
	if (!ret)
		ret = vblk_mem_alloc(&self->dev.mem,
				     MAX_PIECES * sizeof(struct vring_desc),
				     VBLK_PAGE_SIZE, &self->table);
	return ret;
}

FIXTURE_SETUP(malformed)
{
	struct vblk_backend_opts bo = { .size = DISK_SIZE, .discard = true };
	int ret;

	self->disk = malloc(DISK_SIZE);
	ASSERT_NE(NULL, self->disk);
	vblk_pattern_fill(self->disk, DISK_SIZE, DISK_SEED);
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	ret = vblk_backend_pwrite(&self->be, self->disk, DISK_SIZE, 0);
	if (!ret)
		ret = start(self, variant);
	if (ret)
		vblk_backend_destroy(&self->be);
	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
	self->hdr = guarded(_metadata, self, 0, VBLK_HDR_SIZE, 0);
	self->status = guarded(_metadata, self, 1, 1, 100);
}

FIXTURE_TEARDOWN(malformed)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
	free(self->disk);
}

/* ------------------------------------------------------------------------
 * Hand-made chains
 */

static void chain_reset(FIXTURE_DATA(malformed) *self)
{
	self->c.n = 0;
	self->c.nids = 0;
	self->c.indirect = self->indirect;
}

static void chain_add(FIXTURE_DATA(malformed) *self, uint64_t gpa,
		      uint32_t len, uint16_t flags)
{
	if (self->c.n < MAX_PIECES)
		self->c.p[self->c.n++] = (struct piece){ gpa, len, flags };
}

static void chain_buf(FIXTURE_DATA(malformed) *self,
		      const struct vblk_buf *buf, uint16_t flags)
{
	chain_add(self, buf->gpa, buf->len, flags);
}

/* The header of @type at @sector, as the chain's first piece. */
static void chain_header(FIXTURE_DATA(malformed) *self, uint32_t type,
			 uint64_t sector)
{
	struct virtio_blk_outhdr *h = self->hdr.hva;

	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
	chain_reset(self);
	chain_buf(self, &self->hdr, R);
}

/* The status byte, as the chain's last piece. */
static void chain_status(FIXTURE_DATA(malformed) *self)
{
	*(uint8_t *)self->status.hva = VBLK_STATUS_NONE;
	chain_buf(self, &self->status, W);
}

/* The last byte of the chain's last device-writable descriptor. */
static uint8_t status_byte(FIXTURE_DATA(malformed) *self)
{
	unsigned int i;

	for (i = self->c.n; i-- > 0;) {
		const struct piece *p = &self->c.p[i];
		uint8_t *hva;

		if (!(p->flags & W) || !p->len)
			continue;
		hva = vblk_mem_hva(&self->dev.mem, p->gpa + p->len - 1);
		return hva ? *hva : VBLK_STATUS_NONE;
	}
	return VBLK_STATUS_NONE;
}

/* Header, @n data buffers with @flags, status byte. */
static void chain_request(FIXTURE_DATA(malformed) *self, uint32_t type,
			  uint64_t sector, const struct vblk_buf *data,
			  unsigned int n, uint16_t flags)
{
	unsigned int i;

	chain_header(self, type, sector);
	for (i = 0; i < n; i++)
		chain_buf(self, &data[i], flags);
	chain_status(self);
}

static struct vring_desc desc(const struct piece *p, uint16_t flags,
			      uint16_t next)
{
	return (struct vring_desc){
		.addr = htole64(p->gpa), .len = htole32(p->len),
		.flags = htole16(p->flags | flags), .next = htole16(next),
	};
}

/* Lays the chain out, publishes it and kicks. */
static int chain_publish(FIXTURE_DATA(malformed) *self)
{
	struct vring_desc *table = self->table.hva;
	struct vblk_queue *q = self->q;
	struct chain *c = &self->c;
	unsigned int i;
	int ret;

	c->nids = c->indirect ? 1 : c->n;
	if (!c->n || c->n * sizeof(*table) > self->table.len)
		return -EINVAL;
	ret = vblk_queue_take_descs(q, c->nids, c->ids);
	if (ret)
		return ret;
	for (i = 0; i < c->n; i++) {
		bool last = i + 1 == c->n;
		uint16_t next = last ? 0 : c->indirect ? i + 1 : c->ids[i + 1];
		struct vring_desc d = desc(&c->p[i], last ? 0 : VRING_DESC_F_NEXT,
					   next);

		if (c->indirect)
			table[i] = d;
		else
			q->vr.desc[c->ids[i]] = d;
	}
	if (c->indirect)
		vblk_queue_set_desc(q, c->ids[0], self->table.gpa,
				    c->n * sizeof(*table), VRING_DESC_F_INDIRECT, 0);
	c->avail = q->avail_idx;
	vblk_queue_publish(q, c->ids[0]);
	ret = vblk_queue_kick(q);
	return ret < 0 ? ret : 0;
}

/* Runs the chain to its used entry. */
static int chain_run(FIXTURE_DATA(malformed) *self, struct vring_used_elem *e)
{
	int ret = chain_publish(self);

	if (ret)
		return ret;
	ret = vblk_queue_wait_used(self->q, e, VBLK_TIMEOUT_MS);
	if (ret)
		return ret;
	vblk_queue_put_descs(self->q, self->c.nids, self->c.ids);
	return e->id == self->c.ids[0] ? 0 : -EPROTO;
}

/*
 * Runs the chain and checks it completed with @status and @used_len, with
 * no error signalled and every guard byte intact.
 */
static void expect_done(struct __test_metadata *_metadata,
			FIXTURE_DATA(malformed) *self, uint8_t status,
			uint32_t used_len, const char *what)
{
	struct vring_used_elem e;
	int ret = chain_run(self, &e);

	ASSERT_EQ(0, ret) TH_LOG("%s: %s", what, strerror(-ret));
	EXPECT_EQ(status, status_byte(self)) TH_LOG("%s: status", what);
	EXPECT_EQ(used_len, e.len) TH_LOG("%s: used.len", what);
	EXPECT_EQ(0ULL, (unsigned long long)vblk_queue_errors(self->q))
		TH_LOG("%s: error eventfd signalled", what);
	check_guards(_metadata, self);
}

/* ------------------------------------------------------------------------
 * The good path
 */

/* A request through the library, shaped like the variant's. */
static int exec(FIXTURE_DATA(malformed) *self, struct vblk_queue *q,
		struct vblk_req *req, uint32_t type, uint64_t sector,
		const struct vblk_buf *segs, unsigned int nsegs)
{
	vblk_req_init(req, type, sector, segs, nsegs);
	req->indirect = self->indirect;
	return vblk_exec(q, req);
}

/* @q still serves: fresh data written and read back, the device as
 * mirrored, no guard byte touched. */
static void expect_serves(struct __test_metadata *_metadata,
			  FIXTURE_DATA(malformed) *self, struct vblk_queue *q,
			  uint64_t seed)
{
	struct vblk_buf out = guarded(_metadata, self, 0, GOOD_LEN, 0);
	struct vblk_buf in = guarded(_metadata, self, 1, GOOD_LEN, 0);
	struct vblk_req req;
	ssize_t bad;

	vblk_pattern_fill(out.hva, out.len, seed);
	ASSERT_EQ(VIRTIO_BLK_S_OK,
		  exec(self, q, &req, VIRTIO_BLK_T_OUT, GOOD_SECTOR, &out, 1));
	EXPECT_EQ(1U, req.used_len);
	memcpy(self->disk + GOOD_SECTOR * VBLK_SECTOR_SIZE, out.hva, out.len);
	ASSERT_EQ(VIRTIO_BLK_S_OK,
		  exec(self, q, &req, VIRTIO_BLK_T_IN, GOOD_SECTOR, &in, 1));
	EXPECT_EQ(GOOD_LEN + 1, req.used_len);
	bad = vblk_pattern_check(in.hva, in.len, seed);
	ASSERT_EQ(-1, bad) TH_LOG("read back differs at byte %zd", bad);
	check_guards(_metadata, self);
	check_disk(_metadata, self);
}

/* ------------------------------------------------------------------------
 * Requests that complete with an error status
 */

TEST_F(malformed, header_shorter_than_16_bytes_fails_ioerr)
{
	static const uint32_t lens[] = { 0, 1, 8, 15 };
	struct vblk_buf data = filled(_metadata, self, 0, 4 * KiB, 0);
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(lens); i++) {
		/* A read whose header ends early, then data and status. */
		chain_header(self, VIRTIO_BLK_T_IN, 0);
		self->c.p[0].len = lens[i];
		chain_buf(self, &data, W);
		chain_status(self);
		expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, "short IN header");
		check_untouched(_metadata, &data);

		/* Nothing but the short header and the status. */
		chain_header(self, VIRTIO_BLK_T_FLUSH, 0);
		self->c.p[0].len = lens[i];
		chain_status(self);
		expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, "short header alone");
	}
	/* No driver-readable byte at all. */
	chain_reset(self);
	chain_status(self);
	expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, "status alone");
	expect_serves(_metadata, self, self->q, 1);
}

/* Cuts the chain's first piece, the header, into @n descriptors. */
static void chain_split_header(FIXTURE_DATA(malformed) *self, unsigned int n)
{
	struct chain *c = &self->c;
	unsigned int step = VBLK_HDR_SIZE / n, j;

	memmove(&c->p[n], &c->p[1], (c->n - 1) * sizeof(c->p[0]));
	for (j = 0; j < n; j++)
		c->p[j] = (struct piece){
			self->hdr.gpa + j * step,
			j + 1 < n ? step : VBLK_HDR_SIZE - j * step, R,
		};
	c->n += n - 1;
}

TEST_F(malformed, header_split_across_descriptors_is_read_whole)
{
	static const unsigned int splits[] = { 2, 3, 16 };
	struct vblk_buf out = guarded(_metadata, self, 0, 4 * KiB, 0);
	struct vblk_buf in = guarded(_metadata, self, 1, 4 * KiB + 1, 0);
	struct vblk_buf in4k = vblk_buf_slice(&in, 0, 4 * KiB);
	struct vblk_buf joint = guarded(_metadata, self, 1,
					VBLK_HDR_SIZE + 4 * KiB, 0);
	struct virtio_blk_outhdr *h = joint.hva;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(splits); i++) {
		uint64_t sector = 64 + 8 * i;

		vblk_pattern_fill(out.hva, out.len, 10 + i);
		memcpy(self->disk + sector * VBLK_SECTOR_SIZE, out.hva, out.len);
		chain_request(self, VIRTIO_BLK_T_OUT, sector, &out, 1, R);
		chain_split_header(self, splits[i]);
		expect_done(_metadata, self, VIRTIO_BLK_S_OK, 1, "split OUT header");

		memset(in.hva, 0, in.len);
		chain_request(self, VIRTIO_BLK_T_IN, sector, &in4k, 1, W);
		chain_split_header(self, splits[i]);
		expect_done(_metadata, self, VIRTIO_BLK_S_OK, 4 * KiB + 1,
			    "split IN header");
		ASSERT_EQ(-1, vblk_pattern_check(in.hva, 4 * KiB, 10 + i));
	}

	/* Header and data in one buffer, cut inside the header; a read's
	 * data and status byte in one buffer. */
	h->type = htole32(VIRTIO_BLK_T_OUT);
	h->ioprio = 0;
	h->sector = htole64(128);
	vblk_pattern_fill((uint8_t *)joint.hva + VBLK_HDR_SIZE, 4 * KiB, 20);
	memcpy(self->disk + 128 * VBLK_SECTOR_SIZE,
	       (uint8_t *)joint.hva + VBLK_HDR_SIZE, 4 * KiB);
	chain_reset(self);
	chain_add(self, joint.gpa, 10, R);
	chain_add(self, joint.gpa + 10, joint.len - 10, R);
	chain_status(self);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, 1, "header sharing data's buffer");

	memset(in.hva, 0, in.len);
	chain_header(self, VIRTIO_BLK_T_IN, 128);
	chain_buf(self, &in, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, 4 * KiB + 1,
		    "status sharing data's buffer");
	ASSERT_EQ(-1, vblk_pattern_check(in.hva, 4 * KiB, 20));
	check_disk(_metadata, self);
}

/* Runs the chain, which has no device-writable byte. */
static void expect_no_status(struct __test_metadata *_metadata,
			     FIXTURE_DATA(malformed) *self, const char *what)
{
	struct vring_used_elem e;
	int ret = chain_run(self, &e);

	ASSERT_EQ(0, ret) TH_LOG("%s: %s", what, strerror(-ret));
	EXPECT_EQ(0U, e.len) TH_LOG("%s: used.len", what);
	EXPECT_LE(1, vblk_queue_wait_error(self->q, VBLK_TIMEOUT_MS))
		TH_LOG("%s: no error signalled", what);
	check_guards(_metadata, self);
}

TEST_F(malformed, chain_without_a_writable_byte_is_used_with_len_0_and_signals_an_error)
{
	struct vblk_buf data = guarded(_metadata, self, 1, 4 * KiB, 0);

	/* A write: nothing reaches the device. */
	vblk_pattern_fill(data.hva, data.len, 30);
	chain_header(self, VIRTIO_BLK_T_OUT, 256);
	chain_buf(self, &data, R);
	expect_no_status(_metadata, self, "OUT without status");
	check_disk(_metadata, self);

	chain_header(self, VIRTIO_BLK_T_IN, 256);
	expect_no_status(_metadata, self, "header alone");

	/* A device-writable descriptor of no bytes is no status byte. */
	chain_header(self, VIRTIO_BLK_T_FLUSH, 0);
	chain_status(self);
	self->c.p[1].len = 0;
	expect_no_status(_metadata, self, "empty writable descriptor");
	EXPECT_EQ(VBLK_STATUS_NONE, *(uint8_t *)self->status.hva);

	expect_serves(_metadata, self, self->q, 2);
}

/* @type at @sector over @n buffers fails IOERR and changes nothing. */
static void expect_rejected(struct __test_metadata *_metadata,
			    FIXTURE_DATA(malformed) *self, uint32_t type,
			    uint64_t sector, const struct vblk_buf *data,
			    unsigned int n, uint16_t flags, const char *what)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		memset(data[i].hva, FILL_BYTE, data[i].len);
	chain_request(self, type, sector, data, n, flags);
	expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, what);
	for (i = 0; i < n; i++)
		check_untouched(_metadata, &data[i]);
	check_disk(_metadata, self);
}

TEST_F(malformed, data_length_not_a_multiple_of_512_fails_ioerr)
{
	struct vblk_buf a = guarded(_metadata, self, 0, 1000, 0);
	struct vblk_buf b = guarded(_metadata, self, 1, 513, 0);
	struct vblk_buf two[2] = {
		guarded(_metadata, self, 0, 512, 0),
		guarded(_metadata, self, 1, 100, 0),
	};
	struct vblk_buf odd[2] = {
		guarded(_metadata, self, 0, 100, 3),
		guarded(_metadata, self, 1, 412, 0),
	};
	struct vblk_buf one = vblk_buf_slice(&a, 0, 511);
	uint8_t want[512];

	expect_rejected(_metadata, self, VIRTIO_BLK_T_IN, 8, &a, 1, W, "IN 1000");
	expect_rejected(_metadata, self, VIRTIO_BLK_T_IN, 8, &one, 1, W, "IN 511");
	expect_rejected(_metadata, self, VIRTIO_BLK_T_IN, 8, two, 2, W, "IN 612");
	expect_rejected(_metadata, self, VIRTIO_BLK_T_OUT, 8, &a, 1, R, "OUT 1000");
	expect_rejected(_metadata, self, VIRTIO_BLK_T_OUT, 8, &b, 1, R, "OUT 513");
	expect_rejected(_metadata, self, VIRTIO_BLK_T_OUT, 8, two, 2, R, "OUT 612");

	/* Odd pieces that add up to a whole sector are fine. */
	vblk_pattern_fill(want, sizeof(want), 40);
	vblk_bufs_scatter(odd, 2, want);
	memcpy(self->disk + 8 * VBLK_SECTOR_SIZE, want, sizeof(want));
	chain_request(self, VIRTIO_BLK_T_OUT, 8, odd, 2, R);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, 1, "OUT 100 + 412");
	memset(odd[0].hva, 0, odd[0].len);
	memset(odd[1].hva, 0, odd[1].len);
	chain_request(self, VIRTIO_BLK_T_IN, 8, odd, 2, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, 513, "IN 100 + 412");
	vblk_bufs_gather(odd, 2, want);
	ASSERT_EQ(-1, vblk_pattern_check(want, sizeof(want), 40));
	check_disk(_metadata, self);
}

/* Reads and writes of @len bytes at each of @sectors all fail IOERR and
 * change nothing, neither in the guest nor on the device. */
static void expect_out_of_range(struct __test_metadata *_metadata,
				FIXTURE_DATA(malformed) *self,
				const uint64_t *sectors, unsigned int n,
				size_t len)
{
	struct vblk_buf buf = guarded(_metadata, self, 1, len, 0);
	unsigned int i;

	char what[64];

	for (i = 0; i < n; i++) {
		snprintf(what, sizeof(what), "IN at %#llx",
			 (unsigned long long)sectors[i]);
		expect_rejected(_metadata, self, VIRTIO_BLK_T_IN, sectors[i],
				&buf, 1, W, what);
		snprintf(what, sizeof(what), "OUT at %#llx",
			 (unsigned long long)sectors[i]);
		expect_rejected(_metadata, self, VIRTIO_BLK_T_OUT, sectors[i],
				&buf, 1, R, what);
	}
}

/* The last @len bytes of the device read and written in place. */
static void expect_last_bytes_work(struct __test_metadata *_metadata,
				   FIXTURE_DATA(malformed) *self, size_t len)
{
	uint64_t sector = CAPACITY - len / VBLK_SECTOR_SIZE;
	struct vblk_buf buf = guarded(_metadata, self, 0, len, 0);

	chain_request(self, VIRTIO_BLK_T_IN, sector, &buf, 1, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, len + 1, "IN at the end");
	ASSERT_EQ(-1, vblk_mem_diff(buf.hva, self->disk + DISK_SIZE - len, len));
	vblk_pattern_fill(buf.hva, len, 50);
	memcpy(self->disk + DISK_SIZE - len, buf.hva, len);
	chain_request(self, VIRTIO_BLK_T_OUT, sector, &buf, 1, R);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, 1, "OUT at the end");
	check_disk(_metadata, self);
}

TEST_F(malformed, sector_beyond_capacity_fails_ioerr)
{
	static const uint64_t sectors[] = {
		CAPACITY, CAPACITY + 1, CAPACITY + 8, 1ULL << 40, 1ULL << 63,
	};

	expect_out_of_range(_metadata, self, sectors, ARRAY_SIZE(sectors), 512);
	expect_last_bytes_work(_metadata, self, 512);
}

TEST_F(malformed, sector_plus_length_beyond_capacity_fails_ioerr)
{
	static const uint64_t sectors[] = { CAPACITY - 1, CAPACITY - 7, CAPACITY - 8 };

	/* Each starts on the device and runs past its end. */
	expect_out_of_range(_metadata, self, sectors, ARRAY_SIZE(sectors), 8 * KiB);
	expect_last_bytes_work(_metadata, self, 8 * KiB);
}

TEST_F(malformed, sector_near_2_64_where_sector_plus_length_overflows_fails_ioerr)
{
	/* With 16 sectors, these wrap around to sectors 0 to 15. */
	static const uint64_t sectors[] = {
		~0ULL, ~0ULL - 1, ~0ULL - 14, ~0ULL - 15, -(CAPACITY / 2),
	};

	expect_out_of_range(_metadata, self, sectors, ARRAY_SIZE(sectors), 8 * KiB);
	expect_serves(_metadata, self, self->q, 3);
}

TEST_F(malformed, empty_read_or_write_beyond_capacity_fails_ioerr)
{
	static const uint64_t sectors[] = { CAPACITY + 1, 1ULL << 40, ~0ULL };
	unsigned int i, t;
	char what[64];

	/* Sector plus a length of 0 is still beyond the capacity. */
	for (i = 0; i < ARRAY_SIZE(sectors); i++) {
		for (t = VIRTIO_BLK_T_IN; t <= VIRTIO_BLK_T_OUT; t++) {
			snprintf(what, sizeof(what), "%s of nothing at %#llx",
				 t == VIRTIO_BLK_T_IN ? "IN" : "OUT",
				 (unsigned long long)sectors[i]);
			chain_request(self, t, sectors[i], NULL, 0, R);
			expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, what);
		}
	}
	expect_serves(_metadata, self, self->q, 14);
}

TEST_F(malformed, status_is_the_last_byte_of_the_last_writable_descriptor)
{
	struct vblk_buf id = filled(_metadata, self, 0, VIRTIO_BLK_ID_BYTES + 1, 0);
	struct vblk_buf wide = filled(_metadata, self, 1, 8, 0);
	struct vblk_buf data = filled(_metadata, self, 1, 4 * KiB, 0);
	uint8_t *w = wide.hva;

	/* GET_ID into 21 bytes: the serial, then the status. */
	ASSERT_EQ(0, vblk_dev_set_serial(&self->dev, "ABCDEFGHIJ0123456789"));
	chain_header(self, VIRTIO_BLK_T_GET_ID, 0);
	chain_buf(self, &id, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, VIRTIO_BLK_ID_BYTES + 1,
		    "GET_ID into 21 bytes");
	EXPECT_EQ(0, memcmp(id.hva, "ABCDEFGHIJ0123456789", VIRTIO_BLK_ID_BYTES));

	/* A flush's 8-byte writable descriptor: 7 bytes of data, IOERR. */
	chain_header(self, VIRTIO_BLK_T_FLUSH, 0);
	chain_buf(self, &wide, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, "FLUSH into 8 bytes");
	EXPECT_EQ(-1, vblk_mem_check_byte(w, 7, FILL_BYTE));

	/* A read with a 2-byte status descriptor: 4097 bytes of data. */
	memset(w, FILL_BYTE, wide.len);
	chain_header(self, VIRTIO_BLK_T_IN, 0);
	chain_buf(self, &data, W);
	chain_add(self, wide.gpa, 2, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, "IN with 2 status bytes");
	EXPECT_EQ(FILL_BYTE, w[0]);
	check_untouched(_metadata, &data);

	/* An empty writable descriptor after the status byte changes nothing. */
	chain_request(self, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, R);
	chain_add(self, wide.gpa, 0, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, 1, "FLUSH, then nothing");
	expect_serves(_metadata, self, self->q, 15);
}

/* @type over a readable buffer, then a writable one: IOERR, and neither
 * buffer nor the device changed. */
static void expect_both_directions_rejected(struct __test_metadata *_metadata,
					    FIXTURE_DATA(malformed) *self,
					    uint32_t type,
					    const struct vblk_buf *bufs)
{
	memset(bufs[0].hva, FILL_BYTE, bufs[0].len);
	memset(bufs[1].hva, FILL_BYTE, bufs[1].len);
	chain_request(self, type, 16, bufs, 1, R);
	self->c.n--;
	chain_buf(self, &bufs[1], W);
	chain_status(self);
	expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, "data both ways");
	check_untouched(_metadata, &bufs[0]);
	check_untouched(_metadata, &bufs[1]);
	check_disk(_metadata, self);
}

TEST_F(malformed, device_writable_data_for_out_fails_ioerr)
{
	struct vblk_buf bufs[2] = {
		guarded(_metadata, self, 0, 4 * KiB, 0),
		guarded(_metadata, self, 1, 4 * KiB, 0),
	};

	expect_rejected(_metadata, self, VIRTIO_BLK_T_OUT, 16, bufs, 1, W,
			"OUT of writable data");
	expect_both_directions_rejected(_metadata, self, VIRTIO_BLK_T_OUT, bufs);
	expect_serves(_metadata, self, self->q, 4);
}

TEST_F(malformed, driver_readable_data_after_an_in_header_fails_ioerr)
{
	struct vblk_buf bufs[2] = {
		guarded(_metadata, self, 0, 4 * KiB, 0),
		guarded(_metadata, self, 1, 4 * KiB, 0),
	};
	struct vblk_buf id = vblk_buf_slice(&bufs[0], 0, VIRTIO_BLK_ID_BYTES);

	expect_rejected(_metadata, self, VIRTIO_BLK_T_IN, 16, bufs, 1, R,
			"IN into readable data");
	expect_both_directions_rejected(_metadata, self, VIRTIO_BLK_T_IN, bufs);

	/* A header descriptor 4 bytes longer than the header. */
	memset(bufs[1].hva, FILL_BYTE, bufs[1].len);
	chain_request(self, VIRTIO_BLK_T_IN, 16, &bufs[1], 1, W);
	self->c.p[0].len = VBLK_HDR_SIZE + 4;
	expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, "IN header of 20 bytes");
	check_untouched(_metadata, &bufs[1]);

	ASSERT_EQ(0, vblk_dev_set_serial(&self->dev, "serial"));
	expect_rejected(_metadata, self, VIRTIO_BLK_T_GET_ID, 0, &id, 1, R,
			"GET_ID into readable data");
	expect_serves(_metadata, self, self->q, 5);
}

TEST_F(malformed, flush_with_data_fails_ioerr)
{
	struct vblk_buf buf = guarded(_metadata, self, 0, 512, 0);

	expect_rejected(_metadata, self, VIRTIO_BLK_T_FLUSH, 0, &buf, 1, R,
			"FLUSH with readable data");
	expect_rejected(_metadata, self, VIRTIO_BLK_T_FLUSH, 0, &buf, 1, W,
			"FLUSH with writable data");
	/* Without data, at any sector, it works. */
	chain_request(self, VIRTIO_BLK_T_FLUSH, ~0ULL, NULL, 0, R);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, 1, "FLUSH");
	expect_serves(_metadata, self, self->q, 6);
}

TEST_F(malformed, unknown_types_complete_unsupp)
{
	/* Legacy SCSI and FLUSH_OUT, holes, GET_LIFETIME (not offered), the
	 * zoned range, the legacy barrier bit. */
	static const uint32_t types[] = {
		2, 3, 5, 6, 7, 9, 10, 12, 15, 16, 26, 27, 0x100,
		0x80000000, 0x80000001, 0xffffffff,
	};
	struct vblk_buf buf = guarded(_metadata, self, 0, 4 * KiB, 0);
	unsigned int i;

	char what[64];

	for (i = 0; i < ARRAY_SIZE(types); i++) {
		snprintf(what, sizeof(what), "type %#x, writable data", types[i]);
		memset(buf.hva, FILL_BYTE, buf.len);
		chain_request(self, types[i], 0, &buf, 1, W);
		expect_done(_metadata, self, VIRTIO_BLK_S_UNSUPP, 1, what);
		check_untouched(_metadata, &buf);
		snprintf(what, sizeof(what), "type %#x, readable data", types[i]);
		chain_request(self, types[i], 0, &buf, 1, R);
		expect_done(_metadata, self, VIRTIO_BLK_S_UNSUPP, 1, what);
	}
	check_disk(_metadata, self);
	expect_serves(_metadata, self, self->q, 7);
}

/* ------------------------------------------------------------------------
 * DISCARD and WRITE_ZEROES
 */

static const uint32_t range_types[] = {
	VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES,
};

/*
 * The range types the device offers: WRITE_ZEROES only where the backend
 * zeroes by itself, which null_blk does not (write_zeroes_on_a_backend_
 * that_cannot_zero_completes_unsupp covers that case).
 */
static unsigned int range_type_count(FIXTURE_DATA(malformed) *self)
{
	return self->cfg.max_write_zeroes_sectors ? ARRAY_SIZE(range_types) : 1;
}

/* A guest buffer holding @n range segments, and @extra bytes more. */
static struct vblk_buf segments(struct __test_metadata *_metadata,
				FIXTURE_DATA(malformed) *self,
				const struct segment *s, unsigned int n,
				size_t extra)
{
	struct virtio_blk_discard_write_zeroes *r;
	struct vblk_buf buf;
	unsigned int i;

	buf = guarded(_metadata, self, 0, n * sizeof(*r) + extra, 0);
	r = buf.hva;
	for (i = 0; i < n; i++) {
		r[i].sector = htole64(s[i].sector);
		r[i].num_sectors = htole32(s[i].num);
		r[i].flags = htole32(s[i].flags);
	}
	return buf;
}

/* @type over the segments in @buf completes with @status. */
static void expect_range(struct __test_metadata *_metadata,
			 FIXTURE_DATA(malformed) *self, uint32_t type,
			 const struct vblk_buf *buf, uint8_t status,
			 const char *what)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "%s: %s",
		 type == VIRTIO_BLK_T_DISCARD ? "DISCARD" : "WRITE_ZEROES", what);
	chain_request(self, type, 0, buf, buf ? 1 : 0, R);
	expect_done(_metadata, self, status, 1, msg);
	check_disk(_metadata, self);
}

/* The mirror after @s was zeroed (null_blk reads discarded sectors as 0). */
static void zero_segments(FIXTURE_DATA(malformed) *self,
			  const struct segment *s, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		memset(self->disk + s[i].sector * VBLK_SECTOR_SIZE, 0,
		       (size_t)s[i].num * VBLK_SECTOR_SIZE);
}

TEST_F(malformed, range_request_without_a_segment_fails_ioerr)
{
	unsigned int t;

	for (t = 0; t < range_type_count(self); t++)
		expect_range(_metadata, self, range_types[t], NULL,
			     VIRTIO_BLK_S_IOERR, "no data");
	expect_serves(_metadata, self, self->q, 8);
}

TEST_F(malformed, range_request_with_a_partial_segment_fails_ioerr)
{
	const struct segment s = { 64, 8, 0 };
	struct vblk_buf half = segments(_metadata, self, &s, 1, 0);
	struct vblk_buf more = segments(_metadata, self, &s, 1, 8);
	struct vblk_buf odd = segments(_metadata, self, &s, 1, 0);
	unsigned int t;

	half.len = 8;
	odd.len = 15;
	for (t = 0; t < range_type_count(self); t++) {
		expect_range(_metadata, self, range_types[t], &half,
			     VIRTIO_BLK_S_IOERR, "8 bytes");
		expect_range(_metadata, self, range_types[t], &odd,
			     VIRTIO_BLK_S_IOERR, "15 bytes");
		/* The whole first segment is not applied either. */
		expect_range(_metadata, self, range_types[t], &more,
			     VIRTIO_BLK_S_IOERR, "24 bytes");
	}
	expect_serves(_metadata, self, self->q, 9);
}

TEST_F(malformed, range_request_with_more_than_max_range_segs_fails_ioerr)
{
	struct segment s[VHOST_BLK_MAX_RANGE_SEGS + 1];
	struct vblk_buf too_many, max;
	unsigned int i, t;

	ASSERT_EQ((uint32_t)VHOST_BLK_MAX_RANGE_SEGS,
		  le32toh(self->cfg.max_discard_seg));
	if (range_type_count(self) > 1)
		ASSERT_EQ((uint32_t)VHOST_BLK_MAX_RANGE_SEGS,
			  le32toh(self->cfg.max_write_zeroes_seg));
	for (t = 0; t < range_type_count(self); t++) {
		/* Each type on sectors of its own, separated by gaps. */
		for (i = 0; i < ARRAY_SIZE(s); i++)
			s[i] = (struct segment){ 512 + 1024 * t + 16 * i, 8, 0 };
		too_many = segments(_metadata, self, s, ARRAY_SIZE(s), 0);
		max = segments(_metadata, self, s, VHOST_BLK_MAX_RANGE_SEGS, 0);
		expect_range(_metadata, self, range_types[t], &too_many,
			     VIRTIO_BLK_S_IOERR, "one segment too many");
		/* Exactly as many as allowed work, and only on them. */
		zero_segments(self, s, VHOST_BLK_MAX_RANGE_SEGS);
		expect_range(_metadata, self, range_types[t], &max,
			     VIRTIO_BLK_S_OK, "the most segments");
	}
}

TEST_F(malformed, range_segment_beyond_capacity_fails_ioerr_and_applies_no_segment)
{
	static const struct segment bad[] = {
		{ CAPACITY - 4, 8, 0 }, { CAPACITY, 1, 0 }, { 1ULL << 62, 8, 0 },
		{ ~0ULL - 3, 8, 0 }, { ~0ULL, 1, 0 }, { 8, 0xffffffff, 0 },
	};
	unsigned int i, t;

	for (t = 0; t < range_type_count(self); t++) {
		for (i = 0; i < ARRAY_SIZE(bad); i++) {
			/* A good segment first: it must not be applied. */
			struct segment s[2] = { { 1024, 8, 0 }, bad[i] };
			struct vblk_buf buf = segments(_metadata, self, s, 2, 0);

			char what[64];

			snprintf(what, sizeof(what), "segment %#llx + %u",
				 (unsigned long long)bad[i].sector, bad[i].num);
			expect_range(_metadata, self, range_types[t], &buf,
				     VIRTIO_BLK_S_IOERR, what);
		}
	}
	expect_serves(_metadata, self, self->q, 10);
}

TEST_F(malformed, range_request_with_a_zero_sector_segment_is_applied_whole_or_not_at_all)
{
	unsigned int t;

	for (t = 0; t < range_type_count(self); t++) {
		struct segment s[3] = {
			{ 1024 + 64 * t, 8, 0 }, { 1040 + 64 * t, 0, 0 },
			{ 1056 + 64 * t, 8, 0 },
		};
		struct vblk_buf buf = segments(_metadata, self, s, 3, 0);
		const char *type = t ? "WRITE_ZEROES" : "DISCARD";
		struct vring_used_elem e;

		chain_request(self, range_types[t], 0, &buf, 1, R);
		ASSERT_EQ(0, chain_run(self, &e));
		EXPECT_EQ(1U, e.len);
		/* Either it ignores the empty segment and works... */
		if (status_byte(self) == VIRTIO_BLK_S_OK) {
			zero_segments(self, s, 3);
		} else {
			/* ...or it fails before it applies any segment. */
			EXPECT_EQ(VIRTIO_BLK_S_IOERR, status_byte(self))
				TH_LOG("%s", type);
		}
		check_guards(_metadata, self);
		check_disk(_metadata, self);
	}
	expect_serves(_metadata, self, self->q, 16);
}

TEST_F(malformed, range_segment_with_unknown_flags_completes_unsupp)
{
	static const uint32_t flags[] = { 2, 4, 0x80000000, 0xfffffffe };
	unsigned int i, t;

	for (t = 0; t < range_type_count(self); t++) {
		for (i = 0; i < ARRAY_SIZE(flags); i++) {
			struct segment s[2] = { { 1024, 8, 0 }, { 1040, 8, flags[i] } };
			struct vblk_buf buf = segments(_metadata, self, s, 2, 0);

			char what[32];

			snprintf(what, sizeof(what), "flags %#x", flags[i]);
			expect_range(_metadata, self, range_types[t], &buf,
				     VIRTIO_BLK_S_UNSUPP, what);
		}
	}
	expect_serves(_metadata, self, self->q, 11);
}

TEST_F(malformed, discard_with_the_unmap_flag_completes_unsupp)
{
	const struct segment s = { 1024, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	struct vblk_buf buf = segments(_metadata, self, &s, 1, 0);

	expect_range(_metadata, self, VIRTIO_BLK_T_DISCARD, &buf,
		     VIRTIO_BLK_S_UNSUPP, "UNMAP");
	if (range_type_count(self) == 1)
		return;
	/* The flag is WRITE_ZEROES's. */
	zero_segments(self, &s, 1);
	expect_range(_metadata, self, VIRTIO_BLK_T_WRITE_ZEROES, &buf,
		     VIRTIO_BLK_S_OK, "UNMAP");
}

/*
 * No WRITE_ZEROES by writing zero pages from the worker: on a backend that
 * cannot zero, every WRITE_ZEROES, well formed or not, completes UNSUPP.
 */
TEST_F(malformed, write_zeroes_on_a_backend_that_cannot_zero_completes_unsupp)
{
	const struct segment ok[2] = { { 1024, 8, 0 },
				       { 2048, 64, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP } };
	const struct segment huge = { 0, 0xffffffff, 0 };
	struct vblk_buf buf;

	ASSERT_EQ(1U, range_type_count(self)) TH_LOG("null_blk cannot zero");
	ASSERT_EQ(0U, le32toh(self->cfg.max_write_zeroes_seg));
	buf = segments(_metadata, self, ok, 2, 0);
	expect_range(_metadata, self, VIRTIO_BLK_T_WRITE_ZEROES, &buf,
		     VIRTIO_BLK_S_UNSUPP, "two good segments");
	buf = segments(_metadata, self, &huge, 1, 0);
	expect_range(_metadata, self, VIRTIO_BLK_T_WRITE_ZEROES, &buf,
		     VIRTIO_BLK_S_UNSUPP, "4 Gi sectors");
	expect_serves(_metadata, self, self->q, 13);
}

TEST_F(malformed, range_segments_in_device_writable_buffers_fail_ioerr)
{
	const struct segment s = { 1024, 8, 0 };
	struct vblk_buf buf = segments(_metadata, self, &s, 1, 0);
	uint8_t copy[16];
	unsigned int t;

	memcpy(copy, buf.hva, sizeof(copy));
	for (t = 0; t < range_type_count(self); t++) {
		chain_request(self, range_types[t], 0, &buf, 1, W);
		expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, "writable segment");
		EXPECT_EQ(0, memcmp(copy, buf.hva, sizeof(copy)));
		check_disk(_metadata, self);
	}
	expect_serves(_metadata, self, self->q, 12);
}

/* ------------------------------------------------------------------------
 * Too many data segments, read-only devices
 */

TEST_F(malformed, more_than_seg_max_data_segments_fails_ioerr)
{
	struct vblk_buf all = guarded(_metadata, self, 1,
				      (VHOST_BLK_SEG_MAX + 1) * 512, 0);
	struct vblk_buf segs[VHOST_BLK_SEG_MAX + 1];
	size_t max_len = VHOST_BLK_SEG_MAX * 512;
	unsigned int i;

	ASSERT_EQ((uint32_t)VHOST_BLK_SEG_MAX, le32toh(self->cfg.seg_max));
	for (i = 0; i < ARRAY_SIZE(segs); i++)
		segs[i] = vblk_buf_slice(&all, i * 512, 512);
	expect_rejected(_metadata, self, VIRTIO_BLK_T_IN, 0, segs,
			ARRAY_SIZE(segs), W, "IN of SEG_MAX + 1");
	expect_rejected(_metadata, self, VIRTIO_BLK_T_OUT, 0, segs,
			ARRAY_SIZE(segs), R, "OUT of SEG_MAX + 1");

	/* Exactly SEG_MAX, both ways. */
	vblk_pattern_fill(all.hva, max_len, 60);
	memcpy(self->disk, all.hva, max_len);
	chain_request(self, VIRTIO_BLK_T_OUT, 0, segs, VHOST_BLK_SEG_MAX, R);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, 1, "OUT of SEG_MAX");
	memset(all.hva, 0, all.len);
	chain_request(self, VIRTIO_BLK_T_IN, 0, segs, VHOST_BLK_SEG_MAX, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, max_len + 1, "IN of SEG_MAX");
	EXPECT_EQ(-1, vblk_pattern_check(all.hva, max_len, 60));
	check_disk(_metadata, self);
}

TEST_F(malformed, write_to_a_read_only_device_fails_ioerr_and_leaves_the_backend_unchanged)
{
	const struct segment s = { 96, 16, 0 };
	struct vblk_buf range = segments(_metadata, self, &s, 1, 0);
	struct vblk_buf buf = guarded(_metadata, self, 1, 8 * KiB, 0);
	unsigned int t;

	ASSERT_EQ(0, vblk_dev_set_read_only(&self->dev, 1));
	vblk_pattern_fill(buf.hva, buf.len, 70);
	chain_request(self, VIRTIO_BLK_T_OUT, 96, &buf, 1, R);
	expect_done(_metadata, self, VIRTIO_BLK_S_IOERR, 1, "OUT");
	for (t = 0; t < range_type_count(self); t++)
		expect_range(_metadata, self, range_types[t], &range,
			     VIRTIO_BLK_S_IOERR, "read-only");
	/* check_disk read the device node with O_DIRECT: unchanged. Reads
	 * still work and return the old data. */
	check_disk(_metadata, self);
	chain_request(self, VIRTIO_BLK_T_IN, 96, &buf, 1, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, buf.len + 1, "IN");
	ASSERT_EQ(-1, vblk_mem_diff(buf.hva, self->disk + 96 * VBLK_SECTOR_SIZE,
				    buf.len));

	ASSERT_EQ(0, vblk_dev_set_read_only(&self->dev, 0));
	expect_serves(_metadata, self, self->q, 13);
}

/* ------------------------------------------------------------------------
 * Chains the vhost core rejects: the queue stops at them
 */

/* Closes the device, checks the block device, starts a fresh device. */
static void restart(struct __test_metadata *_metadata,
		    FIXTURE_DATA(malformed) *self,
		    const FIXTURE_VARIANT(malformed) *variant)
{
	int ret;

	vblk_dev_close(&self->dev);
	check_disk(_metadata, self);
	ret = start(self, variant);
	ASSERT_EQ(0, ret) TH_LOG("fresh device: %s", strerror(-ret));
	self->hdr = guarded(_metadata, self, 0, VBLK_HDR_SIZE, 0);
	self->status = guarded(_metadata, self, 1, 1, 100);
}

/* Replaces the block device by one of 4096-byte logical blocks that holds
 * the same data, and the device by a fresh one on it. */
static void use_4k_blocks(struct __test_metadata *_metadata,
			  FIXTURE_DATA(malformed) *self,
			  const FIXTURE_VARIANT(malformed) *variant)
{
	struct vblk_backend_opts bo = {
		.size = DISK_SIZE, .block_size = 4096, .discard = true,
	};
	int ret;

	vblk_dev_close(&self->dev);
	ASSERT_EQ(0, vblk_backend_destroy(&self->be));
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	ASSERT_EQ(0, vblk_backend_pwrite(&self->be, self->disk, DISK_SIZE, 0));
	restart(_metadata, self, variant);
	ASSERT_EQ(4096U, le32toh(self->cfg.blk_size));
}

TEST_F(malformed, range_not_in_whole_logical_blocks_fails_ioerr)
{
	static const struct { uint64_t sector; size_t len; } bad[] = {
		{ 1, 4096 }, { 7, 8192 }, { 8, 512 }, { 8, 4096 + 512 }, { 12, 2048 },
	};
	static const struct segment bad_segs[] = {
		{ 4, 8, 0 }, { 8, 4, 0 }, { 9, 15, 0 },
	};
	struct vblk_buf buf, odd, range;
	unsigned int i, t;

	use_4k_blocks(_metadata, self, variant);
	buf = guarded(_metadata, self, 1, 8 * KiB, 0);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vblk_buf part = vblk_buf_slice(&buf, 0, bad[i].len);

		expect_rejected(_metadata, self, VIRTIO_BLK_T_IN, bad[i].sector,
				&part, 1, W, "IN not in 4 KiB blocks");
		expect_rejected(_metadata, self, VIRTIO_BLK_T_OUT, bad[i].sector,
				&part, 1, R, "OUT not in 4 KiB blocks");
	}
	for (t = 0; t < range_type_count(self); t++) {
		for (i = 0; i < ARRAY_SIZE(bad_segs); i++) {
			range = segments(_metadata, self, &bad_segs[i], 1, 0);
			expect_range(_metadata, self, range_types[t], &range,
				     VIRTIO_BLK_S_IOERR, "not in 4 KiB blocks");
		}
	}

	/*
	 * Whole blocks work: written from a page, read back into a page and
	 * into a buffer at a sector offset in its page. (Only reads go to a
	 * buffer like that: null_blk of 6.1 copies a write of a segment that
	 * starts inside one of its 4 KiB blocks past the end of its page.)
	 */
	odd = guarded(_metadata, self, 0, 8 * KiB, 512);
	vblk_pattern_fill(buf.hva, buf.len, 17);
	memcpy(self->disk + 64 * VBLK_SECTOR_SIZE, buf.hva, buf.len);
	chain_request(self, VIRTIO_BLK_T_OUT, 64, &buf, 1, R);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, 1, "OUT of 2 blocks");
	memset(buf.hva, 0, buf.len);
	chain_request(self, VIRTIO_BLK_T_IN, 64, &buf, 1, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, buf.len + 1, "IN of 2 blocks");
	EXPECT_EQ(-1, vblk_pattern_check(buf.hva, buf.len, 17));
	chain_request(self, VIRTIO_BLK_T_IN, 64, &odd, 1, W);
	expect_done(_metadata, self, VIRTIO_BLK_S_OK, odd.len + 1,
		    "IN of 2 blocks at offset 512");
	EXPECT_EQ(-1, vblk_pattern_check(odd.hva, odd.len, 17))
		TH_LOG("read into a buffer at offset 512 of its page");
	/* ...and so do ranges of whole blocks. */
	for (t = 0; t < range_type_count(self); t++) {
		const struct segment good = { 128 + 64 * t, 16, 0 };

		range = segments(_metadata, self, &good, 1, 0);
		zero_segments(self, &good, 1);
		expect_range(_metadata, self, range_types[t], &range,
			     VIRTIO_BLK_S_OK, "whole blocks");
	}
	check_disk(_metadata, self);
}

/*
 * The queue stopped at the chain published at avail index @bad: the error
 * eventfd fired and nothing was used. Kicked again with a good write behind
 * the chain, it serves nothing, and the device's next avail index stays at
 * the chain, while the other queue still serves. Then the device closes,
 * the block device holds what it held, and a fresh device serves.
 */
static void expect_stopped(struct __test_metadata *_metadata,
			   FIXTURE_DATA(malformed) *self,
			   const FIXTURE_VARIANT(malformed) *variant,
			   uint16_t bad, const char *what)
{
	struct vblk_queue *q = self->q;
	struct vblk_buf buf;
	struct vblk_req req;
	uint16_t idx = 0;

	ASSERT_LE(1, vblk_queue_wait_error(q, VBLK_TIMEOUT_MS))
		TH_LOG("%s: no error signalled", what);
	EXPECT_EQ(0U, vblk_queue_used_pending(q));

	buf = guarded(_metadata, self, 0, 4 * KiB, 0);
	vblk_pattern_fill(buf.hva, buf.len, 80);
	vblk_req_init(&req, VIRTIO_BLK_T_OUT, BLOCKED_SECTOR, &buf, 1);
	req.indirect = self->indirect;
	ASSERT_EQ(0, vblk_queue_add(q, &req));
	/* Notifications stay disabled after the error: kick regardless. */
	ASSERT_EQ(0, vblk_queue_notify(q));
	vblk_queue_wait_error(q, STOPPED_MS);
	EXPECT_EQ(0U, vblk_queue_used_pending(q)) TH_LOG("%s: served past it", what);
	ASSERT_EQ(0, vblk_queue_device_avail(q, &idx));
	EXPECT_EQ(bad, idx) TH_LOG("%s: the device moved past it", what);

	expect_serves(_metadata, self, &self->dev.queues[1], 90);
	restart(_metadata, self, variant);
	expect_serves(_metadata, self, self->q, 91);
}

/* Publishes @head as the next avail entry and kicks; its avail index. */
static uint16_t publish_head(FIXTURE_DATA(malformed) *self, uint16_t head)
{
	uint16_t idx = self->q->avail_idx;

	vblk_queue_publish(self->q, head);
	vblk_queue_notify(self->q);
	return idx;
}

/* An indirect descriptor to @gpa of @len bytes, published at once. */
static uint16_t publish_indirect(FIXTURE_DATA(malformed) *self, uint64_t gpa,
				 uint32_t len)
{
	uint16_t id = 0;

	vblk_queue_take_descs(self->q, 1, &id);
	vblk_queue_set_desc(self->q, id, gpa, len, VRING_DESC_F_INDIRECT, 0);
	return publish_head(self, id);
}

/* The chain as an indirect table at @table, not published yet. */
static void write_table(FIXTURE_DATA(malformed) *self, struct vring_desc *table)
{
	unsigned int i;

	for (i = 0; i < self->c.n; i++)
		table[i] = desc(&self->c.p[i],
				i + 1 < self->c.n ? VRING_DESC_F_NEXT : 0, i + 1);
}

/* A read of 4 KiB: header, data, status; the chain is not published. */
static void chain_read(struct __test_metadata *_metadata,
		       FIXTURE_DATA(malformed) *self)
{
	struct vblk_buf data = filled(_metadata, self, 1, 4 * KiB, 0);

	chain_request(self, VIRTIO_BLK_T_IN, 0, &data, 1, W);
}

/*
 * The read of chain_read in the fixture's indirect table, its last entry
 * chained on to entry @next, published. Its avail index.
 */
static uint16_t publish_table_chained_on(struct __test_metadata *_metadata,
					 FIXTURE_DATA(malformed) *self,
					 uint16_t next)
{
	struct vring_desc *table = self->table.hva;

	chain_read(_metadata, self);
	write_table(self, table);
	table[2].flags |= htole16(VRING_DESC_F_NEXT);
	table[2].next = htole16(next);
	return publish_indirect(self, self->table.gpa, 3 * sizeof(*table));
}

/*
 * The read of chain_read in three ring descriptors, the last chained on to
 * descriptor @next (or, when negative, to the chain's own head), published.
 * Its avail index.
 */
static uint16_t publish_ring_chained_on(struct __test_metadata *_metadata,
					FIXTURE_DATA(malformed) *self, int next)
{
	uint16_t ids[3];
	unsigned int i;

	chain_read(_metadata, self);
	ASSERT_EQ(0, vblk_queue_take_descs(self->q, 3, ids));
	for (i = 0; i < 3; i++)
		self->q->vr.desc[ids[i]] =
			desc(&self->c.p[i], VRING_DESC_F_NEXT,
			     i < 2 ? ids[i + 1] : next < 0 ? ids[0] : next);
	return publish_head(self, ids[0]);
}

/* Publishes the hand-made chain, which the core must reject. */
static void expect_chain_stops(struct __test_metadata *_metadata,
			       FIXTURE_DATA(malformed) *self,
			       const FIXTURE_VARIANT(malformed) *variant,
			       const char *what)
{
	ASSERT_EQ(0, chain_publish(self)) TH_LOG("%s", what);
	expect_stopped(_metadata, self, variant, self->c.avail, what);
}

TEST_F(malformed, descriptor_loop_stops_the_queue)
{
	uint16_t id;

	/* Header, data, status, and back to the header. */
	if (self->indirect)
		expect_stopped(_metadata, self, variant,
			       publish_table_chained_on(_metadata, self, 0),
			       "table entry chained back to the first");
	else
		expect_stopped(_metadata, self, variant,
			       publish_ring_chained_on(_metadata, self, -1),
			       "chain back to its head");

	/* A descriptor that is its own next. */
	ASSERT_EQ(0, vblk_queue_take_descs(self->q, 1, &id));
	vblk_queue_set_desc(self->q, id, self->status.gpa, 1,
			    W | VRING_DESC_F_NEXT, id);
	expect_stopped(_metadata, self, variant, publish_head(self, id),
		       "descriptor chained to itself");
}

TEST_F(malformed, head_index_out_of_range_stops_the_queue)
{
	expect_stopped(_metadata, self, variant,
		       publish_head(self, self->q->num), "head = queue size");
	expect_stopped(_metadata, self, variant, publish_head(self, 0xffff),
		       "head = 0xffff");
}

TEST_F(malformed, next_index_out_of_range_stops_the_queue)
{
	if (self->indirect) {
		expect_stopped(_metadata, self, variant,
			       publish_table_chained_on(_metadata, self, 3),
			       "next = table size");
		expect_stopped(_metadata, self, variant,
			       publish_table_chained_on(_metadata, self, 0xffff),
			       "next = 0xffff in a table");
	}
	expect_stopped(_metadata, self, variant,
		       publish_ring_chained_on(_metadata, self, self->q->num),
		       "next = queue size");
	expect_stopped(_metadata, self, variant,
		       publish_ring_chained_on(_metadata, self, 0xffff),
		       "next = 0xffff");
}

/* Reads whose piece @i is moved to @gpa, each stopping the queue. */
static void expect_address_stops(struct __test_metadata *_metadata,
				 FIXTURE_DATA(malformed) *self,
				 const FIXTURE_VARIANT(malformed) *variant,
				 unsigned int i, uint64_t gpa, uint32_t len,
				 const char *what)
{
	chain_read(_metadata, self);
	self->c.p[i].gpa = gpa;
	if (len)
		self->c.p[i].len = len;
	expect_chain_stops(_metadata, self, variant, what);
}

TEST_F(malformed, address_in_the_hole_between_the_regions_stops_the_queue)
{
	const struct vblk_region *r0 = &self->dev.mem.regions[0];
	uint64_t hole = r0->gpa + r0->size;

	ASSERT_EQ(hole + VBLK_GPA_HOLE, self->dev.mem.regions[1].gpa);
	expect_address_stops(_metadata, self, variant, 0, hole + 4096, 0,
			     "header in the hole");
	expect_address_stops(_metadata, self, variant, 1, hole, 0,
			     "data at the start of the hole");
	expect_address_stops(_metadata, self, variant, 1,
			     hole + VBLK_GPA_HOLE - 4096, 0,
			     "data at the end of the hole");
	expect_address_stops(_metadata, self, variant, 2, hole + 100, 0,
			     "status in the hole");
	expect_address_stops(_metadata, self, variant, 1, hole - 512, 4096,
			     "data from region 0 into the hole");
	expect_address_stops(_metadata, self, variant, 1, hole - 512,
			     VBLK_GPA_HOLE + 1024, "data across the hole");
}

TEST_F(malformed, address_outside_guest_memory_stops_the_queue)
{
	uint64_t end = vblk_mem_gpa_end(&self->dev.mem);

	expect_address_stops(_metadata, self, variant, 1, end, 0,
			     "data right after the end");
	expect_address_stops(_metadata, self, variant, 1, end - 512, 4096,
			     "data across the end");
	expect_address_stops(_metadata, self, variant, 0, 1ULL << 48, 0,
			     "header far above");
	expect_address_stops(_metadata, self, variant, 1, 0x1000, 0,
			     "data below the first region");
	expect_address_stops(_metadata, self, variant, 1, VBLK_GPA_BASE - 512,
			     4096, "data into the first region from below");
	expect_address_stops(_metadata, self, variant, 1, ~0ULL - 511, 4096,
			     "data wrapping around 2^64");
}

TEST_F(malformed, readable_descriptor_after_a_writable_one_stops_the_queue)
{
	struct vblk_buf out = guarded(_metadata, self, 0, 4 * KiB, 0);

	/* Header, status, then data the device would read. */
	chain_header(self, VIRTIO_BLK_T_OUT, 0);
	chain_status(self);
	chain_buf(self, &out, R);
	expect_chain_stops(_metadata, self, variant, "readable after writable");
}

/*
 * The read of chain_read as an inner table, and the outer table: entry
 * @at of it is the indirect descriptor of the inner one, the entries before
 * it are the header. Published; its avail index.
 */
static uint16_t publish_nested(struct __test_metadata *_metadata,
			       FIXTURE_DATA(malformed) *self, unsigned int at)
{
	struct vblk_buf inner = guarded(_metadata, self, 1,
					3 * sizeof(struct vring_desc), 0);
	struct vring_desc *outer = self->table.hva;
	const struct piece hdr = { self->hdr.gpa, VBLK_HDR_SIZE, R };
	unsigned int i;

	chain_read(_metadata, self);
	write_table(self, inner.hva);
	for (i = 0; i < at; i++)
		outer[i] = desc(&hdr, VRING_DESC_F_NEXT, i + 1);
	outer[at] = (struct vring_desc){
		.addr = htole64(inner.gpa), .len = htole32(inner.len),
		.flags = htole16(VRING_DESC_F_INDIRECT),
	};
	return publish_indirect(self, self->table.gpa,
				(at + 1) * sizeof(*outer));
}

TEST_F(malformed, nested_indirect_table_stops_the_queue)
{
	expect_stopped(_metadata, self, variant, publish_nested(_metadata, self, 0),
		       "indirect in indirect");
	/* The same after a header entry, then split over two. */
	expect_stopped(_metadata, self, variant, publish_nested(_metadata, self, 1),
		       "indirect after a header entry");
}

TEST_F(malformed, indirect_table_of_a_bad_length_stops_the_queue)
{
	static const uint32_t lens[] = { 20, 8, 47, 0 };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(lens); i++) {
		chain_read(_metadata, self);
		write_table(self, self->table.hva);
		char what[32];

		snprintf(what, sizeof(what), "table of %u bytes", lens[i]);
		expect_stopped(_metadata, self, variant,
			       publish_indirect(self, self->table.gpa, lens[i]),
			       what);
	}
}

TEST_F(malformed, indirect_table_outside_guest_memory_stops_the_queue)
{
	const struct vblk_region *r0 = &self->dev.mem.regions[0];

	expect_stopped(_metadata, self, variant,
		       publish_indirect(self, r0->gpa + r0->size, 48),
		       "table in the hole");
	expect_stopped(_metadata, self, variant,
		       publish_indirect(self, vblk_mem_gpa_end(&self->dev.mem) - 16,
					48),
		       "table across the end");
}

TEST_F(malformed, chain_longer_than_the_core_iov_array_stops_the_queue)
{
	struct vblk_buf data = filled(_metadata, self, 1, 512, 0);
	unsigned int i;

	/* One read into the same 512 bytes, CORE_MAX_IOV + 1 times. */
	chain_header(self, VIRTIO_BLK_T_IN, 0);
	for (i = 0; i <= CORE_MAX_IOV; i++)
		chain_buf(self, &data, W);
	chain_status(self);
	self->c.indirect = true;
	expect_chain_stops(_metadata, self, variant, "1027 descriptors");
}

/* ------------------------------------------------------------------------
 * More bytes than a request may carry
 */

#define BIG_SIZE	(512 * MiB)

/* A device whose guest memory and block device are large enough for a
 * request of more than VHOST_BLK_SEG_MAX * VHOST_BLK_SIZE_MAX bytes. The
 * memory is a sparse memfd and the null_blk is not memory backed. */
FIXTURE(oversized) {
	struct vblk_backend be;
	struct vblk_dev dev;
};

FIXTURE_SETUP(oversized)
{
	struct vblk_backend_opts bo = { .size = BIG_SIZE, .no_memory = true };
	struct vblk_opts o = { .mem_size = BIG_SIZE };
	int ret;

	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	ret = vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR);
	if (ret)
		vblk_backend_destroy(&self->be);
	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(oversized)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

TEST_F(oversized, request_of_more_than_seg_max_times_size_max_bytes_fails_ioerr)
{
	const struct vblk_region *r1 = &self->dev.mem.regions[1];
	size_t half = r1->size / 2;
	/* Region 1 is untouched: two buffers of its halves. */
	struct vblk_buf segs[2] = {
		{ r1->hva, r1->gpa, half },
		{ r1->hva + half, r1->gpa + half, half },
	};
	struct vblk_queue *q = &self->dev.queues[0];
	struct vblk_buf small;
	struct vblk_req req;

	ASSERT_LT((size_t)VHOST_BLK_SEG_MAX * VHOST_BLK_SIZE_MAX, 2 * half);
	vblk_req_init(&req, VIRTIO_BLK_T_IN, 0, segs, 2);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_exec(q, &req));
	EXPECT_EQ(1U, req.used_len);
	vblk_req_init(&req, VIRTIO_BLK_T_OUT, 0, segs, 2);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_exec(q, &req));
	EXPECT_EQ(1U, req.used_len);

	/* A request of a size the device takes. */
	ASSERT_EQ(0, vblk_mem_alloc_in(&self->dev.mem, 0, MiB, VBLK_PAGE_SIZE,
				       &small));
	vblk_req_init(&req, VIRTIO_BLK_T_IN, 0, &small, 1);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_exec(q, &req));
	EXPECT_EQ(MiB + 1, req.used_len);
}

/*
 * size_max holds per buffer, not only on average: one buffer a sector
 * longer than VHOST_BLK_SIZE_MAX fails, even in a small request, and
 * exactly VHOST_BLK_SIZE_MAX works.
 */
TEST_F(oversized, data_buffer_longer_than_size_max_fails_ioerr)
{
	struct vblk_queue *q = &self->dev.queues[0];
	struct vblk_buf buf;
	struct vblk_req req;

	ASSERT_EQ(0, vblk_mem_alloc_in(&self->dev.mem, 0,
				       VHOST_BLK_SIZE_MAX + VBLK_SECTOR_SIZE,
				       VBLK_PAGE_SIZE, &buf));
	vblk_req_init(&req, VIRTIO_BLK_T_IN, 0, &buf, 1);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_exec(q, &req));
	EXPECT_EQ(1U, req.used_len);
	vblk_req_init(&req, VIRTIO_BLK_T_OUT, 0, &buf, 1);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_exec(q, &req));

	buf.len = VHOST_BLK_SIZE_MAX;
	vblk_req_init(&req, VIRTIO_BLK_T_IN, 0, &buf, 1);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_exec(q, &req));
	EXPECT_EQ(VHOST_BLK_SIZE_MAX + 1, req.used_len);
}

TEST_HARNESS_MAIN
