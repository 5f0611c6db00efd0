/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The vhost-user message layer: wire format, reading a message with its file
 * descriptors, validating it, and the guest memory table built from
 * SET_MEM_TABLE / ADD_MEM_REG / REM_MEM_REG.
 *
 * vu_msg_check(), the vu_mem_* checks and vu_ring_translate() are pure: they
 * look at their arguments only, never print, and return 0 or a negative
 * errno with a reason string. A fuzzer calls them on arbitrary bytes.
 */
#ifndef VU_MSG_H
#define VU_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Front-end requests (the subset a block device back-end sees). */
enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_SEND_RARP = 19,
	VU_NET_SET_MTU = 20,
	VU_SET_BACKEND_REQ_FD = 21,
	VU_IOTLB_MSG = 22,
	VU_SET_VRING_ENDIAN = 23,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_CREATE_CRYPTO_SESSION = 26,
	VU_CLOSE_CRYPTO_SESSION = 27,
	VU_POSTCOPY_ADVISE = 28,
	VU_POSTCOPY_LISTEN = 29,
	VU_POSTCOPY_END = 30,
	VU_GET_INFLIGHT_FD = 31,
	VU_SET_INFLIGHT_FD = 32,
	VU_GPU_SET_SOCKET = 33,
	VU_RESET_DEVICE = 34,
	VU_VRING_KICK = 35,
	VU_GET_MAX_MEM_SLOTS = 36,
	VU_ADD_MEM_REG = 37,
	VU_REM_MEM_REG = 38,
	VU_SET_STATUS = 39,
	VU_GET_STATUS = 40,
	VU_REQUEST_MAX,
};

/* Header flags. */
#define VU_VERSION		0x1
#define VU_VERSION_MASK		0x3
#define VU_FLAG_REPLY		0x4
#define VU_FLAG_NEED_REPLY	0x8

/* Virtio feature bit that enables the protocol features. */
#define VU_F_PROTOCOL_FEATURES	30

/* Protocol feature bits. */
#define VU_PROTOCOL_F_MQ		0
#define VU_PROTOCOL_F_LOG_SHMFD		1
#define VU_PROTOCOL_F_RARP		2
#define VU_PROTOCOL_F_REPLY_ACK		3
#define VU_PROTOCOL_F_BACKEND_REQ	5
#define VU_PROTOCOL_F_CONFIG		9
#define VU_PROTOCOL_F_INFLIGHT_SHMFD	12
#define VU_PROTOCOL_F_RESET_DEVICE	13
#define VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15

/* SET_VRING_KICK/CALL/ERR payload. */
#define VU_VRING_IDX_MASK	0xffULL
#define VU_VRING_NOFD		(1ULL << 8)

/* Regions in one SET_MEM_TABLE, and so file descriptors in one message. */
#define VU_MEM_TABLE_REGIONS	8
#define VU_MAX_FDS		VU_MEM_TABLE_REGIONS
/* Regions the table holds with ADD_MEM_REG (GET_MAX_MEM_SLOTS). */
#define VU_MAX_MEM_SLOTS	32
/* Largest config space transfer. */
#define VU_MAX_CONFIG_SIZE	256

struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));

struct vu_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));

struct vu_vring_addr {
	uint32_t index;
	uint32_t flags;		/* bit VHOST_VRING_F_LOG */
	uint64_t desc;		/* the front-end's virtual addresses */
	uint64_t used;
	uint64_t avail;
	uint64_t log;		/* guest-physical address of the used ring */
} __attribute__((packed));

struct vu_region_desc {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;		/* the front-end's virtual address */
	uint64_t mmap_offset;	/* offset of the region in its fd */
} __attribute__((packed));

struct vu_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vu_region_desc regions[VU_MEM_TABLE_REGIONS];
} __attribute__((packed));

struct vu_mem_reg {
	uint64_t padding;
	struct vu_region_desc region;
} __attribute__((packed));

struct vu_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
} __attribute__((packed));

#define VU_CONFIG_HDR_SIZE	12
struct vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t data[VU_MAX_CONFIG_SIZE];
} __attribute__((packed));

struct vu_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
} __attribute__((packed));

union vu_payload {
	uint64_t u64;
	struct vu_vring_state state;
	struct vu_vring_addr addr;
	struct vu_mem_table mem;
	struct vu_mem_reg reg;
	struct vu_log log;
	struct vu_config config;
	struct vu_inflight inflight;
};

#define VU_MAX_PAYLOAD		sizeof(union vu_payload)

/* A message as read: header, payload and the descriptors that came with it. */
struct vu_msg {
	struct vu_hdr hdr;
	union vu_payload payload;
	int fds[VU_MAX_FDS];
	unsigned int nfds;
};

/* The request's name ("SET_MEM_TABLE"), or "unknown". */
const char *vu_request_name(uint32_t request);

/*
 * Reads one message from @sock into @msg. Waits for its first byte as long
 * as it takes, then at most @timeout_ms for the rest; returns early with
 * -EINTR when @cancel_fd (if >= 0) becomes readable. Returns 0, -ECONNRESET
 * on a clean end of stream before a header, -EPROTO for a truncated message,
 * too many descriptors or a bad version, -EMSGSIZE for a payload larger than
 * any request has (nothing more is read), -ETIMEDOUT, or another negative
 * errno. On any error msg->nfds is 0: every descriptor received is closed.
 */
int vu_msg_recv(int sock, struct vu_msg *msg, int cancel_fd, int timeout_ms);

/* Closes the descriptors still in @msg (those nobody took). */
void vu_msg_close_fds(struct vu_msg *msg);

/*
 * Checks that @hdr's payload size and @nfds suit the request: -EMSGSIZE for a
 * wrong size, -EBADF for a wrong number of descriptors, -EPROTO for a reply
 * flag, -EOPNOTSUPP for a request this back-end does not know. Pure; *why
 * gets a reason for the log.
 */
int vu_msg_check(const struct vu_hdr *hdr, const union vu_payload *payload,
		 unsigned int nfds, const char **why);

/* Sends a reply to @request: flags version 1 | REPLY, @size payload bytes. */
int vu_msg_reply(int sock, uint32_t request, const void *payload,
		 uint32_t size);

/* Back-end requests, sent on the front-end's SET_BACKEND_REQ_FD channel. */
enum { VU_BACKEND_CONFIG_CHANGE_MSG = 2 };

/*
 * Sends back-end request @request without payload and without asking for
 * a reply; never waits: -EAGAIN when the front-end does not read its
 * channel.
 */
int vu_msg_notify(int sock, uint32_t request);

/* ------------------------------------------------------------------------
 * Guest memory table
 */

struct vu_region {
	struct vu_region_desc desc;
	void *map;		/* our mapping of the fd from offset 0 */
	size_t map_len;		/* mmap_offset + size */
	uint8_t *hva;		/* map + mmap_offset: the region's first byte */
};

struct vu_mem {
	struct vu_region regions[VU_MAX_MEM_SLOTS];
	unsigned int nregions;
};

/*
 * Whether @desc can be a region next to the @n regions of @others: non-zero
 * size, no overflow of gpa, uaddr or mmap offset + size, and no overlap with
 * any of them in guest-physical or front-end address. Pure.
 */
int vu_region_check(const struct vu_region_desc *desc,
		    const struct vu_region_desc *others, unsigned int n,
		    const char **why);

/* vu_region_check on each region of a SET_MEM_TABLE payload. Pure. */
int vu_mem_table_check(const struct vu_mem_table *table, const char **why);

/*
 * Our address, in *out, for the @len (> 0) bytes at front-end address
 * @uaddr, which must lie in one region: 0, or -EFAULT when they do not. Pure.
 */
int vu_mem_translate(const struct vu_mem *mem, uint64_t uaddr, uint64_t len,
		     uint64_t *out);

/* The index of the region equal to @desc (gpa, size, uaddr), or -ENOENT. */
int vu_mem_find(const struct vu_mem *mem, const struct vu_region_desc *desc);

/*
 * Maps @desc from @fd (MAP_SHARED, mmap_offset + size bytes) into @r.
 * The caller keeps @fd. Returns 0 or a negative errno.
 */
int vu_region_map(struct vu_region *r, const struct vu_region_desc *desc,
		  int fd);
void vu_region_unmap(struct vu_region *r);

/* Ring addresses, ours, of one virtqueue. */
struct vu_ring_hva {
	uint64_t desc, avail, used;
};

/*
 * Translates the rings of a queue of @num entries at the front-end addresses
 * of @addr: each ring must fit in one region. Pure; -EFAULT with *why.
 */
int vu_ring_translate(const struct vu_mem *mem, const struct vu_vring_addr *addr,
		      unsigned int num, struct vu_ring_hva *out,
		      const char **why);

#endif /* VU_MSG_H */
