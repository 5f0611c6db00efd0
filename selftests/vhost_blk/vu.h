/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vu: a vhost-user front-end for the selftests, negotiating the way QEMU
 * 7.2's vhost-user-blk does, over the memory and queues of a struct
 * vblk_dev (see vblk.h). Once started, the vblk_queue and request functions
 * drive the rings directly: the back-end only saw the control messages.
 *
 * The guest memory is the vblk memfd, shared with the back-end over the
 * socket; the ring addresses sent are this process's own (front-end)
 * addresses, which the back-end must translate.
 *
 * Also here: raw message helpers for bad-input tests, and vu_server_*, the
 * `vhostblk-setup serve` child process of a test.
 *
 * Functions return 0 (or a count) or a negative errno; none prints.
 */
#ifndef VU_H
#define VU_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vblk.h"

/* Requests (vhost-user specification numbering). */
enum {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SET_BACKEND_REQ_FD = 21,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
};

#define VHOST_USER_VERSION		0x1
#define VHOST_USER_REPLY_MASK		0x4
#define VHOST_USER_NEED_REPLY_MASK	0x8
#define VHOST_USER_F_PROTOCOL_FEATURES	30
#define VHOST_USER_VRING_NOFD_MASK	(1ULL << 8)

#define VHOST_USER_PROTOCOL_F_MQ		0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD		1
#define VHOST_USER_PROTOCOL_F_REPLY_ACK		3
#define VHOST_USER_PROTOCOL_F_BACKEND_REQ	5
#define VHOST_USER_PROTOCOL_F_CONFIG		9
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE	13
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15

/* Back-end requests, on the channel of SET_BACKEND_REQ_FD. */
#define VHOST_USER_BACKEND_CONFIG_CHANGE_MSG	2

#define VU_MAX_MSG_FDS		8
#define VU_MAX_PAYLOAD_SIZE	4096

struct vu_msg_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));

struct vu_region_msg {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
} __attribute__((packed));

struct vu_mem_table_msg {
	uint32_t nregions;
	uint32_t padding;
	struct vu_region_msg regions[8];
} __attribute__((packed));

struct vu_mem_reg_msg {
	uint64_t padding;
	struct vu_region_msg region;
} __attribute__((packed));

struct vu_state_msg {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));

struct vu_addr_msg {
	uint32_t index;
	uint32_t flags;
	uint64_t desc, used, avail, log;
} __attribute__((packed));

struct vu_config_msg {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t data[256];
} __attribute__((packed));

/* ------------------------------------------------------------------------
 * Raw messages
 */

/* Connects to @path, retrying while it is missing or refuses (the back-end
 * starting up) for up to @timeout_ms. A descriptor or a negative errno. */
int vu_connect(const char *path, int timeout_ms);
/* Sends one message: header, @size payload bytes, @nfds descriptors. */
int vu_send(int sock, uint32_t request, uint32_t flags, const void *payload,
	    uint32_t size, const int *fds, unsigned int nfds);
/* Receives one message, payload up to @max bytes: its payload size, or
 * -ECONNRESET at the end of the stream, -ETIMEDOUT, -EPROTO. */
int vu_recv(int sock, struct vu_msg_hdr *hdr, void *payload, size_t max,
	    int timeout_ms);
/* Waits for the reply to @request (REPLY flag, same request): its size. */
int vu_recv_reply(int sock, uint32_t request, void *payload, size_t max,
		  int timeout_ms);
/* Sends @request with NEED_REPLY and returns the acknowledgement: 0 for
 * success, -EREMOTEIO for a non-zero one, -ECONNRESET if it disconnected. */
int vu_send_ack(int sock, uint32_t request, const void *payload,
		uint32_t size, const int *fds, unsigned int nfds);
/* A GET_* request answered with a u64. */
int vu_get_u64(int sock, uint32_t request, uint64_t *val);

/* ------------------------------------------------------------------------
 * Front-end
 */

struct vu_opts {
	struct vblk_opts vblk;	/* memory, queues, transport features */
	/* SET_MEM_TABLE even when the back-end offers CONFIGURE_MEM_SLOTS
	 * (with it, QEMU adds the regions one by one with ADD_MEM_REG). */
	bool mem_table;
	/* Virtio-blk features to accept if offered (default: all offered). */
	uint64_t blk_features;
	/* Negotiate BACKEND_REQ and give the back-end a channel, as QEMU
	 * does: the other end is fe->channel. */
	bool backend_channel;
};

struct vu_frontend {
	int sock;
	struct vu_opts opts;
	struct vblk_dev dev;	/* dev.fd is -1: no vhost device here */
	uint64_t device_features;	/* GET_FEATURES */
	uint64_t protocol_features;	/* negotiated */
	uint64_t queue_num;	/* GET_QUEUE_NUM */
	uint64_t max_mem_slots;	/* GET_MAX_MEM_SLOTS, 0 if not asked */
	/* GET_CONFIG of the bytes QEMU 7.2 reads (to write_zeroes_may_unmap);
	 * the secure-erase fields stay 0. */
	struct vhost_blk_config config;
	uint16_t base[VHOST_BLK_MAX_QUEUES];	/* SET_VRING_BASE at start */
	/* The back-end has the memory regions: ADD_MEM_REG sends them once
	 * per connection, as QEMU sends only changes, also after a
	 * RESET_DEVICE (QEMU 9 and later send one at every virtio reset). */
	bool mem_sent;
	bool started;
	int channel;		/* our end of the back-end's channel, or -1 */
};

/*
 * Connects and negotiates as QEMU's device realize does: GET_FEATURES,
 * GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, SET_OWNER,
 * GET_FEATURES, SET_VRING_CALL per queue, GET_CONFIG. Allocates the guest
 * memory and the queues on the first call; a reconnect keeps them.
 */
int vu_frontend_connect(struct vu_frontend *fe, const char *path,
			const struct vu_opts *opts);
/*
 * Starts the device as QEMU does when the guest driver is ready:
 * SET_FEATURES, the memory (SET_MEM_TABLE or ADD_MEM_REG, with NEED_REPLY),
 * per queue SET_VRING_NUM, _BASE (fe->base), _ADDR, _KICK, _CALL, _ERR, then
 * SET_VRING_ENABLE 1 on each.
 */
int vu_frontend_start(struct vu_frontend *fe);
/* vu_frontend_connect, then vu_frontend_start. */
int vu_frontend_open(struct vu_frontend *fe, const char *path,
		     const struct vu_opts *opts);
/*
 * Stops as QEMU does: SET_VRING_ENABLE 0 on each queue, then GET_VRING_BASE
 * on each; the bases go to fe->base (and @bases if not NULL).
 */
int vu_frontend_stop(struct vu_frontend *fe, uint16_t *bases);
/* Closes the connection only; memory and rings stay. */
void vu_frontend_disconnect(struct vu_frontend *fe);
/*
 * What QEMU does when the back-end went away and came back: every queue
 * restarts at its used index (requests the back-end took but did not
 * complete would be offered again), on a new connection, same rings.
 */
int vu_frontend_reconnect(struct vu_frontend *fe, const char *path);
/* Disconnects and frees memory and queues; idempotent. */
void vu_frontend_close(struct vu_frontend *fe);

/* Region @i of the guest memory as the front-end describes it. */
struct vu_region_msg vu_frontend_region(const struct vu_frontend *fe,
					unsigned int i);

/* ------------------------------------------------------------------------
 * The back-end under test: `$VHOSTBLK_SETUP serve` as a child process
 */

struct vu_server {
	pid_t pid;
	char sock[108];
	int log_fd;		/* a memfd with its standard error */
};

/*
 * Starts `$VHOSTBLK_SETUP serve --backend @backend --socket <tmp>` with
 * the extra arguments @args (NULL-terminated, may be NULL) and waits for
 * the socket to appear. 0 or a negative errno (-ENOENT: no VHOSTBLK_SETUP).
 */
int vu_server_start(struct vu_server *s, const char *backend,
		    const char *const *args);
/*
 * Sends @sig (0: none) and waits up to @timeout_ms for the exit; SIGKILL
 * after that. *status (may be NULL) gets the wait status. Returns the
 * milliseconds it took, or a negative errno. Idempotent.
 */
int vu_server_stop(struct vu_server *s, int sig, int timeout_ms, int *status);
/* Its standard error so far, NUL-terminated, in @buf. */
const char *vu_server_log(struct vu_server *s, char *buf, size_t len);
/*
 * utime + stime of the server process's own threads, in clock ticks: its
 * vhost workers (threads of it since Linux 6.4) are not counted.
 */
int vu_server_cpu_ticks(struct vu_server *s, uint64_t *ticks);

#endif /* VU_H */
