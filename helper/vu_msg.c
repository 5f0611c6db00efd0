// SPDX-License-Identifier: GPL-2.0
/*
 * The vhost-user message layer. See vu_msg.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "vu_msg.h"

static const char *const request_names[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = "GET_FEATURES",
	[VU_SET_FEATURES] = "SET_FEATURES",
	[VU_SET_OWNER] = "SET_OWNER",
	[VU_RESET_OWNER] = "RESET_OWNER",
	[VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VU_SET_LOG_BASE] = "SET_LOG_BASE",
	[VU_SET_LOG_FD] = "SET_LOG_FD",
	[VU_SET_VRING_NUM] = "SET_VRING_NUM",
	[VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VU_SET_VRING_BASE] = "SET_VRING_BASE",
	[VU_GET_VRING_BASE] = "GET_VRING_BASE",
	[VU_SET_VRING_KICK] = "SET_VRING_KICK",
	[VU_SET_VRING_CALL] = "SET_VRING_CALL",
	[VU_SET_VRING_ERR] = "SET_VRING_ERR",
	[VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VU_SEND_RARP] = "SEND_RARP",
	[VU_NET_SET_MTU] = "NET_SET_MTU",
	[VU_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
	[VU_IOTLB_MSG] = "IOTLB_MSG",
	[VU_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
	[VU_GET_CONFIG] = "GET_CONFIG",
	[VU_SET_CONFIG] = "SET_CONFIG",
	[VU_CREATE_CRYPTO_SESSION] = "CREATE_CRYPTO_SESSION",
	[VU_CLOSE_CRYPTO_SESSION] = "CLOSE_CRYPTO_SESSION",
	[VU_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
	[VU_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
	[VU_POSTCOPY_END] = "POSTCOPY_END",
	[VU_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
	[VU_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
	[VU_GPU_SET_SOCKET] = "GPU_SET_SOCKET",
	[VU_RESET_DEVICE] = "RESET_DEVICE",
	[VU_VRING_KICK] = "VRING_KICK",
	[VU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
	[VU_ADD_MEM_REG] = "ADD_MEM_REG",
	[VU_REM_MEM_REG] = "REM_MEM_REG",
	[VU_SET_STATUS] = "SET_STATUS",
	[VU_GET_STATUS] = "GET_STATUS",
};

const char *vu_request_name(uint32_t request)
{
	if (request < VU_REQUEST_MAX && request_names[request])
		return request_names[request];
	return "unknown request";
}

/* ------------------------------------------------------------------------
 * Reading and sending
 */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void vu_msg_close_fds(struct vu_msg *msg)
{
	unsigned int i;

	for (i = 0; i < msg->nfds; i++)
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
	msg->nfds = 0;
}

/* 0 when @sock is readable; -EINTR when @cancel_fd is; -ETIMEDOUT. */
static int wait_readable(int sock, int cancel_fd, int64_t deadline)
{
	struct pollfd pfd[2] = {
		{ .fd = sock, .events = POLLIN },
		{ .fd = cancel_fd, .events = POLLIN },
	};
	int timeout, ret;

	for (;;) {
		timeout = -1;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			timeout = left > INT32_MAX ? INT32_MAX : (int)left;
		}
		ret = poll(pfd, cancel_fd >= 0 ? 2 : 1, timeout);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -errno;
		if (!ret)
			return -ETIMEDOUT;
		if (cancel_fd >= 0 && pfd[1].revents)
			return -EINTR;
		return 0;
	}
}

/* Takes the descriptors of @mh into @msg; false when they did not fit. */
static bool take_fds(struct msghdr *mh, struct vu_msg *msg)
{
	struct cmsghdr *c;
	bool fit = !(mh->msg_flags & MSG_CTRUNC);

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n, i;
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (msg->nfds < VU_MAX_FDS) {
				msg->fds[msg->nfds++] = fd;
			} else {
				close(fd);
				fit = false;
			}
		}
	}
	return fit;
}

/*
 * Reads exactly @len bytes into @buf. @first: nothing of the message was
 * read yet (wait without limit; an end of stream here is clean).
 */
static int recv_exact(int sock, void *buf, size_t len, struct vu_msg *msg,
		      int cancel_fd, int timeout_ms, bool first)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} control;
	int64_t deadline = first ? -1 : now_ms() + timeout_ms;
	size_t got = 0;
	bool fds_ok = true;

	while (got < len) {
		struct iovec iov = { (char *)buf + got, len - got };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = control.buf,
			.msg_controllen = sizeof(control.buf),
		};
		ssize_t n;
		int ret;

		ret = wait_readable(sock, cancel_fd, deadline);
		if (ret)
			return ret;
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		if (!take_fds(&mh, msg))
			fds_ok = false;
		if (n == 0)
			return first && !got ? -ECONNRESET : -EPROTO;
		got += n;
		if (first)
			deadline = now_ms() + timeout_ms;
	}
	return fds_ok ? 0 : -E2BIG;
}

int vu_msg_recv(int sock, struct vu_msg *msg, int cancel_fd, int timeout_ms)
{
	int ret;

	msg->nfds = 0;
	ret = recv_exact(sock, &msg->hdr, sizeof(msg->hdr), msg, cancel_fd,
			 timeout_ms, true);
	if (!ret && (msg->hdr.flags & VU_VERSION_MASK) != VU_VERSION)
		ret = -EPROTO;
	if (!ret && msg->hdr.size > VU_MAX_PAYLOAD)
		ret = -EMSGSIZE;
	if (!ret && msg->hdr.size)
		ret = recv_exact(sock, &msg->payload, msg->hdr.size, msg,
				 cancel_fd, timeout_ms, false);
	if (ret == -E2BIG)
		ret = -EPROTO;
	if (ret)
		vu_msg_close_fds(msg);
	return ret;
}

static int send_msg(int sock, uint32_t request, uint32_t flags,
		    const void *payload, uint32_t size)
{
	struct vu_hdr hdr = {
		.request = request,
		.flags = flags,
		.size = size,
	};
	struct iovec iov[2] = {
		{ &hdr, sizeof(hdr) },
		{ (void *)payload, size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	ssize_t n;

	do {
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == sizeof(hdr) + size ? 0 : -EIO;
}

int vu_msg_reply(int sock, uint32_t request, const void *payload,
		 uint32_t size)
{
	return send_msg(sock, request, VU_VERSION | VU_FLAG_REPLY, payload, size);
}

int vu_msg_notify(int sock, uint32_t request)
{
	return send_msg(sock, request, VU_VERSION, NULL, 0);
}

/* ------------------------------------------------------------------------
 * Validation
 */

/* Payload size and descriptor count of a request, when they are fixed. */
struct shape {
	bool known;
	uint32_t size;
	unsigned int nfds;
};

static const struct shape fixed_shapes[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = { true, 0, 0 },
	[VU_SET_FEATURES] = { true, 8, 0 },
	[VU_SET_OWNER] = { true, 0, 0 },
	[VU_RESET_OWNER] = { true, 0, 0 },
	[VU_SET_LOG_BASE] = { true, sizeof(struct vu_log), 1 },
	[VU_SET_LOG_FD] = { true, 0, 1 },
	[VU_SET_BACKEND_REQ_FD] = { true, 0, 1 },
	[VU_SET_VRING_NUM] = { true, sizeof(struct vu_vring_state), 0 },
	[VU_SET_VRING_ADDR] = { true, sizeof(struct vu_vring_addr), 0 },
	[VU_SET_VRING_BASE] = { true, sizeof(struct vu_vring_state), 0 },
	[VU_GET_VRING_BASE] = { true, sizeof(struct vu_vring_state), 0 },
	[VU_GET_PROTOCOL_FEATURES] = { true, 0, 0 },
	[VU_SET_PROTOCOL_FEATURES] = { true, 8, 0 },
	[VU_GET_QUEUE_NUM] = { true, 0, 0 },
	[VU_SET_VRING_ENABLE] = { true, sizeof(struct vu_vring_state), 0 },
	[VU_RESET_DEVICE] = { true, 0, 0 },
	[VU_GET_MAX_MEM_SLOTS] = { true, 0, 0 },
	[VU_ADD_MEM_REG] = { true, sizeof(struct vu_mem_reg), 1 },
};

int vu_msg_check(const struct vu_hdr *hdr, const union vu_payload *payload,
		 unsigned int nfds, const char **why)
{
	uint32_t req = hdr->request, size = hdr->size;
	unsigned int want_fds;

	if (hdr->flags & VU_FLAG_REPLY) {
		*why = "reply flag set in a request";
		return -EPROTO;
	}
	if (size > VU_MAX_PAYLOAD) {
		*why = "payload too large";
		return -EMSGSIZE;
	}
	switch (req) {
	case VU_SET_MEM_TABLE:
		if (size < 8) {
			*why = "payload shorter than its region count";
			return -EMSGSIZE;
		}
		if (payload->mem.nregions > VU_MEM_TABLE_REGIONS) {
			*why = "more than 8 regions";
			return -EMSGSIZE;
		}
		if (size != 8 + payload->mem.nregions *
			    sizeof(struct vu_region_desc)) {
			*why = "payload size does not match the region count";
			return -EMSGSIZE;
		}
		want_fds = payload->mem.nregions;
		break;
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		if (size != 8) {
			*why = "payload is not one u64";
			return -EMSGSIZE;
		}
		want_fds = payload->u64 & VU_VRING_NOFD ? 0 : 1;
		break;
	case VU_GET_CONFIG:
	case VU_SET_CONFIG:
		if (size < VU_CONFIG_HDR_SIZE) {
			*why = "payload shorter than the config header";
			return -EMSGSIZE;
		}
		if (payload->config.size > VU_MAX_CONFIG_SIZE ||
		    size != VU_CONFIG_HDR_SIZE + payload->config.size) {
			*why = "payload size does not match the config size";
			return -EMSGSIZE;
		}
		want_fds = 0;
		break;
	case VU_REM_MEM_REG:
		if (size != sizeof(struct vu_mem_reg)) {
			*why = "payload is not one region";
			return -EMSGSIZE;
		}
		/* Older front-ends send the region's fd along: allowed. */
		want_fds = nfds > 1 ? 1 : nfds;
		break;
	default:
		if (req >= VU_REQUEST_MAX || !fixed_shapes[req].known) {
			*why = "request not supported by this back-end";
			return -EOPNOTSUPP;
		}
		if (size != fixed_shapes[req].size) {
			*why = "wrong payload size";
			return -EMSGSIZE;
		}
		want_fds = fixed_shapes[req].nfds;
	}
	if (nfds != want_fds) {
		*why = want_fds ? "missing file descriptor" :
				  "unexpected file descriptors";
		if (want_fds && nfds > want_fds)
			*why = "too many file descriptors";
		return -EBADF;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Guest memory
 */

/* Whether [a, a + len) and [b, b + blen) intersect; both lengths > 0. */
static bool ranges_overlap(uint64_t a, uint64_t len, uint64_t b,
			   uint64_t blen)
{
	return a <= b + (blen - 1) && b <= a + (len - 1);
}

/* Whether [a, a + len) wraps around 2^64; len > 0. */
static bool range_wraps(uint64_t a, uint64_t len)
{
	return a > UINT64_MAX - (len - 1);
}

int vu_region_check(const struct vu_region_desc *d,
		    const struct vu_region_desc *others, unsigned int n,
		    const char **why)
{
	unsigned int i;

	if (!d->size) {
		*why = "region of size 0";
		return -EINVAL;
	}
	if (range_wraps(d->gpa, d->size) || range_wraps(d->uaddr, d->size)) {
		*why = "region wraps around the address space";
		return -EINVAL;
	}
	/* The mapping, offset + size bytes, must fit in off_t and size_t. */
	if (d->mmap_offset > (uint64_t)INT64_MAX ||
	    d->size > (uint64_t)INT64_MAX - d->mmap_offset ||
	    d->mmap_offset + d->size > SIZE_MAX) {
		*why = "mmap offset + size too large";
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (ranges_overlap(d->gpa, d->size, others[i].gpa,
				   others[i].size)) {
			*why = "region overlaps another in guest-physical addresses";
			return -EINVAL;
		}
		if (ranges_overlap(d->uaddr, d->size, others[i].uaddr,
				   others[i].size)) {
			*why = "region overlaps another in front-end addresses";
			return -EINVAL;
		}
	}
	return 0;
}

int vu_mem_table_check(const struct vu_mem_table *t, const char **why)
{
	unsigned int i;
	int ret;

	if (t->nregions > VU_MEM_TABLE_REGIONS) {
		*why = "more than 8 regions";
		return -EINVAL;
	}
	for (i = 0; i < t->nregions; i++) {
		/* Against the regions before it: every pair once. */
		ret = vu_region_check(&t->regions[i], t->regions, i, why);
		if (ret)
			return ret;
	}
	return 0;
}

int vu_mem_translate(const struct vu_mem *mem, uint64_t uaddr, uint64_t len,
		     uint64_t *out)
{
	unsigned int i;

	if (!len || range_wraps(uaddr, len))
		return -EFAULT;
	for (i = 0; i < mem->nregions && i < VU_MAX_MEM_SLOTS; i++) {
		const struct vu_region_desc *d = &mem->regions[i].desc;

		if (uaddr >= d->uaddr && uaddr - d->uaddr <= d->size - 1 &&
		    len <= d->size - (uaddr - d->uaddr)) {
			*out = (uint64_t)(uintptr_t)mem->regions[i].hva +
			       (uaddr - d->uaddr);
			return 0;
		}
	}
	return -EFAULT;
}

int vu_mem_find(const struct vu_mem *mem, const struct vu_region_desc *desc)
{
	unsigned int i;

	for (i = 0; i < mem->nregions && i < VU_MAX_MEM_SLOTS; i++) {
		const struct vu_region_desc *d = &mem->regions[i].desc;

		if (d->gpa == desc->gpa && d->size == desc->size &&
		    d->uaddr == desc->uaddr)
			return i;
	}
	return -ENOENT;
}

int vu_region_map(struct vu_region *r, const struct vu_region_desc *desc,
		  int fd)
{
	size_t len = desc->mmap_offset + desc->size;
	void *map;

	map = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	r->desc = *desc;
	r->map = map;
	r->map_len = len;
	r->hva = (uint8_t *)map + desc->mmap_offset;
	return 0;
}

void vu_region_unmap(struct vu_region *r)
{
	if (r->map)
		munmap(r->map, r->map_len);
	memset(r, 0, sizeof(*r));
}

int vu_ring_translate(const struct vu_mem *mem, const struct vu_vring_addr *a,
		      unsigned int num, struct vu_ring_hva *out,
		      const char **why)
{
	/* Split ring sizes, with the event index words. */
	uint64_t desc_len = 16ULL * num;
	uint64_t avail_len = 4 + 2ULL * num + 2;
	uint64_t used_len = 4 + 8ULL * num + 2;

	if (!num) {
		*why = "ring size not set";
		return -EINVAL;
	}
	if (vu_mem_translate(mem, a->desc, desc_len, &out->desc)) {
		*why = "descriptor table outside guest memory";
		return -EFAULT;
	}
	if (vu_mem_translate(mem, a->avail, avail_len, &out->avail)) {
		*why = "available ring outside guest memory";
		return -EFAULT;
	}
	if (vu_mem_translate(mem, a->used, used_len, &out->used)) {
		*why = "used ring outside guest memory";
		return -EFAULT;
	}
	return 0;
}
