// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the vhost-user message layer (helper/vu_msg.c).
 *
 * An input is a stream of records, each: one byte, the number of file
 * descriptors to attach (mod 10), then the message bytes: a 12-byte header
 * and up to header.size bytes of payload (fewer if the input ends: a
 * truncated message). Each input is checked twice:
 *
 * - through vu_msg_recv() on a socketpair, with the descriptors attached
 *   as SCM_RIGHTS: no crash, and every descriptor received is closed on
 *   every path (a leak aborts);
 * - through the pure checks, replaying the messages against a model of the
 *   back-end's state: vu_msg_check(), the memory table checks of
 *   SET_MEM_TABLE / ADD_MEM_REG / REM_MEM_REG, and vu_ring_translate() of
 *   SET_VRING_ADDR with the size of SET_VRING_NUM, asserting what each
 *   promises (sizes, descriptor counts, translated rings inside a region).
 *
 * Region "mappings" are fake addresses: nothing is dereferenced.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vu_msg.h"

#define MAX_QUEUES	16

struct model {
	struct vu_mem mem;
	unsigned int num[MAX_QUEUES];
};

static void check(int cond)
{
	if (!cond)
		abort();
}

/* A fake address for region @i: far apart, never dereferenced. */
static uint8_t *fake_hva(unsigned int i)
{
	return (uint8_t *)(uintptr_t)(0x100000000000ULL * (i + 1));
}

static void add_region(struct model *m, const struct vu_region_desc *d)
{
	struct vu_region *r = &m->mem.regions[m->mem.nregions++];

	memset(r, 0, sizeof(*r));
	r->desc = *d;
	r->hva = fake_hva(m->mem.nregions);
}

/* Whether [addr, addr + len) of ours lies in one region's fake mapping. */
static int inside_region(const struct vu_mem *mem, uint64_t addr, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < mem->nregions; i++) {
		uint64_t start = (uint64_t)(uintptr_t)mem->regions[i].hva;

		if (addr >= start && addr - start <= mem->regions[i].desc.size - len)
			return 1;
	}
	return 0;
}

static void model_msg(struct model *m, const struct vu_hdr *hdr,
		      const union vu_payload *p, unsigned int nfds)
{
	const char *why = NULL;
	struct vu_region_desc others[VU_MAX_MEM_SLOTS];
	struct vu_ring_hva hva;
	unsigned int i;
	int ret;

	check(vu_request_name(hdr->request) != NULL);
	ret = vu_msg_check(hdr, p, nfds, &why);
	if (ret) {
		check(ret < 0 && why && *why);
		return;
	}
	check(hdr->size <= VU_MAX_PAYLOAD);
	switch (hdr->request) {
	case VU_SET_MEM_TABLE:
		check(p->mem.nregions <= VU_MEM_TABLE_REGIONS);
		check(nfds == p->mem.nregions);
		check(hdr->size == 8 + p->mem.nregions * sizeof(struct vu_region_desc));
		if (vu_mem_table_check(&p->mem, &why))
			return;
		m->mem.nregions = 0;
		for (i = 0; i < p->mem.nregions; i++)
			add_region(m, &p->mem.regions[i]);
		break;
	case VU_ADD_MEM_REG:
		check(nfds == 1);
		if (m->mem.nregions >= VU_MAX_MEM_SLOTS)
			return;
		for (i = 0; i < m->mem.nregions; i++)
			others[i] = m->mem.regions[i].desc;
		if (vu_region_check(&p->reg.region, others, m->mem.nregions, &why))
			return;
		add_region(m, &p->reg.region);
		break;
	case VU_REM_MEM_REG:
		check(nfds <= 1);
		ret = vu_mem_find(&m->mem, &p->reg.region);
		if (ret >= 0)
			m->mem.regions[ret] = m->mem.regions[--m->mem.nregions];
		break;
	case VU_SET_VRING_NUM:
		if (p->state.index < MAX_QUEUES && p->state.num <= 32768)
			m->num[p->state.index] = p->state.num;
		break;
	case VU_SET_VRING_ADDR:
		if (p->addr.index >= MAX_QUEUES)
			return;
		i = m->num[p->addr.index];
		if (vu_ring_translate(&m->mem, &p->addr, i, &hva, &why))
			return;
		check(i > 0);
		check(inside_region(&m->mem, hva.desc, 16ULL * i));
		check(inside_region(&m->mem, hva.avail, 6 + 2ULL * i));
		check(inside_region(&m->mem, hva.used, 6 + 8ULL * i));
		break;
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		check(nfds == (p->u64 & VU_VRING_NOFD ? 0 : 1));
		break;
	case VU_GET_CONFIG:
	case VU_SET_CONFIG:
		check(p->config.size <= VU_MAX_CONFIG_SIZE);
		check(hdr->size == VU_CONFIG_HDR_SIZE + p->config.size);
		break;
	}
}

#define FD_RANGE	256

/* Which of the descriptors below FD_RANGE are open. */
static void open_fds(bool open[FD_RANGE])
{
	int fd;

	for (fd = 0; fd < FD_RANGE; fd++)
		open[fd] = fcntl(fd, F_GETFD) != -1;
}

/* Aborts if a descriptor is open now that was not in @before: a leak. */
static void check_no_new_fds(const bool before[FD_RANGE])
{
	bool now[FD_RANGE];
	int fd;

	open_fds(now);
	for (fd = 0; fd < FD_RANGE; fd++)
		check(!now[fd] || before[fd]);
}

/* Sends the records' bytes with their descriptors; the helper's view. */
static void through_socket(const uint8_t *data, size_t size, int devnull)
{
	bool before[FD_RANGE];
	int sv[2];
	struct vu_msg msg;
	size_t off = 0;

	open_fds(before);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return;
	while (off < size) {
		unsigned int nfds = data[off++] % 10;
		union {
			char buf[CMSG_SPACE(sizeof(int) * 9)];
			struct cmsghdr align;
		} control;
		size_t len = size - off;
		struct vu_hdr hdr;
		struct iovec iov;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		int fds[9];
		unsigned int i;

		if (len >= sizeof(hdr)) {
			memcpy(&hdr, data + off, sizeof(hdr));
			if (hdr.size < len - sizeof(hdr))
				len = sizeof(hdr) + hdr.size;
		}
		iov = (struct iovec){ (void *)(data + off), len };
		if (nfds) {
			struct cmsghdr *c;

			memset(&control, 0, sizeof(control));
			for (i = 0; i < nfds; i++)
				fds[i] = devnull;
			mh.msg_control = control.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		if (sendmsg(sv[1], &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			break;
		off += len;
	}
	shutdown(sv[1], SHUT_WR);
	for (;;) {
		int ret = vu_msg_recv(sv[0], &msg, -1, 1000);

		if (ret) {
			check(msg.nfds == 0);
			break;
		}
		check(msg.nfds <= VU_MAX_FDS);
		check(msg.hdr.size <= VU_MAX_PAYLOAD);
		vu_msg_close_fds(&msg);
	}
	close(sv[0]);
	close(sv[1]);
	check_no_new_fds(before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int devnull = -1;
	struct model *m;
	size_t off = 0;

	if (devnull < 0)
		devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	through_socket(data, size, devnull);

	m = calloc(1, sizeof(*m));
	if (!m)
		return 0;
	while (off < size) {
		unsigned int nfds = data[off++] % 10;
		union vu_payload p;
		struct vu_hdr hdr;
		size_t n;

		if (size - off < sizeof(hdr))
			break;
		memcpy(&hdr, data + off, sizeof(hdr));
		off += sizeof(hdr);
		memset(&p, 0, sizeof(p));
		n = hdr.size < size - off ? hdr.size : size - off;
		if (n > sizeof(p))
			n = sizeof(p);
		memcpy(&p, data + off, n);
		off += n;
		model_msg(m, &hdr, &p, nfds);
	}
	free(m);
	return 0;
}
