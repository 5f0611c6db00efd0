// SPDX-License-Identifier: GPL-2.0
/*
 * Attaching, swapping and detaching the block device behind a vhost-blk
 * device (VHOST_BLK_SET_BACKEND), and the misuse of the vhost-blk ioctls:
 * each must fail with the errno of Documentation/abi.rst and leave the
 * device as it was. Requests in flight across a swap or a stop must all
 * complete, with their data on the device they were sent to.
 *
 * Needs root, the vhost_blk module loaded, null_blk and device-mapper.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define KiB		1024UL
#define MiB		(1024UL * 1024)

/* A device opened but not owned by anyone. */
FIXTURE(unowned) {
	struct vblk_backend be;
	struct vblk_dev dev;
	int bdev;
};

FIXTURE_SETUP(unowned)
{
	int ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, NULL);

	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	self->bdev = vblk_backend_open(&self->be, O_RDWR);
	ret = self->bdev < 0 ? self->bdev : vblk_dev_open(&self->dev);
	if (ret) {
		if (self->bdev >= 0)
			close(self->bdev);
		vblk_backend_destroy(&self->be);
	}
	ASSERT_EQ(0, ret) TH_LOG("open: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(unowned)
{
	vblk_dev_close(&self->dev);
	close(self->bdev);
	vblk_backend_destroy(&self->be);
}

TEST_F(unowned, set_backend_before_set_owner_fails_eperm)
{
	EXPECT_EQ(-EPERM, vblk_dev_set_backend(&self->dev, self->bdev));
	EXPECT_EQ(-EPERM, vblk_dev_set_backend(&self->dev, -1));
}

TEST_F(unowned, set_serial_and_set_read_only_before_set_owner_fail_eperm)
{
	EXPECT_EQ(-EPERM, vblk_dev_set_serial(&self->dev, "serial"));
	EXPECT_EQ(-EPERM, vblk_dev_set_read_only(&self->dev, 1));
}

TEST_F(unowned, vring_setup_before_set_owner_fails_eperm)
{
	struct vhost_vring_state s = { .index = 0, .num = 256 };

	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_SET_VRING_NUM, &s));
	EXPECT_EQ(EPERM, errno);
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_SET_VRING_BASE, &s));
	EXPECT_EQ(EPERM, errno);
}

TEST_F(unowned, the_owner_can_attach_after_a_refused_attempt)
{
	ASSERT_EQ(-EPERM, vblk_dev_set_backend(&self->dev, self->bdev));
	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_SET_OWNER));
	EXPECT_EQ(0, vblk_dev_set_backend(&self->dev, self->bdev));
}

/*
 * An owned device with its memory table and queues set up, no backend, and
 * two null_blk devices to attach: a slow one (every request takes
 * SLOW_NS) and a fast one.
 */
#define SLOW_NS		500000000UL
#define SLOW_MS		(SLOW_NS / 1000000)
#define NREQ		8
#define REQ_LEN		(16 * KiB)

FIXTURE(owned) {
	struct vblk_backend slow, fast;
	struct vblk_dev dev;
	struct vblk_queue *q;
	struct vblk_buf bufs[NREQ];
	struct vblk_req reqs[NREQ];
};

static int create_owned(struct vblk_backend *slow, struct vblk_backend *fast,
		       struct vblk_dev *dev)
{
	struct vblk_backend_opts so = { .size = 16 * MiB,
					.completion_nsec = SLOW_NS };
	struct vblk_backend_opts fo = { .size = 16 * MiB };
	struct vblk_opts o = {
		.features = 1ULL << VIRTIO_RING_F_EVENT_IDX, .nqueues = 2,
	};
	int ret;

	ret = vblk_backend_create(slow, VBLK_BE_NULLB, &so);
	if (ret)
		return ret;
	ret = vblk_backend_create(fast, VBLK_BE_NULLB, &fo);
	if (ret)
		goto fail_slow;
	ret = vblk_dev_setup(dev, &o);
	if (!ret)
		return 0;
	vblk_backend_destroy(fast);
fail_slow:
	vblk_backend_destroy(slow);
	return ret;
}

FIXTURE_SETUP(owned)
{
	int ret = create_owned(&self->slow, &self->fast, &self->dev);
	unsigned int i;

	ASSERT_EQ(0, ret) TH_LOG("set up: %s", strerror(-ret));
	self->q = &self->dev.queues[0];
	for (i = 0; i < NREQ; i++)
		ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, REQ_LEN,
					    VBLK_PAGE_SIZE, &self->bufs[i]));
}

FIXTURE_TEARDOWN(owned)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->fast);
	vblk_backend_destroy(&self->slow);
}

/* Opens @be and attaches it; the device keeps its own reference. */
static int attach(struct vblk_dev *dev, const struct vblk_backend *be)
{
	int fd = vblk_backend_open(be, O_RDWR), ret;

	if (fd < 0)
		return fd;
	ret = vblk_dev_set_backend(dev, fd);
	close(fd);
	return ret;
}

static uint64_t req_sector(unsigned int i)
{
	return (uint64_t)i * REQ_LEN / VBLK_SECTOR_SIZE;
}

/*
 * The sectors of the first @n requests on @be hold request i's pattern
 * (@seed + i) when @written, zeroes when not.
 */
static void check_device(struct __test_metadata *_metadata,
			 const struct vblk_backend *be, unsigned int n,
			 bool written, uint64_t seed)
{
	uint8_t data[REQ_LEN], want[REQ_LEN];
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (written)
			vblk_pattern_fill(want, REQ_LEN, seed + i);
		else
			memset(want, 0, REQ_LEN);
		ASSERT_EQ(0, vblk_backend_pread(be, data, REQ_LEN,
						req_sector(i) * VBLK_SECTOR_SIZE));
		ASSERT_EQ(-1, vblk_mem_diff(want, data, REQ_LEN))
			TH_LOG("%s: request %u's sectors %s", be->path, i,
			       written ? "lack its data" : "were written");
	}
}

/* Publishes NREQ writes of the patterns @seed + i with one kick. */
static void submit_writes(struct __test_metadata *_metadata,
			  FIXTURE_DATA(owned) *self, uint64_t seed)
{
	unsigned int i;

	for (i = 0; i < NREQ; i++) {
		vblk_pattern_fill(self->bufs[i].hva, REQ_LEN, seed + i);
		vblk_req_init(&self->reqs[i], VIRTIO_BLK_T_OUT, req_sector(i),
			      &self->bufs[i], 1);
		ASSERT_EQ(0, vblk_queue_add(self->q, &self->reqs[i]));
	}
	ASSERT_LE(0, vblk_queue_kick(self->q));
}

/* Waits until the device took every published request off the avail ring. */
static void wait_taken(struct __test_metadata *_metadata, struct vblk_queue *q)
{
	struct timespec pause = { 0, 1000000 };
	uint16_t idx = 0;
	int i;

	for (i = 0; i < VBLK_TIMEOUT_MS; i++) {
		ASSERT_EQ(0, vblk_queue_device_avail(q, &idx));
		if (idx == q->avail_idx)
			return;
		nanosleep(&pause, NULL);
	}
	ASSERT_EQ(q->avail_idx, idx) TH_LOG("device did not take the requests");
}

/* Reaps NREQ requests and checks each completed OK. */
static void reap_all_ok(struct __test_metadata *_metadata,
			FIXTURE_DATA(owned) *self)
{
	struct vblk_req *done;
	unsigned int i;

	for (i = 0; i < NREQ; i++)
		ASSERT_EQ(0, vblk_reap(self->q, &done, VBLK_TIMEOUT_MS));
	for (i = 0; i < NREQ; i++) {
		EXPECT_TRUE(self->reqs[i].done);
		EXPECT_EQ(VIRTIO_BLK_S_OK, self->reqs[i].status);
		EXPECT_EQ(1U, self->reqs[i].used_len);
	}
}

TEST_F(owned, set_backend_from_a_process_that_is_not_the_owner_fails_eperm)
{
	struct vhost_vring_file f = { .index = 0, .fd = -1 };

	f.fd = vblk_backend_open(&self->fast, O_RDWR);
	ASSERT_LE(0, f.fd);
	EXPECT_EQ(EPERM, vblk_child_ioctl(self->dev.fd, VHOST_BLK_SET_BACKEND, &f));
	close(f.fd);
	/* Nor can it stop the owner's device. */
	ASSERT_EQ(0, attach(&self->dev, &self->fast));
	f.fd = -1;
	EXPECT_EQ(EPERM, vblk_child_ioctl(self->dev.fd, VHOST_BLK_SET_BACKEND, &f));
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_flush(self->q));
}

TEST_F(owned, set_serial_and_set_read_only_from_a_non_owner_fail_eperm)
{
	char serial[VIRTIO_BLK_ID_BYTES] = "intruder";
	struct vblk_buf id = vblk_buf_slice(&self->bufs[0], 0,
					    VIRTIO_BLK_ID_BYTES);
	uint32_t ro = 1;

	ASSERT_EQ(0, vblk_dev_set_serial(&self->dev, "owner"));
	EXPECT_EQ(EPERM, vblk_child_ioctl(self->dev.fd, VHOST_BLK_SET_SERIAL,
					  serial));
	EXPECT_EQ(EPERM, vblk_child_ioctl(self->dev.fd, VHOST_BLK_SET_READ_ONLY,
					  &ro));
	/* The owner's settings stand. */
	ASSERT_EQ(0, attach(&self->dev, &self->fast));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_get_id(self->q, &id));
	EXPECT_EQ(0, memcmp(id.hva, "owner\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
			    VIRTIO_BLK_ID_BYTES));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(self->q, 0, &self->bufs[1]));
}

TEST_F(owned, vring_setup_from_a_non_owner_fails_eperm)
{
	struct vhost_vring_state s = { .index = 1, .num = 64 };
	struct vhost_vring_file f = { .index = 1, .fd = -1 };

	EXPECT_EQ(EPERM, vblk_child_ioctl(self->dev.fd, VHOST_SET_VRING_NUM, &s));
	EXPECT_EQ(EPERM, vblk_child_ioctl(self->dev.fd, VHOST_SET_VRING_BASE, &s));
	EXPECT_EQ(EPERM, vblk_child_ioctl(self->dev.fd, VHOST_SET_VRING_CALL, &f));
}

TEST_F(owned, set_backend_with_a_regular_file_fails_enotblk)
{
	int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, MiB));
	EXPECT_EQ(-ENOTBLK, vblk_dev_set_backend(&self->dev, fd));
	close(fd);
}

TEST_F(owned, set_backend_with_a_pipe_a_char_device_or_a_directory_fails_enotblk)
{
	int p[2], fd;

	ASSERT_EQ(0, pipe(p));
	EXPECT_EQ(-ENOTBLK, vblk_dev_set_backend(&self->dev, p[0]));
	EXPECT_EQ(-ENOTBLK, vblk_dev_set_backend(&self->dev, p[1]));
	close(p[0]);
	close(p[1]);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-ENOTBLK, vblk_dev_set_backend(&self->dev, fd));
	close(fd);
	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-ENOTBLK, vblk_dev_set_backend(&self->dev, fd));
	close(fd);
	/* Not even the vhost-blk device itself. */
	EXPECT_EQ(-ENOTBLK, vblk_dev_set_backend(&self->dev, self->dev.fd));
}

TEST_F(owned, set_backend_with_a_closed_or_negative_fd_fails_ebadf)
{
	int fd = vblk_backend_open(&self->fast, O_RDWR);

	ASSERT_LE(0, fd);
	close(fd);
	EXPECT_EQ(-EBADF, vblk_dev_set_backend(&self->dev, fd));
	EXPECT_EQ(-EBADF, vblk_dev_set_backend(&self->dev, -2));
	EXPECT_EQ(-EBADF, vblk_dev_set_backend(&self->dev, INT_MIN));
	EXPECT_EQ(-EBADF, vblk_dev_set_backend(&self->dev, INT_MAX));
}

/*
 * The device reads the block device for the guest: a descriptor open for
 * writing only must not give the guest what its owner could not read. One
 * open for reading only makes a read-only device.
 */
TEST_F(owned, set_backend_with_a_write_only_fd_fails_ebadf_and_a_read_only_one_is_read_only)
{
	struct vhost_blk_config cfg;
	uint64_t features = 0;
	int fd = vblk_backend_open(&self->fast, O_WRONLY);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-EBADF, vblk_dev_set_backend(&self->dev, fd));
	close(fd);
	EXPECT_EQ(-ENODEV, vblk_dev_get_config(&self->dev, &cfg));

	fd = vblk_backend_open(&self->fast, O_RDONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, fd));
	close(fd);
	ASSERT_EQ(0, vblk_dev_get_features(&self->dev, &features));
	EXPECT_NE(0ULL, features & (1ULL << VIRTIO_BLK_F_RO));
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_write(self->q, 0, &self->bufs[0]));
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_read(self->q, 0, &self->bufs[0]));
}

TEST_F(owned, set_backend_minus_one_without_a_backend_is_a_no_op)
{
	struct vhost_blk_config cfg;

	EXPECT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	EXPECT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	EXPECT_EQ(-ENODEV, vblk_dev_get_config(&self->dev, &cfg));
	/* And the device can still be started. */
	ASSERT_EQ(0, attach(&self->dev, &self->fast));
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_flush(self->q));
}

TEST_F(owned, bad_argument_pointers_fail_efault)
{
	void *bad = (void *)8;

	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_BACKEND, bad));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_BACKEND, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_SERIAL, bad));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_READ_ONLY, bad));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_GET_ABI_VERSION, bad));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(owned, a_refused_backend_leaves_the_attached_one_serving)
{
	int p[2];

	ASSERT_EQ(0, attach(&self->dev, &self->fast));
	ASSERT_EQ(0, pipe(p));
	EXPECT_EQ(-ENOTBLK, vblk_dev_set_backend(&self->dev, p[0]));
	EXPECT_EQ(-EBADF, vblk_dev_set_backend(&self->dev, -2));
	close(p[0]);
	close(p[1]);

	vblk_pattern_fill(self->bufs[0].hva, REQ_LEN, 71);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(self->q, 0, &self->bufs[0]));
	check_device(_metadata, &self->fast, 1, true, 71);
}

TEST_F(owned, the_device_keeps_its_own_reference_on_the_backend)
{
	/* attach() closed our fd: the device must still serve. */
	ASSERT_EQ(0, attach(&self->dev, &self->fast));
	vblk_pattern_fill(self->bufs[0].hva, REQ_LEN, 81);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(self->q, 0, &self->bufs[0]));
	memset(self->bufs[0].hva, 0, REQ_LEN);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(self->q, 0, &self->bufs[0]));
	EXPECT_EQ(-1, vblk_pattern_check(self->bufs[0].hva, REQ_LEN, 81));
}

TEST_F(owned, requests_queued_while_stopped_are_served_after_the_next_start)
{
	struct vring_used_elem e;

	vblk_pattern_fill(self->bufs[0].hva, REQ_LEN, 91);
	vblk_req_init(&self->reqs[0], VIRTIO_BLK_T_OUT, 0, &self->bufs[0], 1);
	ASSERT_EQ(0, vblk_submit(self->q, &self->reqs[0]));
	/* No backend: the request waits in the avail ring. */
	EXPECT_EQ(-ETIMEDOUT, vblk_queue_wait_used(self->q, &e, 200));

	ASSERT_EQ(0, attach(&self->dev, &self->fast));
	ASSERT_EQ(0, vblk_wait(self->q, &self->reqs[0], VBLK_TIMEOUT_MS));
	EXPECT_EQ(VIRTIO_BLK_S_OK, self->reqs[0].status);
	check_device(_metadata, &self->fast, 1, true, 91);
}

/* NREQ writes in flight on the slow device: taken, none completed yet. */
static void start_slow_writes(struct __test_metadata *_metadata,
			      FIXTURE_DATA(owned) *self, uint64_t seed)
{
	ASSERT_EQ(0, attach(&self->dev, &self->slow));
	submit_writes(_metadata, self, seed);
	wait_taken(_metadata, self->q);
	/* Each takes SLOW_MS. */
	ASSERT_EQ(0U, vblk_queue_used_pending(self->q));
}

/* Right after a stop or swap returned: every write of start_slow_writes is
 * in the used ring, completed OK, its data on the slow device. */
static void check_slow_writes_reported(struct __test_metadata *_metadata,
				       FIXTURE_DATA(owned) *self, uint64_t seed)
{
	EXPECT_EQ((unsigned int)NREQ, vblk_queue_used_pending(self->q));
	reap_all_ok(_metadata, self);
	check_device(_metadata, &self->slow, NREQ, true, seed);
}

TEST_F(owned, stop_reports_every_request_in_flight_before_it_returns)
{
	start_slow_writes(_metadata, self, 100);
	ASSERT_EQ(0, vblk_dev_set_backend(&self->dev, -1));
	check_slow_writes_reported(_metadata, self, 100);
}

TEST_F(owned, swap_completes_requests_in_flight_on_the_old_device)
{
	start_slow_writes(_metadata, self, 200);
	ASSERT_EQ(0, attach(&self->dev, &self->fast));
	check_slow_writes_reported(_metadata, self, 200);
	check_device(_metadata, &self->fast, NREQ, false, 0);

	/* Later requests go to the new device. */
	submit_writes(_metadata, self, 300);
	reap_all_ok(_metadata, self);
	check_device(_metadata, &self->fast, NREQ, true, 300);
	check_device(_metadata, &self->slow, NREQ, true, 200);
}

TEST_F(owned, swap_under_load_on_two_queues_loses_no_request)
{
	struct vblk_queue *q1 = &self->dev.queues[1];
	struct vblk_req req1;
	struct vblk_buf buf1;

	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, REQ_LEN, VBLK_PAGE_SIZE,
				    &buf1));
	vblk_pattern_fill(buf1.hva, REQ_LEN, 400 + NREQ);
	vblk_req_init(&req1, VIRTIO_BLK_T_OUT, req_sector(NREQ), &buf1, 1);
	start_slow_writes(_metadata, self, 400);
	ASSERT_EQ(0, vblk_submit(q1, &req1));
	wait_taken(_metadata, q1);

	ASSERT_EQ(0, attach(&self->dev, &self->fast));
	EXPECT_EQ(1U, vblk_queue_used_pending(q1));
	check_slow_writes_reported(_metadata, self, 400);
	ASSERT_EQ(0, vblk_wait(q1, &req1, VBLK_TIMEOUT_MS));
	EXPECT_EQ(VIRTIO_BLK_S_OK, req1.status);
	check_device(_metadata, &self->slow, NREQ + 1, true, 400);
}

/*
 * A request keeps the owner's address of its status byte from start to
 * completion: a new memory table waits until none is in flight.
 */
TEST_F(owned, set_mem_table_reports_every_request_in_flight_before_it_returns)
{
	start_slow_writes(_metadata, self, 600);
	ASSERT_EQ(0, vblk_dev_set_mem_table(&self->dev));
	check_slow_writes_reported(_metadata, self, 600);
	/* And the device goes on serving. */
	submit_writes(_metadata, self, 650);
	reap_all_ok(_metadata, self);
	check_device(_metadata, &self->slow, NREQ, true, 650);
}

TEST_F(owned, close_with_requests_in_flight_completes_them_first)
{
	start_slow_writes(_metadata, self, 500);
	/*
	 * Release drains: once close returns, every write is in the used ring
	 * (the guest memory is still ours to look at) and on the device.
	 */
	close(self->dev.fd);
	self->dev.fd = -1;
	check_slow_writes_reported(_metadata, self, 500);
}

/* A started device whose block device fails every I/O. */
FIXTURE(failing) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_queue *q;
	struct vblk_buf buf;
};

FIXTURE_VARIANT(failing) {
	enum vblk_backend_kind kind;
};

FIXTURE_VARIANT_ADD(failing, dm_error) {
	.kind = VBLK_BE_DM_ERROR,
};

/* Down from the start and for a minute: every I/O fails. */
FIXTURE_VARIANT_ADD(failing, dm_flakey_down) {
	.kind = VBLK_BE_DM_FLAKEY,
};

FIXTURE_SETUP(failing)
{
	struct vblk_backend_opts bo = { .size = 8 * MiB, .flakey_down = 60 };
	int ret = vblk_backend_create(&self->be, variant->kind, &bo);

	ASSERT_EQ(0, ret) TH_LOG("create: %s", strerror(-ret));
	ret = vblk_dev_start(&self->dev, NULL, self->be.path, O_RDWR);
	if (ret)
		vblk_backend_destroy(&self->be);
	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
	self->q = &self->dev.queues[0];
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, REQ_LEN, VBLK_PAGE_SIZE,
				    &self->buf));
}

FIXTURE_TEARDOWN(failing)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

TEST_F(failing, backend_io_errors_complete_ioerr_and_the_queue_goes_on)
{
	struct vblk_buf id = vblk_buf_slice(&self->buf, 0, VIRTIO_BLK_ID_BYTES);
	struct vblk_req req;

	memset(self->buf.hva, 0x5a, REQ_LEN);
	vblk_req_init(&req, VIRTIO_BLK_T_IN, 0, &self->buf, 1);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_exec(self->q, &req));
	/* Only the status byte counts as written. */
	EXPECT_EQ(1U, req.used_len);
	vblk_req_init(&req, VIRTIO_BLK_T_OUT, 8, &self->buf, 1);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_exec(self->q, &req));
	EXPECT_EQ(1U, req.used_len);
	/* Requests the backend never sees still work. */
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_get_id(self->q, &id));
	ASSERT_EQ(VIRTIO_BLK_S_UNSUPP,
		  vblk_range(self->q, VIRTIO_BLK_T_SECURE_ERASE, 0, 8, 0));
}

TEST_F(failing, many_failing_requests_in_flight_all_complete)
{
	struct vblk_req reqs[16], *done;
	struct vblk_buf bufs[16];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(reqs); i++) {
		bufs[i] = vblk_buf_slice(&self->buf, i * 1024, 1024);
		vblk_req_init(&reqs[i], i % 2 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
			      i * 2, &bufs[i], 1);
		ASSERT_EQ(0, vblk_queue_add(self->q, &reqs[i]));
	}
	ASSERT_LE(0, vblk_queue_kick(self->q));
	for (i = 0; i < ARRAY_SIZE(reqs); i++)
		ASSERT_EQ(0, vblk_reap(self->q, &done, VBLK_TIMEOUT_MS));
	for (i = 0; i < ARRAY_SIZE(reqs); i++)
		EXPECT_EQ(VIRTIO_BLK_S_IOERR, reqs[i].status) TH_LOG("request %u", i);
	EXPECT_EQ(0U, self->q->inflight);
}

/* A loop device that grows and shrinks under a running device. */
FIXTURE(resized) {
	struct vblk_backend be;
	struct vblk_dev dev;
	struct vblk_buf buf;
};

FIXTURE_SETUP(resized)
{
	struct vblk_backend_opts bo = { .size = 4 * MiB };
	struct vblk_opts o = { .nqueues = 1 };
	int ret;

	ret = vblk_backend_create(&self->be, VBLK_BE_LOOP, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create loop device: %s", strerror(-ret));
	ret = vblk_dev_start(&self->dev, &o, self->be.path, O_RDWR);
	ASSERT_EQ(0, ret) TH_LOG("start device: %s", strerror(-ret));
	ASSERT_EQ(0, vblk_mem_alloc(&self->dev.mem, 8 * KiB, VBLK_PAGE_SIZE,
				    &self->buf));
}

FIXTURE_TEARDOWN(resized)
{
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
}

/* The config space's capacity, in sectors. */
static uint64_t capacity(struct vblk_dev *dev)
{
	struct vhost_blk_config cfg;

	if (vblk_dev_get_config(dev, &cfg))
		return 0;
	return le64toh(cfg.capacity);
}

TEST_F(resized, requests_and_config_follow_the_live_capacity)
{
	struct vblk_queue *q = &self->dev.queues[0];
	uint64_t old_end = 4 * MiB / VBLK_SECTOR_SIZE;
	uint64_t new_end = 8 * MiB / VBLK_SECTOR_SIZE;

	ASSERT_EQ(old_end, capacity(&self->dev));
	vblk_pattern_fill(self->buf.hva, self->buf.len, 61);
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_write(q, old_end, &self->buf));

	/* Grown: the new space takes data and gives it back. */
	ASSERT_EQ(0, vblk_backend_resize(&self->be, 8 * MiB));
	EXPECT_EQ(new_end, capacity(&self->dev));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(q, new_end - 16, &self->buf));
	memset(self->buf.hva, 0, self->buf.len);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(q, new_end - 16, &self->buf));
	EXPECT_EQ(-1, vblk_pattern_check(self->buf.hva, self->buf.len, 61));
	ASSERT_EQ(VIRTIO_BLK_S_IOERR, vblk_read(q, new_end - 8, &self->buf));

	/* Shrunk: what lies past the new end fails, what is below works. */
	ASSERT_EQ(0, vblk_backend_resize(&self->be, 2 * MiB));
	EXPECT_EQ(old_end / 2, capacity(&self->dev));
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_read(q, old_end / 2, &self->buf));
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_read(q, new_end - 16, &self->buf));
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_write(q, old_end / 2 - 8, &self->buf));
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_write(q, old_end / 2 - 16, &self->buf));
}

TEST_HARNESS_MAIN
