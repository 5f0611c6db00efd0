// SPDX-License-Identifier: GPL-2.0
/*
 * blkcheck: write, verify and discard self-describing blocks on a block
 * device, with direct I/O. The end-to-end tests run it in the second-level
 * guest (statically linked, in the guest's initramfs) and on the test VM's
 * side of the same disk, so both check the very same bytes.
 *
 * Every 4 KiB block b of generation g is a 32-byte header (magic, b, g, and
 * an FNV-1a checksum of the rest) followed by a xorshift stream seeded from
 * b and g. "verify" compares blocks byte for byte with what "write" made;
 * "zero" wants zeros (a discarded range on a device that zeroes);
 * "stream" writes generation g over a range again and again, fsyncing every
 * N blocks and printing "FLUSHED <blocks>" after each fsync, until killed:
 * every block below the last number printed is on stable storage.
 *
 * "migrate" is the guest's half of a live-migration test: pass after pass,
 * it writes the range with a new generation and reads it back into the next
 * of HISTORY buffers that only the device writes (by DMA), until block
 * MARKER holds a blkcheck block of generation 1 (written on the backend
 * once the migration is over). Then every buffer must hold the generation
 * its last pass read: a page the device wrote during the migration and the
 * dirty log missed would reach the destination stale. The buffers are
 * filled before the first pass, so that only the device writes them after.
 * "migrate: first pass done" tells the host when to start the migration;
 * at the end "migrate: P passes, S of B buffers stale" sums it up.
 *
 *   blkcheck [-c CPU] write|verify DEV FIRST COUNT GEN
 *   blkcheck [-c CPU] zero|discard DEV FIRST COUNT
 *   blkcheck [-c CPU] stream DEV FIRST COUNT GEN EVERY
 *   blkcheck [-c CPU] migrate DEV FIRST COUNT MARKER
 *
 * -c pins the process to one CPU, which sends its requests to that CPU's
 * queue. Exit status: 0 done and correct, 1 a check failed or I/O failed
 * (the first problem is printed), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/fs.h>

#define BLOCK		4096
#define MAGIC		0x4b4f4c42534f4856ULL	/* "VHOSBLOK" */
#define HISTORY		512			/* migrate's read buffers */
#define MIGRATE_GEN	100			/* migrate's first generation */

struct block_header {
	uint64_t magic;
	uint64_t block;
	uint64_t gen;
	uint64_t sum;
};

static uint64_t fnv1a(const unsigned char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (len--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Fills @buf with block @block of generation @gen. */
static void make_block(unsigned char *buf, uint64_t block, uint64_t gen)
{
	struct block_header h = { .magic = MAGIC, .block = block, .gen = gen };
	uint64_t x = (block + 1) * 0x9e3779b97f4a7c15ULL ^ (gen + 1) * 0xbf58476d1ce4e5b9ULL;
	size_t i;

	for (i = sizeof(h); i < BLOCK; i += sizeof(x)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, sizeof(x));
	}
	h.sum = fnv1a(buf + sizeof(h), BLOCK - sizeof(h));
	memcpy(buf, &h, sizeof(h));
}

/* Says what a block that is not the expected one holds instead. */
static void describe(const unsigned char *buf, uint64_t block, uint64_t gen)
{
	struct block_header h;

	memcpy(&h, buf, sizeof(h));
	if (h.magic != MAGIC)
		printf("block %" PRIu64 ": not a blkcheck block (want generation %" PRIu64 ")\n",
		       block, gen);
	else if (h.sum != fnv1a(buf + sizeof(h), BLOCK - sizeof(h)))
		printf("block %" PRIu64 ": checksum mismatch (header says block %" PRIu64
		       " generation %" PRIu64 ")\n", block, h.block, h.gen);
	else
		printf("block %" PRIu64 ": holds block %" PRIu64 " generation %" PRIu64
		       ", want generation %" PRIu64 "\n", block, h.block, h.gen, gen);
}

static int io_error(const char *what, uint64_t block, ssize_t ret)
{
	printf("%s block %" PRIu64 ": %s\n", what, block,
	       ret < 0 ? strerror(errno) : "short transfer");
	return 1;
}

static int do_write(int fd, unsigned char *buf, uint64_t first, uint64_t count,
		    uint64_t gen, uint64_t every)
{
	uint64_t b, done = 0;
	ssize_t ret;

	for (;;) {
		for (b = first; b < first + count; b++) {
			make_block(buf, b, gen);
			ret = pwrite(fd, buf, BLOCK, (off_t)b * BLOCK);
			if (ret != BLOCK)
				return io_error("writing", b, ret);
			if (!every || (b - first + 1) % every)
				continue;
			if (fsync(fd))
				return io_error("flushing after", b, -1);
			done = b - first + 1 > done ? b - first + 1 : done;
			printf("FLUSHED %" PRIu64 "\n", done);
			fflush(stdout);
		}
		if (!every)
			return fsync(fd) ? io_error("flushing after", b - 1, -1) : 0;
	}
}

static int do_verify(int fd, unsigned char *buf, uint64_t first, uint64_t count,
		     uint64_t gen, int zero)
{
	static unsigned char want[BLOCK];
	uint64_t b;
	ssize_t ret;

	memset(want, 0, sizeof(want));
	for (b = first; b < first + count; b++) {
		ret = pread(fd, buf, BLOCK, (off_t)b * BLOCK);
		if (ret != BLOCK)
			return io_error("reading", b, ret);
		if (!zero)
			make_block(want, b, gen);
		if (memcmp(buf, want, BLOCK)) {
			if (zero)
				printf("block %" PRIu64 ": not zero\n", b);
			else
				describe(buf, b, gen);
			return 1;
		}
	}
	return 0;
}

static int do_discard(int fd, uint64_t first, uint64_t count)
{
	uint64_t range[2] = { first * BLOCK, count * BLOCK };

	if (ioctl(fd, BLKDISCARD, range)) {
		printf("BLKDISCARD: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

/* Whether block @marker of @fd holds a blkcheck block of generation 1. */
static int marker_set(int fd, unsigned char *buf, uint64_t marker)
{
	unsigned char want[BLOCK];

	make_block(want, marker, 1);
	return pread(fd, buf, BLOCK, (off_t)marker * BLOCK) == BLOCK &&
	       !memcmp(buf, want, BLOCK);
}

static int do_migrate(int fd, unsigned char *buf, uint64_t first, uint64_t count,
		      uint64_t marker)
{
	uint64_t gens[HISTORY], pass, i, b, stale = 0;
	unsigned char *hist, *dst;
	ssize_t ret;
	int err = 1;

	if (count > 64 || (marker >= first && marker < first + count)) {
		printf("migrate: at most 64 blocks, not including the marker\n");
		return 1;
	}
	if (posix_memalign((void **)&hist, BLOCK, HISTORY * count * BLOCK)) {
		printf("out of memory\n");
		return 1;
	}
	/*
	 * Fault every buffer in now: were a page first touched by the read
	 * into it, the kernel's zeroing of it (a CPU write, which the
	 * migration tracks by itself) would hide a dirty log that missed the
	 * device's write right after.
	 */
	memset(hist, 0x5a, HISTORY * count * BLOCK);
	for (pass = 0; !marker_set(fd, buf, marker); pass++) {
		gens[pass % HISTORY] = MIGRATE_GEN + pass;
		for (b = first; b < first + count; b++) {
			make_block(buf, b, MIGRATE_GEN + pass);
			ret = pwrite(fd, buf, BLOCK, (off_t)b * BLOCK);
			if (ret != BLOCK) {
				io_error("writing", b, ret);
				goto out;
			}
		}
		dst = hist + pass % HISTORY * count * BLOCK;
		ret = pread(fd, dst, count * BLOCK, (off_t)first * BLOCK);
		if (ret != (ssize_t)(count * BLOCK)) {
			io_error("reading", first, ret);
			goto out;
		}
		if (!pass) {
			/* The host migrates once there is something to check. */
			printf("migrate: first pass done\n");
			fflush(stdout);
		}
	}
	/* Every stale buffer counts: a control run reports how many. */
	for (i = 0; i < pass && i < HISTORY; i++) {
		for (b = 0; b < count; b++) {
			dst = hist + (i * count + b) * BLOCK;
			make_block(buf, first + b, gens[i]);
			if (!memcmp(dst, buf, BLOCK))
				continue;
			if (!stale++) {
				printf("buffer %" PRIu64 ": ", i);
				describe(dst, first + b, gens[i]);
			}
			break;
		}
	}
	printf("migrate: %" PRIu64 " passes, %" PRIu64 " of %" PRIu64 " buffers stale\n",
	       pass, stale, pass < HISTORY ? pass : HISTORY);
	if (stale)
		goto out;
	err = 0;
out:
	free(hist);
	return err;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || end == s || *end || *s == '-';
}

static int usage(void)
{
	fprintf(stderr,
		"usage: blkcheck [-c CPU] write|verify DEV FIRST COUNT GEN\n"
		"       blkcheck [-c CPU] zero|discard DEV FIRST COUNT\n"
		"       blkcheck [-c CPU] stream DEV FIRST COUNT GEN EVERY\n"
		"       blkcheck [-c CPU] migrate DEV FIRST COUNT MARKER\n");
	return 2;
}

int main(int argc, char **argv)
{
	uint64_t first, count, gen = 0, every = 0, cpu;
	const char *cmd;
	unsigned char *buf;
	cpu_set_t set;
	int fd, nargs, ret;

	if (argc > 2 && !strcmp(argv[1], "-c")) {
		if (parse_u64(argv[2], &cpu) || cpu >= CPU_SETSIZE)
			return usage();
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			printf("CPU %" PRIu64 ": %s\n", cpu, strerror(errno));
			return 1;
		}
		argc -= 2;
		argv += 2;
	}
	if (argc < 2)
		return usage();
	cmd = argv[1];
	if (!strcmp(cmd, "write") || !strcmp(cmd, "verify"))
		nargs = 4;
	else if (!strcmp(cmd, "zero") || !strcmp(cmd, "discard"))
		nargs = 3;
	else if (!strcmp(cmd, "stream"))
		nargs = 5;
	else if (!strcmp(cmd, "migrate"))
		nargs = 4;
	else
		return usage();
	if (argc != 2 + nargs || parse_u64(argv[3], &first) ||
	    parse_u64(argv[4], &count) || (nargs > 3 && parse_u64(argv[5], &gen)) ||
	    (nargs > 4 && (parse_u64(argv[6], &every) || !every)))
		return usage();

	fd = open(argv[2], (!strcmp(cmd, "verify") || !strcmp(cmd, "zero") ?
			    O_RDONLY : O_RDWR) | O_DIRECT);
	if (fd < 0) {
		printf("%s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	if (posix_memalign((void **)&buf, BLOCK, BLOCK)) {
		printf("out of memory\n");
		return 1;
	}
	if (!strcmp(cmd, "write"))
		ret = do_write(fd, buf, first, count, gen, 0);
	else if (!strcmp(cmd, "stream"))
		ret = do_write(fd, buf, first, count, gen, every);
	else if (!strcmp(cmd, "verify"))
		ret = do_verify(fd, buf, first, count, gen, 0);
	else if (!strcmp(cmd, "zero"))
		ret = do_verify(fd, buf, first, count, 0, 1);
	else if (!strcmp(cmd, "migrate"))
		ret = do_migrate(fd, buf, first, count, gen);
	else
		ret = do_discard(fd, first, count);
	free(buf);
	close(fd);
	return ret;
}
