// SPDX-License-Identifier: GPL-2.0
/*
 * Every allocation of a device's setup failed in turn, in the manner of the
 * kernel's iommufd_fail_nth: writing N to /proc/thread-self/fail-nth makes
 * the Nth fault-injection point this thread passes fail, here the Nth slab
 * allocation (failslab, with ignore-gfp-wait off so that sleeping
 * allocations count). For N = 1, 2, ... the test sets a device up (open,
 * owner, features, memory table, every queue, backend) with the Nth
 * allocation failing: the setup either fails with an errno, having unwound,
 * or succeeds because some path absorbed the failure, and then the device
 * must write and read back a sector. Either way, once the device is closed
 * the module and the backend hold nothing more (their module reference
 * counts are back). It ends at the first N that fails nothing: every
 * allocation of the sequence has then been failed once. What the failures
 * leave behind in the kernel (a leak, a use after free, a bad lock) is for
 * kmemleak, KASAN and lockdep, which `make check-debug` checks afterwards.
 *
 * The data path runs in the vhost worker, not in this thread: random_test's
 * VBLK_FAULTS covers it.
 *
 * Needs a kernel with fault injection and failslab (`make check-debug`),
 * root, the vhost_blk module loaded and null_blk. Not one of `make check`'s
 * suites: Debian's kernel has no fault injection.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vblk.h"

#define MiB		(1024UL * 1024)
#define MAX_N		20000	/* more allocations than that: something loops */
#define RELEASE_MS	5000
#define FAILSLAB_GFP_WAIT "/sys/kernel/debug/failslab/ignore-gfp-wait"

#define F_EVENT_IDX	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_INDIRECT	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)

/* A number from a file such as /sys/module/<name>/refcnt; -1 if none. */
static long read_number(const char *path)
{
	char buf[32] = "";
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

FIXTURE(fail_nth) {
	struct vblk_backend be;
	struct vblk_dev dev;
	int nth_fd;		/* /proc/thread-self/fail-nth, kept open */
	long vhost_blk_refs, null_blk_refs;
};

FIXTURE_SETUP(fail_nth)
{
	struct vblk_backend_opts bo = { .size = 8 * MiB };
	int ret;

	self->nth_fd = -1;
	self->dev.fd = -1;
	/*
	 * Opened once: an open while armed would itself allocate, and a read
	 * or write of the open file does not.
	 */
	self->nth_fd = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->nth_fd) TH_LOG("/proc/thread-self/fail-nth: %m (a kernel with CONFIG_FAULT_INJECTION?)");
	ret = vblk_write_file(FAILSLAB_GFP_WAIT, "N");
	ASSERT_EQ(0, ret) TH_LOG(FAILSLAB_GFP_WAIT ": %s (a kernel with CONFIG_FAILSLAB, debugfs?)",
				 strerror(-ret));
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, &bo);
	ASSERT_EQ(0, ret) TH_LOG("create null_blk: %s", strerror(-ret));
	self->vhost_blk_refs = read_number("/sys/module/vhost_blk/refcnt");
	self->null_blk_refs = read_number("/sys/module/null_blk/refcnt");
	ASSERT_LE(0, self->vhost_blk_refs);
	ASSERT_LE(0, self->null_blk_refs);
}

FIXTURE_TEARDOWN(fail_nth)
{
	if (self->nth_fd >= 0) {
		pwrite(self->nth_fd, "0", 1, 0);
		close(self->nth_fd);
	}
	vblk_dev_close(&self->dev);
	vblk_backend_destroy(&self->be);
	vblk_write_file(FAILSLAB_GFP_WAIT, "Y");
}

/* Fails the @n-th allocation from now on (0: none). */
static int arm(FIXTURE_DATA(fail_nth) *self, unsigned int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", n);

	return pwrite(self->nth_fd, buf, len, 0) == len ? 0 : -errno;
}

/* Disarms; returns how many allocations were still to go (0: it failed one). */
static long disarm(FIXTURE_DATA(fail_nth) *self)
{
	char buf[16] = "";
	ssize_t len;

	len = pread(self->nth_fd, buf, sizeof(buf) - 1, 0);
	if (arm(self, 0) || len <= 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/* Waits until both modules are back at the counts before the test. */
static bool refs_back(FIXTURE_DATA(fail_nth) *self)
{
	int waited;

	for (waited = 0; waited < RELEASE_MS; waited += 10) {
		if (read_number("/sys/module/vhost_blk/refcnt") == self->vhost_blk_refs &&
		    read_number("/sys/module/null_blk/refcnt") == self->null_blk_refs)
			return true;
		sleep_ms(10);
	}
	return false;
}

/* A write of a sector and its read back, on queue @q. */
static int write_read(struct vblk_dev *dev, unsigned int q, uint64_t seed)
{
	struct vblk_buf buf;
	int ret;

	ret = vblk_mem_alloc(&dev->mem, VBLK_SECTOR_SIZE, VBLK_PAGE_SIZE, &buf);
	if (ret)
		return ret;
	vblk_pattern_fill(buf.hva, buf.len, seed);
	ret = vblk_write(&dev->queues[q], seed % 64, &buf);
	if (ret)
		return ret > 0 ? -EIO : ret;
	memset(buf.hva, 0, buf.len);
	ret = vblk_read(&dev->queues[q], seed % 64, &buf);
	if (ret)
		return ret > 0 ? -EIO : ret;
	return vblk_pattern_check(buf.hva, buf.len, seed) < 0 ? 0 : -EILSEQ;
}

TEST_F_TIMEOUT(fail_nth, setup_unwinds_after_each_failed_allocation, 900)
{
	const struct vblk_opts opts = {
		.features = F_EVENT_IDX | F_INDIRECT,
		.nqueues = 2,
		.queue_size = 64,
		.mem_size = 4 * MiB,
	};
	unsigned int n, failed = 0, absorbed = 0, enomem = 0;
	long left;
	int ret;

	for (n = 1; n <= MAX_N; n++) {
		ASSERT_EQ(0, arm(self, n));
		ret = vblk_dev_start(&self->dev, &opts, self->be.path, O_RDWR);
		left = disarm(self);
		ASSERT_LE(0, left) TH_LOG("reading fail-nth back");
		if (!ret) {
			absorbed += !left;
			ret = write_read(&self->dev, n % opts.nqueues, n);
			EXPECT_EQ(0, ret) TH_LOG("allocation %u failed, the setup succeeded, but I/O: %s",
						 n, strerror(-ret));
		} else {
			failed++;
			enomem += ret == -ENOMEM;
			/* Only an injected failure may make the setup fail. */
			EXPECT_EQ(0, left) TH_LOG("the setup failed (%s) with nothing injected",
						  strerror(-ret));
		}
		vblk_dev_close(&self->dev);
		ASSERT_TRUE(refs_back(self))
			TH_LOG("allocation %u failed: after the close vhost_blk has %ld references (was %ld), null_blk %ld (was %ld)",
			       n, read_number("/sys/module/vhost_blk/refcnt"),
			       self->vhost_blk_refs,
			       read_number("/sys/module/null_blk/refcnt"),
			       self->null_blk_refs);
		if (left > 0)
			break;	/* past the last allocation of the sequence */
	}
	ASSERT_GE(MAX_N, n) TH_LOG("more than %u allocations", MAX_N);
	ASSERT_LT(1U, n) TH_LOG("no allocation failed at all: is failslab working?");
	TH_LOG("%u allocations failed in turn: the setup failed %u times (%u with ENOMEM), absorbed %u",
	       n - 1, failed, enomem, absorbed);
}

TEST_HARNESS_MAIN
