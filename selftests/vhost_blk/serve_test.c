// SPDX-License-Identifier: GPL-2.0
/*
 * `vhostblk-setup serve`, the vhost-user-blk back-end, driven by a front-end
 * that negotiates as QEMU 7.2's vhost-user-blk does (vu.h) and then drives
 * the rings itself (vblk.h): config, data through every queue, read-only
 * and serial, stopping (GET_VRING_BASE), reconnecting, restarting the
 * helper under a running guest, SIGTERM, the helper staying idle while the
 * kernel serves the I/O, and bad input of every kind.
 *
 * Needs root, the vhost_blk module loaded, null_blk and brd, and
 * VHOSTBLK_SETUP, the helper binary under test.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vblk.h"
#include "vu.h"

#define KiB		1024UL
#define BIT(n)		(1ULL << (n))
#define LOG_SIZE	16384
#define WAIT_MS		3000

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Open descriptors of process @pid. */
static int fd_count(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Waits for the server's log to contain @needle. */
static bool log_has(struct vu_server *srv, const char *needle)
{
	static char buf[LOG_SIZE];
	int waited;

	for (waited = 0; waited < WAIT_MS; waited += 10) {
		if (strstr(vu_server_log(srv, buf, sizeof(buf)), needle))
			return true;
		sleep_ms(10);
	}
	return false;
}

/* Waits for the server to have @n descriptors open again. */
static int fd_count_settles(pid_t pid, int n)
{
	int waited, now = fd_count(pid);

	for (waited = 0; now != n && waited < WAIT_MS; waited += 10) {
		sleep_ms(10);
		now = fd_count(pid);
	}
	return now;
}

/* The kernel's own config and features for @be, from a device of ours. */
static int kernel_view(const struct vblk_backend *be,
		       struct vhost_blk_config *cfg, uint64_t *features)
{
	struct vblk_dev dev;
	int fd, ret;

	ret = vblk_dev_open(&dev);
	if (ret)
		return ret;
	ret = ioctl(dev.fd, VHOST_SET_OWNER) ? -errno : 0;
	fd = ret ? -1 : vblk_backend_open(be, O_RDWR);
	if (!ret && fd < 0)
		ret = fd;
	if (!ret)
		ret = vblk_dev_set_backend(&dev, fd);
	if (fd >= 0)
		close(fd);
	if (!ret)
		ret = vblk_dev_get_config(&dev, cfg);
	if (!ret)
		ret = vblk_dev_get_features(&dev, features);
	vblk_dev_close(&dev);
	return ret;
}

/* ------------------------------------------------------------------------
 * A served disk
 */

FIXTURE(serve) {
	struct vblk_backend be;
	struct vu_server srv;
	struct vu_frontend fe;
	struct vu_opts opts;
	int idle_fds;		/* the helper's descriptors between connections */
};

FIXTURE_VARIANT(serve) {
	enum vblk_backend_kind kind;
	unsigned int nqueues;
	unsigned long completion_nsec;	/* null_blk: slow requests */
	bool mem_table;		/* SET_MEM_TABLE instead of ADD_MEM_REG */
	bool event_idx;
};

FIXTURE_VARIANT_ADD(serve, one_queue_null_blk_mem_slots) {
	.kind = VBLK_BE_NULLB, .nqueues = 1, .completion_nsec = 200000,
};

FIXTURE_VARIANT_ADD(serve, two_queues_brd_mem_table_event_idx) {
	.kind = VBLK_BE_BRD, .nqueues = 2, .mem_table = true,
	.event_idx = true,
};

FIXTURE_SETUP(serve)
{
	struct vblk_backend_opts bo = {
		.completion_nsec = variant->completion_nsec,
	};
	char nq[8];
	const char *args[] = { "--num-queues", nq, NULL };
	int ret;

	self->fe.sock = -1;
	self->fe.channel = -1;
	snprintf(nq, sizeof(nq), "%u", variant->nqueues);
	ret = vblk_backend_create(&self->be, variant->kind, &bo);
	ASSERT_EQ(0, ret) TH_LOG("backend: %s", strerror(-ret));
	ret = vu_server_start(&self->srv, self->be.path, args);
	if (ret)
		vblk_backend_destroy(&self->be);
	ASSERT_EQ(0, ret) TH_LOG("starting %s serve: %s",
				 getenv("VHOSTBLK_SETUP"), strerror(-ret));
	self->opts.vblk.nqueues = variant->nqueues;
	self->opts.vblk.features = variant->event_idx ?
				   BIT(VIRTIO_RING_F_EVENT_IDX) : 0;
	self->opts.mem_table = variant->mem_table;
	self->idle_fds = fd_count(self->srv.pid);
}

/*
 * Whether the running test has failed so far: the harness keeps it in
 * exit_code since Linux 6.9 (which also brought FIXTURE_TEARDOWN_PARENT),
 * in passed before; the selftests build with either.
 */
#ifdef FIXTURE_TEARDOWN_PARENT
#define VBLK_TEST_FAILED(m)	(!__test_passed(m))
#else
#define VBLK_TEST_FAILED(m)	(!(m)->passed)
#endif

FIXTURE_TEARDOWN(serve)
{
	char cg[128];

	vu_frontend_close(&self->fe);
	vu_server_stop(&self->srv, SIGTERM, WAIT_MS, NULL);
	if (VBLK_TEST_FAILED(_metadata)) {
		static char log[LOG_SIZE];

		TH_LOG("helper log:\n%s", vu_server_log(&self->srv, log, sizeof(log)));
	}
	/* The io.max test's cgroup, if it ended early. */
	snprintf(cg, sizeof(cg), "/sys/fs/cgroup/vhostblk-test-%d", (int)getpid());
	rmdir(cg);
	EXPECT_EQ(0, vblk_backend_destroy(&self->be));
}

static void open_frontend(struct __test_metadata *_metadata,
			  FIXTURE_DATA(serve) *self)
{
	int ret = vu_frontend_open(&self->fe, self->srv.sock, &self->opts);

	ASSERT_EQ(0, ret) TH_LOG("front-end: %s", strerror(-ret));
}

/* Writes a pattern through queue @qw, reads it back through @qr. */
static void round_trip(struct __test_metadata *_metadata,
		       struct vu_frontend *fe, const struct vblk_backend *be,
		       unsigned int qw, unsigned int qr, uint64_t sector,
		       uint64_t seed)
{
	struct vblk_mem_mark mark = vblk_mem_mark(&fe->dev.mem);
	struct vblk_buf out, in;
	void *disk;

	ASSERT_EQ(0, vblk_mem_alloc(&fe->dev.mem, 64 * KiB, VBLK_PAGE_SIZE, &out));
	ASSERT_EQ(0, vblk_mem_alloc(&fe->dev.mem, 64 * KiB, VBLK_PAGE_SIZE, &in));
	vblk_pattern_fill(out.hva, out.len, seed);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(&fe->dev.queues[qw], sector, &out));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&fe->dev.queues[qr], sector, &in));
	EXPECT_EQ(-1, vblk_pattern_check(in.hva, in.len, seed))
		TH_LOG("queue %u -> %u, sector %llu", qw, qr,
		       (unsigned long long)sector);
	/* And it is on the disk itself. */
	disk = malloc(64 * KiB);
	ASSERT_NE(NULL, disk);
	ASSERT_EQ(0, vblk_backend_pread(be, disk, 64 * KiB,
					sector * VBLK_SECTOR_SIZE));
	EXPECT_EQ(-1, vblk_pattern_check(disk, 64 * KiB, seed));
	free(disk);
	vblk_mem_release(&fe->dev.mem, mark);
}

/* A new front-end still gets served, and the helper leaked nothing. */
static void still_serves(struct __test_metadata *_metadata,
			 FIXTURE_DATA(serve) *self)
{
	vu_frontend_close(&self->fe);
	EXPECT_EQ(self->idle_fds, fd_count_settles(self->srv.pid, self->idle_fds));
	open_frontend(_metadata, self);
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 2048, 99);
	vu_frontend_close(&self->fe);
	EXPECT_EQ(self->idle_fds, fd_count_settles(self->srv.pid, self->idle_fds));
}

TEST_F(serve, config_matches_the_kernels_with_num_queues)
{
	struct vhost_blk_config kcfg, *cfg = &self->fe.config;
	size_t qemu_len = offsetof(struct vhost_blk_config,
				   max_secure_erase_sectors);
	uint64_t kfeatures;
	int ret;

	ret = kernel_view(&self->be, &kcfg, &kfeatures);
	ASSERT_EQ(0, ret) TH_LOG("kernel view: %s", strerror(-ret));
	open_frontend(_metadata, self);

	EXPECT_EQ(self->be.size / VBLK_SECTOR_SIZE, le64toh(cfg->capacity));
	EXPECT_EQ(le32toh(kcfg.blk_size), le32toh(cfg->blk_size));
	EXPECT_EQ(variant->nqueues, le16toh(cfg->num_queues));
	EXPECT_EQ(variant->nqueues, self->fe.queue_num);
	/* Every other byte is the kernel's. */
	kcfg.num_queues = cfg->num_queues;
	EXPECT_EQ(-1, vblk_mem_diff(&kcfg, cfg, qemu_len));
	EXPECT_EQ(kfeatures | BIT(VHOST_USER_F_PROTOCOL_FEATURES),
		  self->fe.device_features);
	EXPECT_EQ(BIT(VHOST_USER_PROTOCOL_F_MQ) |
		  BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD) |
		  BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
		  BIT(VHOST_USER_PROTOCOL_F_CONFIG) |
		  BIT(VHOST_USER_PROTOCOL_F_RESET_DEVICE) |
		  (variant->mem_table ? 0 :
		   BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)),
		  self->fe.protocol_features);
}

TEST_F(serve, config_at_an_offset_and_beyond_the_end)
{
	struct vu_config_msg c = { .offset = 8, .size = 8 };
	struct vhost_blk_config kcfg;
	uint64_t kfeatures;
	int ret;

	ASSERT_EQ(0, kernel_view(&self->be, &kcfg, &kfeatures));
	open_frontend(_metadata, self);
	/* size_max and seg_max. */
	ASSERT_EQ(0, vu_send(self->fe.sock, VHOST_USER_GET_CONFIG, 0, &c, 12 + 8,
			     NULL, 0));
	ret = vu_recv_reply(self->fe.sock, VHOST_USER_GET_CONFIG, &c, sizeof(c),
			    WAIT_MS);
	ASSERT_EQ(12 + 8, ret);
	EXPECT_EQ(0, memcmp(c.data, (uint8_t *)&kcfg + 8, 8));
	/* Past the end: an empty reply is the error. */
	c = (struct vu_config_msg){ .offset = 70, .size = 8 };
	ASSERT_EQ(0, vu_send(self->fe.sock, VHOST_USER_GET_CONFIG, 0, &c, 12 + 8,
			     NULL, 0));
	EXPECT_EQ(0, vu_recv_reply(self->fe.sock, VHOST_USER_GET_CONFIG, &c,
				   sizeof(c), WAIT_MS));
	EXPECT_TRUE(log_has(&self->srv, "GET_CONFIG: offset 70 size 8 beyond"));
	/* The config is not writable. */
	EXPECT_EQ(-EREMOTEIO, vu_send_ack(self->fe.sock, VHOST_USER_SET_CONFIG,
					  &c, 12 + 8, NULL, 0));
	/* And the connection goes on. */
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 0, 5);
}

TEST_F(serve, config_is_the_abi_size_whatever_the_headers)
{
	struct vu_config_msg c = { .offset = 0, .size = VHOST_BLK_CONFIG_SIZE };
	union {
		struct vhost_blk_config cfg;
		uint8_t raw[VHOST_BLK_CONFIG_SIZE];
	} k;
	uint64_t kfeatures;

	ASSERT_EQ(0, kernel_view(&self->be, &k.cfg, &kfeatures));
	open_frontend(_metadata, self);
	/* All of the kernel's 72 bytes, num_queues the helper's. */
	ASSERT_EQ(0, vu_send(self->fe.sock, VHOST_USER_GET_CONFIG, 0, &c,
			     12 + c.size, NULL, 0));
	ASSERT_EQ(12 + VHOST_BLK_CONFIG_SIZE,
		  vu_recv_reply(self->fe.sock, VHOST_USER_GET_CONFIG, &c,
				sizeof(c), WAIT_MS));
	k.cfg.num_queues = htole16(variant->nqueues);
	EXPECT_EQ(-1, vblk_mem_diff(k.raw, c.data, VHOST_BLK_CONFIG_SIZE));
	/* Not one byte more, even where the system headers' struct goes on. */
	c = (struct vu_config_msg){ .offset = VHOST_BLK_CONFIG_SIZE, .size = 1 };
	ASSERT_EQ(0, vu_send(self->fe.sock, VHOST_USER_GET_CONFIG, 0, &c, 12 + 1,
			     NULL, 0));
	EXPECT_EQ(0, vu_recv_reply(self->fe.sock, VHOST_USER_GET_CONFIG, &c,
				   sizeof(c), WAIT_MS));
	EXPECT_TRUE(log_has(&self->srv, "GET_CONFIG: offset 72 size 1 beyond the 72-byte config"));
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 0, 6);
}

TEST_F(serve, writes_read_back_through_every_queue)
{
	unsigned int q, n = variant->nqueues;

	open_frontend(_metadata, self);
	for (q = 0; q < n; q++) {
		round_trip(_metadata, &self->fe, &self->be, q, (q + 1) % n,
			   q * 1024, q + 1);
		round_trip(_metadata, &self->fe, &self->be, q, q,
			   self->be.size / VBLK_SECTOR_SIZE - 128, q + 10);
	}
	/* Flush and GET_ID answer too. */
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_flush(&self->fe.dev.queues[n - 1]));
}

/* Submits @n 4 KiB writes of pattern @seed on queue @q at @sector on. */
static void submit_writes(struct __test_metadata *_metadata,
			  struct vu_frontend *fe, unsigned int q,
			  struct vblk_req *reqs, struct vblk_buf *bufs,
			  unsigned int n, uint64_t sector, uint64_t seed)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		ASSERT_EQ(0, vblk_mem_alloc(&fe->dev.mem, 4 * KiB, VBLK_PAGE_SIZE,
					    &bufs[i]));
		vblk_pattern_fill(bufs[i].hva, bufs[i].len, seed + i);
		vblk_req_init(&reqs[i], VIRTIO_BLK_T_OUT, sector + i * 8,
			      &bufs[i], 1);
		ASSERT_EQ(0, vblk_queue_add(&fe->dev.queues[q], &reqs[i]));
	}
	ASSERT_LE(0, vblk_queue_kick(&fe->dev.queues[q]));
}

/* Checks that the 4 KiB blocks from @sector hold the patterns from @seed. */
static void check_disk(struct __test_metadata *_metadata,
		       const struct vblk_backend *be, unsigned int n,
		       uint64_t sector, uint64_t seed)
{
	uint8_t *disk = malloc(n * 4 * KiB);
	unsigned int i;

	ASSERT_NE(NULL, disk);
	ASSERT_EQ(0, vblk_backend_pread(be, disk, n * 4 * KiB,
					sector * VBLK_SECTOR_SIZE));
	for (i = 0; i < n; i++)
		EXPECT_EQ(-1, vblk_pattern_check(disk + i * 4 * KiB, 4 * KiB,
						 seed + i)) TH_LOG("block %u", i);
	free(disk);
}

/* Reaps what the device completed, checking each is OK. */
static unsigned int reap_completed(struct __test_metadata *_metadata,
				   struct vblk_queue *q)
{
	unsigned int n = 0;
	struct vblk_req *done;

	while (vblk_queue_used_pending(q)) {
		EXPECT_EQ(0, vblk_reap(q, &done, WAIT_MS));
		EXPECT_EQ(VIRTIO_BLK_S_OK, done->status);
		n++;
	}
	return n;
}

TEST_F(serve, get_vring_base_drains_requests_in_flight)
{
	enum { N = 48 };
	struct vblk_req reqs[VHOST_BLK_MAX_QUEUES][N];
	struct vblk_buf bufs[VHOST_BLK_MAX_QUEUES][N];
	uint16_t bases[VHOST_BLK_MAX_QUEUES];
	unsigned int q, i, done[VHOST_BLK_MAX_QUEUES];

	open_frontend(_metadata, self);
	for (q = 0; q < variant->nqueues; q++)
		submit_writes(_metadata, &self->fe, q, reqs[q], bufs[q], N,
			      q * 4096, 100 * q);
	/* At once, while the requests are in flight. */
	ASSERT_EQ(0, vu_frontend_stop(&self->fe, bases));
	for (q = 0; q < variant->nqueues; q++) {
		struct vblk_queue *vq = &self->fe.dev.queues[q];

		/* Every request the device took is in the used ring. */
		EXPECT_LE(bases[q], N);
		EXPECT_EQ(bases[q], vblk_queue_used_pending(vq));
		done[q] = reap_completed(_metadata, vq);
	}
	/* Started again at the base, the device takes the others. */
	ASSERT_EQ(0, vu_frontend_start(&self->fe));
	for (q = 0; q < variant->nqueues; q++) {
		for (i = 0; i < N; i++) {
			ASSERT_EQ(0, vblk_wait(&self->fe.dev.queues[q], &reqs[q][i],
					       WAIT_MS));
			EXPECT_EQ(VIRTIO_BLK_S_OK, reqs[q][i].status);
		}
		check_disk(_metadata, &self->be, N, q * 4096, 100 * q);
		TH_LOG("queue %u: %u of %d done at GET_VRING_BASE", q, done[q], N);
	}
}

TEST_F(serve, start_again_after_get_vring_base_continues_at_the_base)
{
	uint16_t bases[VHOST_BLK_MAX_QUEUES];

	open_frontend(_metadata, self);
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 0, 1);
	ASSERT_EQ(0, vu_frontend_stop(&self->fe, bases));
	EXPECT_EQ(2, bases[0]);
	/* As QEMU after a guest reset without driver reload: same session. */
	ASSERT_EQ(0, vu_frontend_start(&self->fe));
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 8, 2);
}

TEST_F(serve, reconnect_keeps_the_data)
{
	open_frontend(_metadata, self);
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 512, 21);
	vu_frontend_close(&self->fe);
	EXPECT_TRUE(log_has(&self->srv, "front-end disconnected"));

	open_frontend(_metadata, self);
	{
		struct vblk_buf in;

		ASSERT_EQ(0, vblk_mem_alloc(&self->fe.dev.mem, 64 * KiB,
					    VBLK_PAGE_SIZE, &in));
		ASSERT_EQ(VIRTIO_BLK_S_OK,
			  vblk_read(&self->fe.dev.queues[0], 512, &in));
		EXPECT_EQ(-1, vblk_pattern_check(in.hva, in.len, 21));
	}
	still_serves(_metadata, self);
}

TEST_F(serve, helper_restart_resumes_the_rings_where_the_guest_left_them)
{
	enum { N = 32 };
	struct vblk_req reqs[N];
	struct vblk_buf bufs[N];
	char nq[8];
	const char *args[] = { "--num-queues", nq, NULL };
	int status, i, ret;

	snprintf(nq, sizeof(nq), "%u", variant->nqueues);
	open_frontend(_metadata, self);
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 0, 3);
	submit_writes(_metadata, &self->fe, 0, reqs, bufs, N, 8192, 300);
	/* The helper goes away under the running guest... */
	ASSERT_LE(0, vu_server_stop(&self->srv, SIGTERM, WAIT_MS, &status));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* ... and comes back; the front-end reconnects with the same rings. */
	ret = vu_server_start(&self->srv, self->be.path, args);
	ASSERT_EQ(0, ret) TH_LOG("restart: %s", strerror(-ret));
	self->idle_fds = fd_count(self->srv.pid);
	ret = vu_frontend_reconnect(&self->fe, self->srv.sock);
	ASSERT_EQ(0, ret) TH_LOG("reconnect: %s", strerror(-ret));
	/* Nothing was lost: every write completed, none with an error. */
	for (i = 0; i < N; i++) {
		ASSERT_EQ(0, vblk_wait(&self->fe.dev.queues[0], &reqs[i], WAIT_MS));
		EXPECT_EQ(VIRTIO_BLK_S_OK, reqs[i].status);
	}
	check_disk(_metadata, &self->be, N, 8192, 300);
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 16, 4);
}

TEST_F(serve, sigterm_exits_quickly_with_status_0)
{
	enum { N = 32 };
	struct vblk_req reqs[N], *done;
	struct vblk_buf bufs[N];
	struct vblk_queue *q;
	uint8_t *disk = malloc(4 * KiB);
	struct stat st;
	int status, ms;

	ASSERT_NE(NULL, disk);
	open_frontend(_metadata, self);
	q = &self->fe.dev.queues[0];
	submit_writes(_metadata, &self->fe, 0, reqs, bufs, N, 0, 7);
	ms = vu_server_stop(&self->srv, SIGTERM, 10000, &status);
	ASSERT_LE(0, ms);
	EXPECT_LT(ms, 2000);
	EXPECT_TRUE(WIFEXITED(status)) TH_LOG("status 0x%x", status);
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_TRUE(log_has(&self->srv, "exiting"));
	EXPECT_NE(0, stat(self->srv.sock, &st));
	/* What the device took before it stopped is complete, and on disk. */
	while (vblk_queue_used_pending(q)) {
		unsigned int i;

		ASSERT_EQ(0, vblk_reap(q, &done, WAIT_MS));
		EXPECT_EQ(VIRTIO_BLK_S_OK, done->status);
		i = done - reqs;
		ASSERT_EQ(0, vblk_backend_pread(&self->be, disk, 4 * KiB,
						i * 8 * VBLK_SECTOR_SIZE));
		EXPECT_EQ(-1, vblk_pattern_check(disk, 4 * KiB, 7 + i));
	}
	free(disk);
}

TEST_F_TIMEOUT(serve, helper_cpu_time_stays_flat_while_the_kernel_serves, 120)
{
	enum { DEPTH = 16, TOTAL = 4000 };
	struct vblk_queue *q;
	struct vblk_req reqs[DEPTH], *done;
	struct vblk_buf bufs[DEPTH];
	uint64_t before, after;
	unsigned int i, submitted = 0, completed = 0;

	open_frontend(_metadata, self);
	q = &self->fe.dev.queues[variant->nqueues - 1];
	ASSERT_EQ(0, vu_server_cpu_ticks(&self->srv, &before));
	for (i = 0; i < DEPTH; i++) {
		ASSERT_EQ(0, vblk_mem_alloc(&self->fe.dev.mem, 4 * KiB,
					    VBLK_PAGE_SIZE, &bufs[i]));
		vblk_req_init(&reqs[i], VIRTIO_BLK_T_IN, i * 8, &bufs[i], 1);
		ASSERT_EQ(0, vblk_submit(q, &reqs[i]));
		submitted++;
	}
	while (completed < TOTAL) {
		ASSERT_EQ(0, vblk_reap(q, &done, WAIT_MS));
		ASSERT_EQ(VIRTIO_BLK_S_OK, done->status);
		completed++;
		if (submitted < TOTAL) {
			done->sector = (submitted % 1024) * 8;
			ASSERT_EQ(0, vblk_submit(q, done));
			submitted++;
		}
	}
	ASSERT_EQ(0, vu_server_cpu_ticks(&self->srv, &after));
	/* A tick is 10 ms; the requests never went through the helper. */
	EXPECT_LE(after - before, 2) TH_LOG("%llu ticks for %d requests",
					    (unsigned long long)(after - before),
					    TOTAL);
}

TEST_F(serve, dirty_log_marks_what_the_device_wrote)
{
	struct vblk_buf in, out;
	uint64_t pages, features;
	struct vu_msg_hdr h;
	unsigned int q;
	int log_fd, call, ret;
	char dummy[8];
	struct {
		uint64_t mmap_size, mmap_offset;
	} __attribute__((packed)) lb;

	open_frontend(_metadata, self);
	pages = (vblk_mem_gpa_end(&self->fe.dev.mem) + VBLK_PAGE_SIZE - 1) /
		VBLK_PAGE_SIZE;
	lb.mmap_size = ((pages + 7) / 8 + VBLK_PAGE_SIZE - 1) &
		       ~(VBLK_PAGE_SIZE - 1);
	lb.mmap_offset = 0;
	log_fd = memfd_create("vu-log", MFD_CLOEXEC);
	ASSERT_LE(0, log_fd);
	ASSERT_EQ(0, ftruncate(log_fd, lb.mmap_size));
	self->fe.dev.log = mmap(NULL, lb.mmap_size, PROT_READ | PROT_WRITE,
				MAP_SHARED, log_fd, 0);
	ASSERT_NE(MAP_FAILED, self->fe.dev.log);
	self->fe.dev.log_size = lb.mmap_size;

	/* As QEMU starts migration: log base (an empty reply), log fd,
	 * LOG_ALL, and the rings' used-ring logging. */
	ASSERT_EQ(0, vu_send(self->fe.sock, VHOST_USER_SET_LOG_BASE, 0, &lb,
			     sizeof(lb), &log_fd, 1));
	ret = vu_recv(self->fe.sock, &h, dummy, sizeof(dummy), WAIT_MS);
	ASSERT_EQ(0, ret);
	EXPECT_EQ(VHOST_USER_SET_LOG_BASE, h.request);
	EXPECT_EQ(VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, h.flags);
	close(log_fd);
	call = eventfd(0, EFD_CLOEXEC);
	ASSERT_EQ(0, vu_send_ack(self->fe.sock, VHOST_USER_SET_LOG_FD, NULL, 0,
				 &call, 1));
	close(call);
	features = self->fe.dev.features | BIT(VHOST_F_LOG_ALL) |
		   BIT(VHOST_USER_F_PROTOCOL_FEATURES);
	ASSERT_EQ(0, vu_send_ack(self->fe.sock, VHOST_USER_SET_FEATURES,
				 &features, 8, NULL, 0));
	for (q = 0; q < variant->nqueues; q++) {
		struct vblk_queue *vq = &self->fe.dev.queues[q];
		struct vu_addr_msg a = {
			.index = q, .flags = 1U << VHOST_VRING_F_LOG,
			.desc = (uintptr_t)vq->vr.desc,
			.used = (uintptr_t)vq->vr.used,
			.avail = (uintptr_t)vq->vr.avail,
			.log = vq->used_gpa,
		};

		/* On a running ring: the kernel takes it in place. */
		ASSERT_EQ(0, vu_send_ack(self->fe.sock, VHOST_USER_SET_VRING_ADDR,
					 &a, sizeof(a), NULL, 0));
	}
	ASSERT_EQ(0, vblk_mem_alloc(&self->fe.dev.mem, 64 * KiB, VBLK_PAGE_SIZE, &out));
	ASSERT_EQ(0, vblk_mem_alloc(&self->fe.dev.mem, 64 * KiB, VBLK_PAGE_SIZE, &in));
	vblk_log_clear(&self->fe.dev);
	vblk_pattern_fill(out.hva, out.len, 42);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(&self->fe.dev.queues[0], 64, &out));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&self->fe.dev.queues[0], 64, &in));
	/* The device wrote the read's buffer and the used ring: logged.
	 * It only read the write's buffer: not logged. */
	EXPECT_TRUE(vblk_log_all_dirty(&self->fe.dev, in.gpa, in.len));
	EXPECT_TRUE(vblk_log_dirty(&self->fe.dev, self->fe.dev.queues[0].used_gpa, 8));
	EXPECT_FALSE(vblk_log_dirty(&self->fe.dev, out.gpa, out.len));
	EXPECT_EQ(-1, vblk_pattern_check(in.hva, in.len, 42));
}

/* ------------------------------------------------------------------------
 * Bad input: an error reply or a clean disconnect, one log line naming the
 * request, no descriptor leaked, and the next front-end is served.
 */

/* A connection with REPLY_ACK (and everything else) negotiated. */
static int raw_open(struct __test_metadata *_metadata, FIXTURE_DATA(serve) *self)
{
	uint64_t f, pf;
	int s;

	s = vu_connect(self->srv.sock, WAIT_MS);
	EXPECT_LE(0, s);
	if (s < 0)
		return s;
	EXPECT_EQ(0, vu_get_u64(s, VHOST_USER_GET_FEATURES, &f));
	EXPECT_EQ(0, vu_get_u64(s, VHOST_USER_GET_PROTOCOL_FEATURES, &pf));
	EXPECT_EQ(0, vu_send(s, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &pf,
			     sizeof(pf), NULL, 0));
	EXPECT_EQ(0, vu_send(s, VHOST_USER_SET_OWNER, 0, NULL, 0, NULL, 0));
	return s;
}

/* The answer to a bad request: a failed ack or the end of the stream. */
#define EXPECT_REFUSED(ret) \
	EXPECT_TRUE((ret) == -EREMOTEIO || (ret) == -ECONNRESET) \
		TH_LOG("got %d (%s)", (ret), strerror(-(ret)))

/* Whether the helper closed the connection (within WAIT_MS). */
static bool disconnected(int s)
{
	struct vu_msg_hdr h;
	char buf[64];

	return vu_recv(s, &h, buf, sizeof(buf), WAIT_MS) == -ECONNRESET;
}

/* Two regions of the front-end's memory, as a table. */
static struct vu_mem_table_msg mem_table(struct vu_frontend *fe)
{
	struct vu_mem_table_msg t = { .nregions = 2 };

	t.regions[0] = vu_frontend_region(fe, 0);
	t.regions[1] = vu_frontend_region(fe, 1);
	return t;
}

TEST_F(serve, oversized_message_disconnects)
{
	uint8_t junk[512] = { 0 };
	int s = raw_open(_metadata, self);

	ASSERT_LE(0, s);
	/* A table of 512 bytes: larger than any request has. */
	ASSERT_EQ(0, vu_send(s, VHOST_USER_SET_MEM_TABLE, 0, junk, sizeof(junk),
			     NULL, 0));
	EXPECT_TRUE(disconnected(s));
	EXPECT_TRUE(log_has(&self->srv, "payload too large"));
	close(s);
	still_serves(_metadata, self);
}

TEST_F(serve, wrong_payload_size_is_refused)
{
	uint64_t v = 0;
	int s = raw_open(_metadata, self);

	ASSERT_LE(0, s);
	/* SET_VRING_NUM takes 8 bytes, not 4. */
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_VRING_NUM, &v, 4, NULL, 0));
	EXPECT_TRUE(log_has(&self->srv, "SET_VRING_NUM: wrong payload size"));
	close(s);
	still_serves(_metadata, self);
}

TEST_F(serve, wrong_fd_count_is_refused_and_fds_are_closed)
{
	struct vu_mem_table_msg t;
	int s, fds[3];
	uint64_t v;

	open_frontend(_metadata, self);
	t = mem_table(&self->fe);
	vu_frontend_disconnect(&self->fe);
	s = raw_open(_metadata, self);
	ASSERT_LE(0, s);
	fds[0] = fds[1] = fds[2] = self->fe.dev.mem.fd;
	/* Two regions, one fd. */
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_MEM_TABLE, &t,
				   8 + 2 * sizeof(t.regions[0]), fds, 1));
	EXPECT_TRUE(log_has(&self->srv, "SET_MEM_TABLE: missing file descriptor"));
	/* An fd with a request that takes none. */
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_FEATURES, &(uint64_t){ 0 },
				   8, fds, 3));
	EXPECT_TRUE(log_has(&self->srv, "SET_FEATURES: unexpected file descriptors"));
	/* The "no fd" flag with an fd. */
	v = 0 | VHOST_USER_VRING_NOFD_MASK;
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_VRING_CALL, &v, 8, fds, 1));
	/* A kick without eventfd: polling mode, not supported. */
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_VRING_KICK, &v, 8, NULL, 0));
	EXPECT_TRUE(log_has(&self->srv, "SET_VRING_KICK: ring 0: polling"));
	close(s);
	still_serves(_metadata, self);
}

TEST_F(serve, unknown_request_is_refused_and_the_connection_goes_on)
{
	uint64_t f;
	int s = raw_open(_metadata, self);

	ASSERT_LE(0, s);
	EXPECT_EQ(-EREMOTEIO, vu_send_ack(s, 99, NULL, 0, NULL, 0));
	EXPECT_TRUE(log_has(&self->srv, "request 99: request not supported"));
	/* Known to the protocol, not offered here. */
	EXPECT_EQ(-EREMOTEIO, vu_send_ack(s, 31 /* GET_INFLIGHT_FD */, NULL, 0,
					  NULL, 0));
	EXPECT_EQ(0, vu_get_u64(s, VHOST_USER_GET_FEATURES, &f));
	/* Without NEED_REPLY the front-end would not learn: disconnect. */
	EXPECT_EQ(0, vu_send(s, 99, 0, NULL, 0, NULL, 0));
	EXPECT_TRUE(disconnected(s));
	close(s);
	still_serves(_metadata, self);
}

TEST_F(serve, overlapping_regions_are_refused)
{
	struct vu_mem_table_msg t;
	struct vu_mem_reg_msg reg = { 0 };
	int s, fds[2];

	open_frontend(_metadata, self);
	t = mem_table(&self->fe);
	vu_frontend_disconnect(&self->fe);
	s = raw_open(_metadata, self);
	ASSERT_LE(0, s);
	fds[0] = fds[1] = self->fe.dev.mem.fd;

	/* Same guest-physical range twice. */
	t.regions[1].guest_phys_addr = t.regions[0].guest_phys_addr + 4096;
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_MEM_TABLE, &t,
				   8 + 2 * sizeof(t.regions[0]), fds, 2));
	EXPECT_TRUE(log_has(&self->srv, "overlaps another in guest-physical"));
	/* Same front-end range twice. */
	t = mem_table(&self->fe);
	t.regions[1].userspace_addr = t.regions[0].userspace_addr;
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_MEM_TABLE, &t,
				   8 + 2 * sizeof(t.regions[0]), fds, 2));
	EXPECT_TRUE(log_has(&self->srv, "overlaps another in front-end"));
	/* Zero size, and a range that wraps around. */
	t = mem_table(&self->fe);
	t.regions[0].memory_size = 0;
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_MEM_TABLE, &t,
				   8 + 2 * sizeof(t.regions[0]), fds, 2));
	t = mem_table(&self->fe);
	t.regions[0].guest_phys_addr = ~0ULL - 4095;
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_MEM_TABLE, &t,
				   8 + 2 * sizeof(t.regions[0]), fds, 2));
	/* ADD_MEM_REG of a region that is there already. */
	t = mem_table(&self->fe);
	EXPECT_EQ(0, vu_send_ack(s, VHOST_USER_SET_MEM_TABLE, &t,
				 8 + 2 * sizeof(t.regions[0]), fds, 2));
	reg.region = t.regions[1];
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_ADD_MEM_REG, &reg, sizeof(reg),
				   fds, 1));
	/* Removing one that is not there. */
	reg.region.guest_phys_addr += 4096;
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_REM_MEM_REG, &reg, sizeof(reg),
				   NULL, 0));
	EXPECT_TRUE(log_has(&self->srv, "REM_MEM_REG: no such region"));
	close(s);
	still_serves(_metadata, self);
}

TEST_F(serve, vring_address_outside_the_regions_is_refused)
{
	struct vu_mem_table_msg t;
	struct vu_state_msg num = { .index = 0, .num = 256 };
	struct vu_addr_msg a;
	struct vblk_queue *q;
	uint64_t kick = 0;	/* ring 0, with a descriptor */
	int s, fds[2];

	open_frontend(_metadata, self);
	t = mem_table(&self->fe);
	q = &self->fe.dev.queues[0];
	a = (struct vu_addr_msg){
		.index = 0,
		.desc = (uintptr_t)q->vr.desc, .used = (uintptr_t)q->vr.used,
		.avail = (uintptr_t)q->vr.avail, .log = q->used_gpa,
	};
	vu_frontend_disconnect(&self->fe);
	s = raw_open(_metadata, self);
	ASSERT_LE(0, s);
	fds[0] = fds[1] = self->fe.dev.mem.fd;
	ASSERT_EQ(0, vu_send_ack(s, VHOST_USER_SET_MEM_TABLE, &t,
				 8 + 2 * sizeof(t.regions[0]), fds, 2));
	ASSERT_EQ(0, vu_send_ack(s, VHOST_USER_SET_VRING_NUM, &num, sizeof(num),
				 NULL, 0));
	/*
	 * The descriptor table in the hole between the regions' addresses:
	 * taken, as addresses may come before the memory, and refused when
	 * the ring would start (here at its kick: no protocol features).
	 */
	a.desc = t.regions[0].userspace_addr + t.regions[0].memory_size + 4096 * 16;
	ASSERT_EQ(0, vu_send_ack(s, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a),
				 NULL, 0));
	fds[0] = self->fe.dev.queues[0].kick_fd;
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_VRING_KICK, &kick,
				   sizeof(kick), fds, 1));
	EXPECT_TRUE(log_has(&self->srv, "SET_VRING_KICK: ring 0: descriptor table outside"));
	/* A used ring that starts inside a region and ends past it: refused
	 * at once now that the ring is otherwise ready. */
	a.desc = (uintptr_t)q->vr.desc;
	a.used = t.regions[1].userspace_addr + t.regions[1].memory_size - 64;
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a),
				   NULL, 0));
	/* A guest-physical address instead of a front-end one. */
	a.used = q->used_gpa;
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a),
				   NULL, 0));
	close(s);
	still_serves(_metadata, self);
}

TEST_F(serve, queue_index_out_of_range_is_refused)
{
	struct vu_state_msg st = { .index = variant->nqueues, .num = 256 };
	uint64_t v = variant->nqueues;
	int s = raw_open(_metadata, self);

	ASSERT_LE(0, s);
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_VRING_NUM, &st, sizeof(st),
				   NULL, 0));
	EXPECT_TRUE(log_has(&self->srv, "SET_VRING_NUM: queue index"));
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_VRING_CALL, &v, sizeof(v),
				   &self->srv.log_fd, 1));
	st.index = 0;
	st.num = 3;	/* not a power of 2 */
	EXPECT_REFUSED(vu_send_ack(s, VHOST_USER_SET_VRING_NUM, &st, sizeof(st),
				   NULL, 0));
	/* GET_VRING_BASE has no error reply: the helper disconnects. */
	st.index = 200;
	ASSERT_EQ(0, vu_send(s, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st),
			     NULL, 0));
	EXPECT_TRUE(disconnected(s));
	close(s);
	still_serves(_metadata, self);
}

TEST_F(serve, truncated_message_and_abrupt_close_leave_the_helper_serving)
{
	struct vu_msg_hdr h = { VHOST_USER_SET_FEATURES, 1, 8 };
	int s = raw_open(_metadata, self);

	ASSERT_LE(0, s);
	/* A header whose payload never comes. */
	ASSERT_EQ((ssize_t)sizeof(h), send(s, &h, sizeof(h), MSG_NOSIGNAL));
	close(s);
	EXPECT_TRUE(log_has(&self->srv, "malformed message"));
	still_serves(_metadata, self);
}

/*
 * A virtio reset (a guest reboot, each driver probe) as QEMU 10 does it:
 * the rings stop, RESET_DEVICE, and everything again from features on,
 * the guest driver's rings started over; with CONFIGURE_MEM_SLOTS the
 * memory is not sent again, QEMU's record of what the back-end has
 * outlives the reset.
 */
static void reset_device(struct __test_metadata *_metadata,
			 struct vu_frontend *fe)
{
	unsigned int q;

	ASSERT_EQ(0, vu_frontend_stop(fe, NULL));
	ASSERT_EQ(0, vu_send_ack(fe->sock, VHOST_USER_RESET_DEVICE, NULL, 0,
				 NULL, 0));
	memset(fe->base, 0, sizeof(fe->base));
	for (q = 0; q < fe->dev.nqueues; q++) {
		struct vblk_queue *vq = &fe->dev.queues[q];

		memset(vq->ring.hva, 0, vq->ring.len);
		vq->avail_idx = vq->kick_idx = vq->used_idx = 0;
	}
	ASSERT_EQ(0, vu_frontend_start(fe));
}

TEST_F(serve, reset_device_restarts_the_rings_and_keeps_the_memory)
{
	open_frontend(_metadata, self);
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 0, 11);
	reset_device(_metadata, &self->fe);
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 8, 12);
	/* Twice, as a guest boot probes the device more than once. */
	reset_device(_metadata, &self->fe);
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 16, 13);
	EXPECT_FALSE(log_has(&self->srv, "outside guest memory"));
}

TEST_F(serve, second_front_end_is_refused_at_once)
{
	struct vu_msg_hdr h;
	char buf[64], needle[128];
	int s;

	open_frontend(_metadata, self);
	s = vu_connect(self->srv.sock, WAIT_MS);
	ASSERT_LE(0, s);
	/* Closed at once, not left waiting in the listen backlog. */
	EXPECT_EQ(-ECONNRESET, vu_recv(s, &h, buf, sizeof(buf), WAIT_MS));
	close(s);
	snprintf(needle, sizeof(needle),
		 "front-end refused (pid %d, uid 0, gid 0): serving another front-end (pid %d)",
		 (int)getpid(), (int)getpid());
	EXPECT_TRUE(log_has(&self->srv, needle));
	/* The first one goes on. */
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 32, 41);
	still_serves(_metadata, self);
}

/* ------------------------------------------------------------------------
 * Dirty log bounds: the kernel sets bits at log base + page / 8 without a
 * bound, so the helper must not hand it a log shorter than the memory.
 */

/* The log QEMU gives for guest memory ending at @gpa_end: a u64 per 64 pages. */
static uint64_t log_bytes(uint64_t gpa_end)
{
	return ((gpa_end - 1) / (VBLK_PAGE_SIZE * 64) + 1) * 8;
}

/*
 * SET_LOG_BASE of a new @size-byte memfd, mapped as the front-end's log
 * too: 0 when the back-end replied, -ECONNRESET when it disconnected.
 */
static int send_log_base(FIXTURE_DATA(serve) *self, uint64_t size)
{
	struct {
		uint64_t mmap_size, mmap_offset;
	} __attribute__((packed)) lb = { size, 0 };
	struct vblk_dev *dev = &self->fe.dev;
	struct vu_msg_hdr h;
	char dummy[8];
	int fd, ret;

	fd = memfd_create("vu-log", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, size)) {
		close(fd);
		return -EIO;
	}
	if (dev->log)
		munmap(dev->log, dev->log_size);
	dev->log = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	dev->log_size = size;
	if (dev->log == MAP_FAILED) {
		dev->log = NULL;
		close(fd);
		return -ENOMEM;
	}
	ret = vu_send(self->fe.sock, VHOST_USER_SET_LOG_BASE, 0, &lb, sizeof(lb),
		      &fd, 1);
	close(fd);
	if (!ret)
		ret = vu_recv(self->fe.sock, &h, dummy, sizeof(dummy), WAIT_MS);
	if (!ret && (h.request != VHOST_USER_SET_LOG_BASE ||
		     !(h.flags & VHOST_USER_REPLY_MASK)))
		ret = -EPROTO;
	return ret;
}

/* SET_FEATURES of what the front-end has, plus @extra. */
static int set_features(FIXTURE_DATA(serve) *self, uint64_t extra)
{
	uint64_t f = self->fe.dev.features | extra |
		     BIT(VHOST_USER_F_PROTOCOL_FEATURES);

	return vu_send_ack(self->fe.sock, VHOST_USER_SET_FEATURES, &f, 8, NULL, 0);
}

/* SET_VRING_ADDR of queue @q, its used ring logged at @log. */
static int set_logged_ring(FIXTURE_DATA(serve) *self, unsigned int q,
			   uint64_t log)
{
	struct vblk_queue *vq = &self->fe.dev.queues[q];
	struct vu_addr_msg a = {
		.index = q, .flags = 1U << VHOST_VRING_F_LOG,
		.desc = (uintptr_t)vq->vr.desc, .used = (uintptr_t)vq->vr.used,
		.avail = (uintptr_t)vq->vr.avail, .log = log,
	};

	return vu_send_ack(self->fe.sock, VHOST_USER_SET_VRING_ADDR, &a,
			   sizeof(a), NULL, 0);
}

/* A read on queue 0 is logged: its buffer and the used ring. */
static void read_is_logged(struct __test_metadata *_metadata,
			   FIXTURE_DATA(serve) *self)
{
	struct vblk_mem_mark mark = vblk_mem_mark(&self->fe.dev.mem);
	struct vblk_buf in;

	ASSERT_EQ(0, vblk_mem_alloc(&self->fe.dev.mem, 64 * KiB, VBLK_PAGE_SIZE, &in));
	vblk_log_clear(&self->fe.dev);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(&self->fe.dev.queues[0], 64, &in));
	EXPECT_TRUE(vblk_log_all_dirty(&self->fe.dev, in.gpa, in.len));
	EXPECT_TRUE(vblk_log_dirty(&self->fe.dev, self->fe.dev.queues[0].used_gpa, 8));
	vblk_mem_release(&self->fe.dev.mem, mark);
}

TEST_F(serve, log_base_too_small_is_refused)
{
	uint64_t need;

	open_frontend(_metadata, self);
	need = log_bytes(vblk_mem_gpa_end(&self->fe.dev.mem));
	/* The size QEMU gives is taken... */
	EXPECT_EQ(0, send_log_base(self, need));
	/* ... one u64 less is not: the kernel would write past it. */
	EXPECT_EQ(-ECONNRESET, send_log_base(self, need - 8));
	EXPECT_TRUE(log_has(&self->srv, "SET_LOG_BASE: a log of"));
	still_serves(_metadata, self);
}

TEST_F(serve, memory_or_ring_beyond_the_log_is_refused_while_logging)
{
	uint64_t need, beyond;
	struct vu_mem_table_msg t;
	int fds[2];

	open_frontend(_metadata, self);
	need = log_bytes(vblk_mem_gpa_end(&self->fe.dev.mem));
	beyond = need * 8 * VBLK_PAGE_SIZE;	/* the first page past it */
	ASSERT_EQ(0, send_log_base(self, need));
	ASSERT_EQ(0, set_features(self, BIT(VHOST_F_LOG_ALL)));
	/* A memory table with a region past the end of the log. */
	t = mem_table(&self->fe);
	t.regions[1].guest_phys_addr = beyond;
	fds[0] = fds[1] = self->fe.dev.mem.fd;
	EXPECT_EQ(-EREMOTEIO, vu_send_ack(self->fe.sock, VHOST_USER_SET_MEM_TABLE,
					  &t, 8 + 2 * sizeof(t.regions[0]), fds, 2));
	EXPECT_TRUE(log_has(&self->srv, "SET_MEM_TABLE: guest memory beyond the"));
	/* A used ring logged past it, and one that starts in it and ends
	 * past it. */
	EXPECT_EQ(-EREMOTEIO, set_logged_ring(self, 0, beyond));
	EXPECT_TRUE(log_has(&self->srv, "SET_VRING_ADDR: ring 0: used ring log address"));
	EXPECT_EQ(-EREMOTEIO, set_logged_ring(self, 0, beyond - 8));
	/* Whose last page is the log's last: taken. */
	EXPECT_EQ(0, set_logged_ring(self, 0, beyond - VBLK_PAGE_SIZE));
	/* Inside it: taken, and the log works. */
	ASSERT_EQ(0, set_logged_ring(self, 0, self->fe.dev.queues[0].used_gpa));
	read_is_logged(_metadata, self);
}

TEST_F(serve, logging_asked_before_the_log_base_starts_with_it)
{
	unsigned int q;

	open_frontend(_metadata, self);
	/* As QEMU starts a device during a migration: features, rings, then
	 * the log. Until the log comes the kernel has none to write. */
	ASSERT_EQ(0, set_features(self, BIT(VHOST_F_LOG_ALL)));
	for (q = 0; q < variant->nqueues; q++)
		ASSERT_EQ(0, set_logged_ring(self, q, self->fe.dev.queues[q].used_gpa));
	round_trip(_metadata, &self->fe, &self->be, 0, 0, 0, 31);
	ASSERT_EQ(0, send_log_base(self, log_bytes(vblk_mem_gpa_end(&self->fe.dev.mem))));
	read_is_logged(_metadata, self);
}

/* ------------------------------------------------------------------------
 * Options: read-only and serial
 */

#define SERIAL_20	"VHOSTBLK-SERIAL-0020"	/* exactly 20: no NUL */

FIXTURE(serve_ro) {
	struct vblk_backend be;
	struct vu_server srv;
	struct vu_frontend fe;
};

FIXTURE_SETUP(serve_ro)
{
	const char *args[] = { "--read-only", "--serial", SERIAL_20, NULL };
	struct vu_opts opts = { 0 };
	int ret;

	self->fe.sock = -1;
	self->fe.channel = -1;
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, NULL);
	ASSERT_EQ(0, ret) TH_LOG("backend: %s", strerror(-ret));
	ret = vu_server_start(&self->srv, self->be.path, args);
	if (!ret)
		ret = vu_frontend_open(&self->fe, self->srv.sock, &opts);
	if (ret) {
		vu_frontend_close(&self->fe);
		vu_server_stop(&self->srv, SIGTERM, WAIT_MS, NULL);
		vblk_backend_destroy(&self->be);
	}
	ASSERT_EQ(0, ret) TH_LOG("serve: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(serve_ro)
{
	vu_frontend_close(&self->fe);
	vu_server_stop(&self->srv, SIGTERM, WAIT_MS, NULL);
	EXPECT_EQ(0, vblk_backend_destroy(&self->be));
}

TEST_F(serve_ro, read_only_offers_ro_and_fails_writes)
{
	struct vblk_buf buf;
	uint8_t *disk = malloc(4 * KiB);

	ASSERT_NE(NULL, disk);
	EXPECT_TRUE(self->fe.device_features & BIT(VIRTIO_BLK_F_RO));
	ASSERT_EQ(0, vblk_mem_alloc(&self->fe.dev.mem, 4 * KiB, VBLK_PAGE_SIZE,
				    &buf));
	vblk_pattern_fill(buf.hva, buf.len, 1);
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_write(&self->fe.dev.queues[0], 0, &buf));
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_read(&self->fe.dev.queues[0], 0, &buf));
	EXPECT_EQ(-1, vblk_mem_check_byte(buf.hva, buf.len, 0));
	ASSERT_EQ(0, vblk_backend_pread(&self->be, disk, 4 * KiB, 0));
	EXPECT_EQ(-1, vblk_mem_check_byte(disk, 4 * KiB, 0));
	free(disk);
}

TEST_F(serve_ro, serial_is_what_get_id_returns)
{
	struct vblk_buf buf;

	ASSERT_EQ(0, vblk_mem_alloc(&self->fe.dev.mem, 512, 512, &buf));
	memset(buf.hva, 0xaa, buf.len);
	buf.len = VIRTIO_BLK_ID_BYTES;
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_get_id(&self->fe.dev.queues[0], &buf));
	EXPECT_EQ(0, memcmp(buf.hva, SERIAL_20, VIRTIO_BLK_ID_BYTES));
	EXPECT_EQ(0xaa, ((uint8_t *)buf.hva)[VIRTIO_BLK_ID_BYTES]);
}

/* ------------------------------------------------------------------------
 * Queues and workers: more queues than a device has by default, and the
 * vhost workers that serve them (--workers; threads of the helper)
 */

/* The vhost core gives queues workers of their own from Linux 6.5 on. */
static bool kernel_has_queue_workers(void)
{
	return vblk_kernel_at_least(6, 5);
}

#define MAX_WORKERS	VHOST_BLK_MAX_QUEUES

FIXTURE(serve_mq) {
	struct vblk_backend be;
	struct vu_server srv;
	struct vu_frontend fe;
};

FIXTURE_SETUP(serve_mq)
{
	int ret;

	self->fe.sock = -1;
	self->fe.channel = -1;
	self->srv.pid = -1;
	self->srv.log_fd = -1;
	ret = vblk_backend_create(&self->be, VBLK_BE_NULLB, NULL);
	ASSERT_EQ(0, ret) TH_LOG("backend: %s", strerror(-ret));
}

/*
 * The end of a fixture with a helper: the front-end closed, the helper
 * stopped and its log shown if the test failed, the backend removed.
 */
static void end_served(struct __test_metadata *_metadata, struct vu_frontend *fe,
		       struct vu_server *srv, struct vblk_backend *be)
{
	vu_frontend_close(fe);
	vu_server_stop(srv, SIGTERM, WAIT_MS, NULL);
	if (VBLK_TEST_FAILED(_metadata)) {
		static char log[LOG_SIZE];

		TH_LOG("helper log:\n%s", vu_server_log(srv, log, sizeof(log)));
	}
	EXPECT_EQ(0, vblk_backend_destroy(be));
}

FIXTURE_TEARDOWN(serve_mq)
{
	end_served(_metadata, &self->fe, &self->srv, &self->be);
}

/*
 * Serves the backend with @nqueues queues and @workers workers (0: the
 * default) and connects a front-end with as many queues.
 */
static void serve_queues(struct __test_metadata *_metadata,
			 FIXTURE_DATA(serve_mq) *self, unsigned int nqueues,
			 unsigned int workers)
{
	char nq[16], nw[16];
	const char *args[] = { "--num-queues", nq, "--workers", nw, NULL };
	struct vu_opts opts = { .vblk.nqueues = nqueues };
	int ret;

	snprintf(nq, sizeof(nq), "%u", nqueues);
	snprintf(nw, sizeof(nw), "%u", workers);
	if (!workers)
		args[2] = NULL;
	ret = vu_server_start(&self->srv, self->be.path, args);
	ASSERT_EQ(0, ret) TH_LOG("starting %s serve: %s",
				 getenv("VHOSTBLK_SETUP"), strerror(-ret));
	ret = vu_frontend_open(&self->fe, self->srv.sock, &opts);
	ASSERT_EQ(0, ret) TH_LOG("front-end: %s", strerror(-ret));
}

/*
 * The helper's worker threads, "vhost-<helper pid>" (up to @max of their
 * ids in @tids); -1 if one is not a thread of the helper (a kernel thread,
 * as before Linux 6.4).
 */
static int helper_workers(pid_t helper, pid_t *tids, unsigned int max)
{
	pid_t found[MAX_WORKERS + 1];
	unsigned int n, i;
	char path[64];

	n = vblk_vhost_workers(helper, found, MAX_WORKERS + 1);
	for (i = 0; i < n && i <= MAX_WORKERS; i++) {
		snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)helper,
			 (int)found[i]);
		if (access(path, F_OK))
			return -1;
		if (i < max)
			tids[i] = found[i];
	}
	return n;
}

/* Waits for the helper to have @n worker threads (or kernel threads). */
static unsigned int workers_settle(pid_t helper, unsigned int n)
{
	unsigned int now = vblk_vhost_workers(helper, NULL, 0);
	int waited;

	for (waited = 0; now != n && waited < WAIT_MS; waited += 10) {
		sleep_ms(10);
		now = vblk_vhost_workers(helper, NULL, 0);
	}
	return now;
}

/* Verified round trips through every queue: written on q, read on q + 1. */
static void io_on_every_queue(struct __test_metadata *_metadata,
			      FIXTURE_DATA(serve_mq) *self, uint64_t seed)
{
	unsigned int q, n = self->fe.dev.nqueues;

	for (q = 0; q < n; q++)
		round_trip(_metadata, &self->fe, &self->be, q, (q + 1) % n,
			   q * 256, seed + q);
}

TEST_F(serve_mq, twenty_queues_serve_verified_io_on_queue_19)
{
	const unsigned int n = 20;
	uint64_t end = self->be.size / VBLK_SECTOR_SIZE - 128;

	serve_queues(_metadata, self, n, 0);
	/* More than the 16 a device had before VHOST_BLK_SET_NUM_QUEUES. */
	EXPECT_EQ(n, self->fe.queue_num);
	EXPECT_EQ(n, le16toh(self->fe.config.num_queues));
	round_trip(_metadata, &self->fe, &self->be, n - 1, 0, 0, 1);
	round_trip(_metadata, &self->fe, &self->be, 0, n - 1, 256, 2);
	round_trip(_metadata, &self->fe, &self->be, n - 1, n - 1, end, 3);
	io_on_every_queue(_metadata, self, 100);
}

TEST_F(serve_mq, default_workers_are_one_per_queue_up_to_the_cpus)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int want = 1;
	char line[128];

	if (kernel_has_queue_workers())
		want = cpus < 4 ? (unsigned int)cpus : 4;
	serve_queues(_metadata, self, 4, 0);
	snprintf(line, sizeof(line), "4 queues, %u worker%s", want,
		 want == 1 ? "" : "s");
	EXPECT_TRUE(log_has(&self->srv, line)) TH_LOG("want \"%s\"", line);
	io_on_every_queue(_metadata, self, 10);
	EXPECT_EQ(want, workers_settle(self->srv.pid, want));
}

/*
 * The --workers the kernel can have: one per device before Linux 6.5,
 * where only the default (0) is accepted.
 */
static unsigned int workers_for(unsigned int want, unsigned int *option)
{
	if (kernel_has_queue_workers()) {
		*option = want;
		return want;
	}
	*option = 0;
	return 1;
}

TEST_F(serve_mq, the_workers_live_while_it_serves_and_go_with_the_front_end)
{
	unsigned int option, want = workers_for(4, &option);
	pid_t tids[MAX_WORKERS];
	char line[128];

	serve_queues(_metadata, self, 4, option);
	snprintf(line, sizeof(line), "4 queues, %u worker%s", want,
		 want == 1 ? "" : "s");
	EXPECT_TRUE(log_has(&self->srv, line)) TH_LOG("want \"%s\"", line);
	io_on_every_queue(_metadata, self, 20);
	EXPECT_EQ(want, workers_settle(self->srv.pid, want));
	/* Threads of the helper since Linux 6.4, a kernel thread before. */
	EXPECT_EQ(vblk_kernel_at_least(6, 4) ? (int)want : -1,
		  helper_workers(self->srv.pid, tids, MAX_WORKERS));
	/* They go with the device when the front-end does. */
	vu_frontend_close(&self->fe);
	EXPECT_EQ(0U, workers_settle(self->srv.pid, 0));
	EXPECT_TRUE(log_has(&self->srv, "front-end disconnected"));
}

/*
 * Which worker serves a queue, read from the threads' run time: a worker
 * with no work never runs, so once the workers are idle, only the worker
 * of the queue doing I/O gains any. Before Linux 6.5 that is the device's
 * one worker for every queue.
 */
TEST_F(serve_mq, queue_i_runs_on_worker_i_modulo_the_workers)
{
	enum { NQ = 4 };
	unsigned int option, nw = workers_for(2, &option);
	unsigned long long before[2], after[2];
	unsigned int q, w, gained, on[NQ];
	pid_t tids[2];

	serve_queues(_metadata, self, NQ, option);
	ASSERT_EQ(nw, workers_settle(self->srv.pid, nw));
	ASSERT_EQ(nw, vblk_vhost_workers(self->srv.pid, tids, nw));
	for (q = 0; q < NQ; q++) {
		vblk_threads_run_ns_settled(tids, nw, before);
		round_trip(_metadata, &self->fe, &self->be, q, q, q * 256, q);
		vblk_threads_run_ns_settled(tids, nw, after);
		gained = 0;
		for (w = 0; w < nw; w++) {
			if (after[w] > before[w]) {
				on[q] = w;
				gained++;
			}
		}
		ASSERT_EQ(1U, gained) TH_LOG("queue %u ran on %u workers", q, gained);
	}
	EXPECT_EQ(on[0], on[2]);
	EXPECT_EQ(on[1], on[3]);
	if (nw > 1)
		EXPECT_NE(on[0], on[1]);
}

TEST_F(serve_mq, reset_device_gives_the_queues_their_workers_again)
{
	unsigned int option, want = workers_for(4, &option);

	serve_queues(_metadata, self, 4, option);
	io_on_every_queue(_metadata, self, 30);
	/* VHOST_RESET_OWNER frees the workers; the helper makes them again. */
	reset_device(_metadata, &self->fe);
	EXPECT_EQ(want, workers_settle(self->srv.pid, want));
	io_on_every_queue(_metadata, self, 40);
}

/*
 * What `vhostblk-setup list --json` says of the device owned by @owner:
 * the array under @key (its contents, "50, 50"), in @out. False when the
 * helper fails or lists no such device.
 */
static bool list_json_array(pid_t owner, const char *key, char *out, size_t len)
{
	static char json[65536];
	char cmd[512], needle[64], *p, *end;
	size_t n = 0, got;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "'%s' list --json", getenv("VHOSTBLK_SETUP"));
	f = popen(cmd, "r");
	if (!f)
		return false;
	while (n < sizeof(json) - 1 &&
	       (got = fread(json + n, 1, sizeof(json) - 1 - n, f)) > 0)
		n += got;
	json[n] = 0;
	if (pclose(f))
		return false;
	snprintf(needle, sizeof(needle), "\"owner_pid\": %d,", (int)owner);
	p = strstr(json, needle);
	if (!p)
		return false;
	/* Within that device's object. */
	end = strchr(p, '}');
	snprintf(needle, sizeof(needle), "\"%s\": [", key);
	p = strstr(p, needle);
	if (!p || !end || p > end)
		return false;
	p += strlen(needle);
	end = strchr(p, ']');
	if (!end || (size_t)(end - p) >= len)
		return false;
	memcpy(out, p, end - p);
	out[end - p] = 0;
	return true;
}

/* The busy-poll time of each queue of the helper's device, as list has it. */
#define EXPECT_POLL_US(want) do {					\
	char got_[256] = "";						\
									\
	EXPECT_TRUE(list_json_array(self->srv.pid, "poll_us", got_,	\
				    sizeof(got_)));			\
	EXPECT_STREQ(want, got_);					\
} while (0)

/*
 * --poll-us: every queue of the kernel device has it once the front-end
 * started them, still after the guest reset the device, and again on the
 * device of the next connection.
 */
TEST_F(serve_mq, poll_us_reaches_every_queue_and_stays_across_resets_and_reconnects)
{
	const char *args[] = { "--num-queues", "2", "--poll-us", "50", NULL };
	struct vu_opts opts = { .vblk.nqueues = 2 };
	char workers[256], *p;
	unsigned int n = 0;
	int ret;

	ret = vu_server_start(&self->srv, self->be.path, args);
	ASSERT_EQ(0, ret) TH_LOG("starting serve: %s", strerror(-ret));
	EXPECT_TRUE(log_has(&self->srv, ", busy-polling 50 us"));
	ret = vu_frontend_open(&self->fe, self->srv.sock, &opts);
	ASSERT_EQ(0, ret) TH_LOG("front-end: %s", strerror(-ret));
	io_on_every_queue(_metadata, self, 50);
	EXPECT_POLL_US("50, 50");
	/* Both queues were kicked: each has a worker's thread id. */
	ASSERT_TRUE(list_json_array(self->srv.pid, "workers", workers,
				    sizeof(workers)));
	for (p = workers; *p; n++) {
		char *next;

		EXPECT_NE(0UL, strtoul(p, &next, 10)) TH_LOG("workers %s", workers);
		if (next == p)
			break;
		p = next + strspn(next, ", ");
	}
	EXPECT_EQ(2U, n) TH_LOG("workers %s", workers);

	reset_device(_metadata, &self->fe);
	io_on_every_queue(_metadata, self, 60);
	EXPECT_POLL_US("50, 50");

	vu_frontend_close(&self->fe);
	EXPECT_TRUE(log_has(&self->srv, "front-end disconnected"));
	ret = vu_frontend_open(&self->fe, self->srv.sock, &opts);
	ASSERT_EQ(0, ret) TH_LOG("front-end again: %s", strerror(-ret));
	io_on_every_queue(_metadata, self, 70);
	EXPECT_POLL_US("50, 50");
}

TEST_F(serve_mq, without_poll_us_no_queue_polls)
{
	serve_queues(_metadata, self, 2, 0);
	io_on_every_queue(_metadata, self, 80);
	EXPECT_POLL_US("0, 0");
	{
		static char log[LOG_SIZE];

		EXPECT_EQ(NULL, strstr(vu_server_log(&self->srv, log, sizeof(log)),
				       "busy-polling"));
	}
}

/* ------------------------------------------------------------------------
 * A served loop device that grows and shrinks
 */

FIXTURE(serve_resize) {
	struct vblk_backend be;
	struct vu_server srv;
	struct vu_frontend fe;
	struct vu_opts opts;
};

FIXTURE_SETUP(serve_resize)
{
	struct vblk_backend_opts bo = { .size = 4 << 20 };
	int ret;

	self->fe.sock = -1;
	self->fe.channel = -1;
	self->opts.backend_channel = true;
	ret = vblk_backend_create(&self->be, VBLK_BE_LOOP, &bo);
	ASSERT_EQ(0, ret) TH_LOG("backend: %s", strerror(-ret));
	ret = vu_server_start(&self->srv, self->be.path, NULL);
	if (ret)
		vblk_backend_destroy(&self->be);
	ASSERT_EQ(0, ret) TH_LOG("serve: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(serve_resize)
{
	end_served(_metadata, &self->fe, &self->srv, &self->be);
}

/* The capacity GET_CONFIG answers now, in sectors; 0 on failure. */
static uint64_t config_capacity(struct vu_frontend *fe)
{
	struct vu_config_msg c = { .offset = 0, .size = 8 };
	uint64_t capacity;

	if (vu_send(fe->sock, VHOST_USER_GET_CONFIG, 0, &c, 12 + 8, NULL, 0) ||
	    vu_recv_reply(fe->sock, VHOST_USER_GET_CONFIG, &c, sizeof(c),
			  WAIT_MS) != 12 + 8)
		return 0;
	memcpy(&capacity, c.data, sizeof(capacity));
	return le64toh(capacity);
}

/* Waits for the back-end's next request on the channel: its number. */
static int channel_request(struct vu_frontend *fe)
{
	struct vu_msg_hdr hdr;
	uint8_t payload[64];
	int ret;

	ret = vu_recv(fe->channel, &hdr, payload, sizeof(payload), WAIT_MS);
	if (ret < 0)
		return ret;
	/* A notice: no reply asked for, no payload. */
	if (hdr.flags != VHOST_USER_VERSION || hdr.size)
		return -EPROTO;
	return hdr.request;
}

TEST_F(serve_resize, a_new_size_is_announced_and_served)
{
	struct vblk_buf buf;
	struct vblk_queue *q;

	ASSERT_EQ(0, vu_frontend_open(&self->fe, self->srv.sock, &self->opts));
	q = &self->fe.dev.queues[0];
	ASSERT_EQ(0, vblk_mem_alloc(&self->fe.dev.mem, 8 * KiB, VBLK_PAGE_SIZE, &buf));
	EXPECT_EQ(8192U, le64toh(self->fe.config.capacity));
	vblk_pattern_fill(buf.hva, buf.len, 71);
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_write(q, 8192, &buf));

	/* Grown to 8 MiB: announced, read from the device, usable. */
	ASSERT_EQ(0, vblk_backend_resize(&self->be, 8 << 20));
	ASSERT_EQ(VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, channel_request(&self->fe));
	EXPECT_EQ(16384U, config_capacity(&self->fe));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_write(q, 16384 - 16, &buf));
	memset(buf.hva, 0, buf.len);
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_read(q, 16384 - 16, &buf));
	EXPECT_EQ(-1, vblk_pattern_check(buf.hva, buf.len, 71));

	/* Shrunk to 2 MiB: what lies past the end fails cleanly. */
	ASSERT_EQ(0, vblk_backend_resize(&self->be, 2 << 20));
	ASSERT_EQ(VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, channel_request(&self->fe));
	EXPECT_EQ(4096U, config_capacity(&self->fe));
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_read(q, 4096 - 8, &buf));
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_read(q, 4096 - 16, &buf));
	EXPECT_TRUE(log_has(&self->srv, "4096 sectors, was 16384"));
}

TEST_F(serve_resize, the_channel_is_refused_unless_negotiated_and_a_socket)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	int sv[2];

	ASSERT_LE(0, efd);
	self->opts.backend_channel = false;
	ASSERT_EQ(0, vu_frontend_open(&self->fe, self->srv.sock, &self->opts));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	/* Not negotiated: refused, and a resize goes unannounced. */
	EXPECT_EQ(-EREMOTEIO, vu_send_ack(self->fe.sock, VHOST_USER_SET_BACKEND_REQ_FD,
					  NULL, 0, &sv[1], 1));
	EXPECT_TRUE(log_has(&self->srv, "BACKEND_REQ was not negotiated"));
	ASSERT_EQ(0, vblk_backend_resize(&self->be, 8 << 20));
	EXPECT_EQ(16384U, config_capacity(&self->fe));
	EXPECT_TRUE(log_has(&self->srv, "has no back-end channel"));
	close(sv[0]);
	close(sv[1]);

	/* Negotiated, but an eventfd is no channel. */
	vu_frontend_close(&self->fe);
	self->opts.backend_channel = true;
	ASSERT_EQ(0, vu_frontend_open(&self->fe, self->srv.sock, &self->opts));
	EXPECT_EQ(-EREMOTEIO, vu_send_ack(self->fe.sock, VHOST_USER_SET_BACKEND_REQ_FD,
					  NULL, 0, &efd, 1));
	EXPECT_TRUE(log_has(&self->srv, "the channel is not a stream socket"));
	close(efd);
	/* The one given before still works. */
	ASSERT_EQ(0, vblk_backend_resize(&self->be, 4 << 20));
	EXPECT_EQ(VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, channel_request(&self->fe));
}

/* ------------------------------------------------------------------------
 * Image files: serve puts a regular file on a loop device of its own
 * (autoclear, direct I/O where the file system can), gone when serve is
 */

#define IMAGE_SIZE	(32 * 1024 * KiB)
#define CGROUP_ROOT	"/sys/fs/cgroup"

FIXTURE(serve_image) {
	char file[64];
	char cgroup[64];	/* the io test's cgroup, "" if none */
	struct vu_server srv;
	struct vu_frontend fe;
};

FIXTURE_SETUP(serve_image)
{
	int fd;

	self->fe.sock = -1;
	self->fe.channel = -1;
	self->srv.pid = -1;
	self->srv.log_fd = -1;
	/* Loaded on demand where udev made the static node; not here. */
	if (access("/dev/loop-control", F_OK))
		ASSERT_EQ(0, vblk_run("modprobe loop"));
	snprintf(self->file, sizeof(self->file), "/tmp/vblk-image-%d",
		 (int)getpid());
	fd = open(self->file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", self->file, strerror(errno));
	ASSERT_EQ(0, ftruncate(fd, IMAGE_SIZE));
	close(fd);
}

FIXTURE_TEARDOWN(serve_image)
{
	vu_frontend_close(&self->fe);
	vu_server_stop(&self->srv, SIGTERM, WAIT_MS, NULL);
	if (VBLK_TEST_FAILED(_metadata) && self->srv.log_fd >= 0) {
		static char log[LOG_SIZE];

		TH_LOG("helper log:\n%s", vu_server_log(&self->srv, log, sizeof(log)));
	}
	if (self->cgroup[0]) {
		vblk_write_file(CGROUP_ROOT "/cgroup.procs", "0");
		rmdir(self->cgroup);
	}
	unlink(self->file);
}

/*
 * The loop devices bound to @file (/sys/block/loopN/loop/backing_file):
 * how many, and the number of the first in *first.
 */
static int loops_of(const char *file, int *first)
{
	char path[300], backing[256];
	struct dirent *de;
	int n = 0;
	DIR *d;

	*first = -1;
	d = opendir("/sys/block");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "loop", 4))
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file",
			 de->d_name);
		if (vblk_read_line(path, backing, sizeof(backing)))
			continue;
		if (strcmp(backing, file))
			continue;
		if (!n++)
			*first = atoi(de->d_name + 4);
	}
	closedir(d);
	return n;
}

/* Descriptors of process @pid open on /dev/loop@num. */
static int fds_on_loop(pid_t pid, int num)
{
	char dir[64], path[340], target[64], want[32];
	struct dirent *de;
	int n = 0;
	ssize_t len;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	snprintf(want, sizeof(want), "/dev/loop%d", num);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		n += !strcmp(target, want);
	}
	closedir(d);
	return n;
}

/* Starts serve on the image file; its loop device's number. */
static int serve_image_start(struct __test_metadata *_metadata,
			     FIXTURE_DATA(serve_image) *self)
{
	int ret, num;

	ret = vu_server_start(&self->srv, self->file, NULL);
	ASSERT_EQ(0, ret) TH_LOG("starting %s serve: %s",
				 getenv("VHOSTBLK_SETUP"), strerror(-ret));
	EXPECT_EQ(1, loops_of(self->file, &num));
	return num;
}

/* Writes @n 64 KiB blocks of patterns from @seed at @sector on. */
static void image_write(struct __test_metadata *_metadata,
			struct vu_frontend *fe, unsigned int n,
			uint64_t sector, uint64_t seed)
{
	struct vblk_mem_mark mark = vblk_mem_mark(&fe->dev.mem);
	struct vblk_buf buf;
	unsigned int i;

	ASSERT_EQ(0, vblk_mem_alloc(&fe->dev.mem, 64 * KiB, VBLK_PAGE_SIZE, &buf));
	for (i = 0; i < n; i++) {
		vblk_pattern_fill(buf.hva, buf.len, seed + i);
		ASSERT_EQ(VIRTIO_BLK_S_OK,
			  vblk_write(&fe->dev.queues[0], sector + i * 128, &buf));
	}
	vblk_mem_release(&fe->dev.mem, mark);
}

TEST_F(serve_image, image_file_is_served_with_its_size_and_data)
{
	static char log[LOG_SIZE];
	char want[256];
	uint8_t *file = malloc(8 * 64 * KiB);
	struct vu_opts opts = { 0 };
	uint64_t dio;
	unsigned int i;
	int num, fd, ret;

	ASSERT_NE(NULL, file);
	num = serve_image_start(_metadata, self);
	ASSERT_LE(0, num);
	snprintf(want, sizeof(want), ": serving %s (/dev/loop%d), 1 queue, ",
		 self->file, num);
	EXPECT_TRUE(log_has(&self->srv, want));
	/*
	 * Direct I/O where the file system has it, else a line before that
	 * one says so.
	 */
	snprintf(want, sizeof(want), "loop%d", num);
	ASSERT_EQ(0, vblk_sysfs_u64(want, "loop/dio", &dio));
	snprintf(want, sizeof(want), "%s: no direct I/O on its file system: /dev/loop%d goes through the page cache",
		 self->file, num);
	EXPECT_EQ(!dio, !!strstr(vu_server_log(&self->srv, log, sizeof(log)), want));
	TH_LOG("direct I/O on the file (tmpfs): %s", dio ? "yes" : "no");
	/* The device is the helper's alone: one descriptor, its own. */
	EXPECT_EQ(1, fds_on_loop(self->srv.pid, num));

	ret = vu_frontend_open(&self->fe, self->srv.sock, &opts);
	ASSERT_EQ(0, ret) TH_LOG("front-end: %s", strerror(-ret));
	EXPECT_EQ(IMAGE_SIZE / VBLK_SECTOR_SIZE, le64toh(self->fe.config.capacity));
	image_write(_metadata, &self->fe, 8, 4096, 70);
	/* In the file, byte for byte. */
	fd = open(self->file, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(8 * 64 * KiB, pread(fd, file, 8 * 64 * KiB, 4096 * VBLK_SECTOR_SIZE));
	close(fd);
	for (i = 0; i < 8; i++)
		EXPECT_EQ(-1, vblk_pattern_check(file + i * 64 * KiB, 64 * KiB, 70 + i))
			TH_LOG("block %u", i);
	free(file);
}

TEST_F(serve_image, the_loop_device_goes_when_serve_exits_on_sigterm)
{
	struct vu_opts opts = { 0 };
	int num, status, ret;

	num = serve_image_start(_metadata, self);
	ASSERT_LE(0, num);
	/* With a front-end that did I/O: the kernel device holds the loop too. */
	ret = vu_frontend_open(&self->fe, self->srv.sock, &opts);
	ASSERT_EQ(0, ret) TH_LOG("front-end: %s", strerror(-ret));
	image_write(_metadata, &self->fe, 1, 0, 1);
	ASSERT_LE(0, vu_server_stop(&self->srv, SIGTERM, WAIT_MS, &status));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	EXPECT_EQ(0, loops_of(self->file, &num));
}

TEST_F(serve_image, the_loop_device_goes_when_serve_is_killed)
{
	struct vu_opts opts = { 0 };
	int num, ret;

	num = serve_image_start(_metadata, self);
	ASSERT_LE(0, num);
	ret = vu_frontend_open(&self->fe, self->srv.sock, &opts);
	ASSERT_EQ(0, ret) TH_LOG("front-end: %s", strerror(-ret));
	image_write(_metadata, &self->fe, 1, 0, 1);
	ASSERT_LE(0, vu_server_stop(&self->srv, SIGKILL, WAIT_MS, NULL));
	EXPECT_EQ(0, loops_of(self->file, &num));
}

/*
 * wbytes of device @dev in the io.stat of cgroup @dir, 0 if not listed;
 * its line in @line ("" if none).
 */
static uint64_t cgroup_wbytes(const char *dir, dev_t dev, char line[512])
{
	char path[128], key[32];
	unsigned long long v = 0;
	const char *w;
	FILE *f;

	snprintf(path, sizeof(path), "%s/io.stat", dir);
	snprintf(key, sizeof(key), "%u:%u ", major(dev), minor(dev));
	line[0] = '\0';
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, 512, f)) {
		w = strstr(line, " wbytes=");
		if (!strncmp(line, key, strlen(key)) && w) {
			v = strtoull(w + 8, NULL, 10);
			line[strcspn(line, "\n")] = '\0';
			break;
		}
		line[0] = '\0';
	}
	fclose(f);
	return v;
}

/*
 * The guest's I/O is the helper's in cgroup v2: serve started in a cgroup
 * of its own (with the io controller), the bytes a front-end writes
 * through the disk show in that cgroup's io.stat for the backend, whether
 * the vhost worker is a kernel thread that joined the owner's cgroups
 * (before Linux 6.4) or a thread of the helper. So io.max on it applies.
 */
TEST_F(serve_image, guest_writes_are_accounted_to_the_helpers_io_cgroup)
{
	struct vu_opts opts = { 0 };
	char path[96], dev[32], line[512];
	uint64_t before, after;
	struct stat st;
	int num, ret;

	ASSERT_EQ(0, vblk_write_file(CGROUP_ROOT "/cgroup.subtree_control", "+io"));
	snprintf(self->cgroup, sizeof(self->cgroup), CGROUP_ROOT "/vblk-io-%d",
		 (int)getpid());
	ASSERT_EQ(0, mkdir(self->cgroup, 0755));
	/* serve is born in it: this process is there while it forks. */
	snprintf(path, sizeof(path), "%s/cgroup.procs", self->cgroup);
	ASSERT_EQ(0, vblk_write_file(path, "0"));
	num = serve_image_start(_metadata, self);
	ASSERT_EQ(0, vblk_write_file(CGROUP_ROOT "/cgroup.procs", "0"));
	ASSERT_LE(0, num);
	snprintf(dev, sizeof(dev), "/dev/loop%d", num);
	ASSERT_EQ(0, stat(dev, &st));

	ret = vu_frontend_open(&self->fe, self->srv.sock, &opts);
	ASSERT_EQ(0, ret) TH_LOG("front-end: %s", strerror(-ret));
	before = cgroup_wbytes(self->cgroup, st.st_rdev, line);
	image_write(_metadata, &self->fe, 16, 0, 5);
	after = cgroup_wbytes(self->cgroup, st.st_rdev, line);
	TH_LOG("io.stat wbytes for %s: %llu before, %llu after 1 MiB written: %s",
	       dev, (unsigned long long)before, (unsigned long long)after, line);
	EXPECT_LE(before + 16 * 64 * KiB, after);
}

TEST_HARNESS_MAIN
