/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vhost-blk: the "vhost_blk" generic netlink family, what every open
 * /dev/vhost-blk device is and does. Documentation/abi.rst describes the
 * commands; Documentation/netlink/vhost_blk.yaml is the family's spec.
 *
 * Every command needs CAP_NET_ADMIN (GENL_ADMIN_PERM) and is a "do" (one
 * device, by VHOST_BLK_A_DEV_ID) or a "dump" (every device). Counters are
 * u64 and count from the device's open, across owners (VHOST_RESET_OWNER
 * and a new VHOST_SET_OWNER keep them); they never go back.
 */
#ifndef _UAPI_LINUX_VHOST_BLK_NL_H
#define _UAPI_LINUX_VHOST_BLK_NL_H

#define VHOST_BLK_GENL_NAME		"vhost_blk"
#define VHOST_BLK_GENL_VERSION		1

enum vhost_blk_cmd {
	VHOST_BLK_CMD_UNSPEC,
	/* A device's identity and state: the VHOST_BLK_A_DEV_* attributes. */
	VHOST_BLK_CMD_DEV_GET,
	/*
	 * Its counters: VHOST_BLK_A_DEV_ID, a VHOST_BLK_A_STATS_QUEUE per
	 * queue and one VHOST_BLK_A_STATS_TOTAL, each a nest of
	 * VHOST_BLK_A_STAT_* attributes.
	 */
	VHOST_BLK_CMD_STATS_GET,

	__VHOST_BLK_CMD_MAX,
	VHOST_BLK_CMD_MAX = __VHOST_BLK_CMD_MAX - 1
};

/* VHOST_BLK_A_DEV_STATE */
enum vhost_blk_dev_state {
	/* Open; VHOST_SET_OWNER not called, or undone by VHOST_RESET_OWNER. */
	VHOST_BLK_STATE_NO_OWNER,
	/* Owned; no block device attached. */
	VHOST_BLK_STATE_NO_BACKEND,
	/* A block device attached, its queues served. */
	VHOST_BLK_STATE_RUNNING,
	/*
	 * Running, and a queue refused a malformed chain since it last
	 * started (its DRIVER_ERRORS grew).
	 */
	VHOST_BLK_STATE_QUEUE_ERROR,
	/*
	 * A block device attached, the queues not served: a stop is under
	 * way, or the owner's exit stopped waiting for its requests.
	 */
	VHOST_BLK_STATE_STOPPED,
};

/*
 * Top-level attributes. DEV_ID is the one a request may carry (a "do"),
 * every other one is the kernel's answer.
 *
 * DEV_ID (u32): the device's number, from its open to its release; numbers
 *	go round before one is used again.
 * DEV_OWNER_PID (u32): the owner's process id in the caller's pid
 *	namespace; absent without an owner or outside that namespace.
 * DEV_OWNER_COMM (string): the owner's command name at VHOST_SET_OWNER;
 *	absent when DEV_OWNER_PID is.
 * DEV_BACKEND_MAJOR, _MINOR (u32), DEV_BACKEND_NAME (string, as in
 *	/sys/block): the attached block device; absent without one.
 * DEV_READ_ONLY (u8): 1 when the guest sees the disk read-only; with a
 *	backend only.
 * DEV_FEATURES (u64): the features the owner set (VHOST_SET_FEATURES).
 * DEV_NUM_QUEUES (u32): the device's queues.
 * DEV_STATE (u32): enum vhost_blk_dev_state.
 * DEV_WORKER (u32, one per queue, in queue order): the thread id, in the
 *	caller's pid namespace, of the vhost worker that last served the
 *	queue's kicks; 0 before the first or outside that namespace.
 * STATS_TOTAL, STATS_QUEUE (nest): VHOST_BLK_A_STAT_* of all queues, of one.
 * DEV_POLL_US (u32, one per queue, in queue order): how long the queue's
 *	worker busy-polls after a batch, in microseconds
 *	(VHOST_SET_VRING_BUSYLOOP_TIMEOUT); 0 when it does not poll.
 */
enum vhost_blk_attr {
	VHOST_BLK_A_UNSPEC,
	VHOST_BLK_A_DEV_ID,
	VHOST_BLK_A_DEV_OWNER_PID,
	VHOST_BLK_A_DEV_OWNER_COMM,
	VHOST_BLK_A_DEV_BACKEND_MAJOR,
	VHOST_BLK_A_DEV_BACKEND_MINOR,
	VHOST_BLK_A_DEV_BACKEND_NAME,
	VHOST_BLK_A_DEV_READ_ONLY,
	VHOST_BLK_A_DEV_FEATURES,
	VHOST_BLK_A_DEV_NUM_QUEUES,
	VHOST_BLK_A_DEV_STATE,
	VHOST_BLK_A_DEV_WORKER,
	VHOST_BLK_A_STATS_TOTAL,
	VHOST_BLK_A_STATS_QUEUE,
	VHOST_BLK_A_PAD,
	VHOST_BLK_A_DEV_POLL_US,

	__VHOST_BLK_A_MAX,
	VHOST_BLK_A_MAX = __VHOST_BLK_A_MAX - 1
};

/*
 * Inside VHOST_BLK_A_STATS_TOTAL and _QUEUE. All u64 counters but QUEUE
 * (u32, the queue's index; per queue only) and LATENCY_HIST. A request is
 * counted once it is in the used ring: under its type, and under its status
 * when that is not OK.
 *
 * REQ_IN ... REQ_SECURE_ERASE: requests of each virtio-blk type; REQ_OTHER:
 *	of any other type (answered UNSUPP), or without a whole header.
 * SECTORS_READ, SECTORS_WRITTEN: 512-byte sectors of the IN and OUT
 *	requests that succeeded.
 * ERR_IOERR, ERR_UNSUPP: requests answered with that status.
 * INFLIGHT: requests taken from the avail ring and not yet in the used
 *	ring, now.
 * BOUNCED_REQS, BOUNCED_BYTES: requests whose data went through bounce
 *	pages (unaligned buffers), and their data bytes.
 * KICKS: passes of the queue's kick handler.
 * INTERRUPTS: signals of the queue's call eventfd.
 * USED_BATCHES: updates of the used ring, of one or more requests each.
 * DRIVER_ERRORS: chains refused as malformed (see Documentation/abi.rst),
 *	by the vhost core or by the device, and status bytes that could not be
 *	written (the driver took the memory away).
 * POLLED: reads and writes whose bio went REQ_POLLED and was reaped by the
 *	queue's worker polling the block device (a busy-polling queue on a
 *	device with poll queues; Documentation/admin-guide.rst).
 * LATENCY_HIST (binary): VHOST_BLK_LAT_BUCKETS u64 in host byte order.
 *	Bucket i counts the requests whose time from the avail ring to the
 *	used ring was at least 2^i and below 2^(i+1) microseconds; bucket 0
 *	also counts those below 1 us, the last one all from 2^23 us on.
 */
enum vhost_blk_stat {
	VHOST_BLK_A_STAT_UNSPEC,
	VHOST_BLK_A_STAT_QUEUE,
	VHOST_BLK_A_STAT_REQ_IN,
	VHOST_BLK_A_STAT_REQ_OUT,
	VHOST_BLK_A_STAT_REQ_FLUSH,
	VHOST_BLK_A_STAT_REQ_GET_ID,
	VHOST_BLK_A_STAT_REQ_DISCARD,
	VHOST_BLK_A_STAT_REQ_WRITE_ZEROES,
	VHOST_BLK_A_STAT_REQ_SECURE_ERASE,
	VHOST_BLK_A_STAT_REQ_OTHER,
	VHOST_BLK_A_STAT_SECTORS_READ,
	VHOST_BLK_A_STAT_SECTORS_WRITTEN,
	VHOST_BLK_A_STAT_ERR_IOERR,
	VHOST_BLK_A_STAT_ERR_UNSUPP,
	VHOST_BLK_A_STAT_INFLIGHT,
	VHOST_BLK_A_STAT_BOUNCED_REQS,
	VHOST_BLK_A_STAT_BOUNCED_BYTES,
	VHOST_BLK_A_STAT_KICKS,
	VHOST_BLK_A_STAT_INTERRUPTS,
	VHOST_BLK_A_STAT_USED_BATCHES,
	VHOST_BLK_A_STAT_DRIVER_ERRORS,
	VHOST_BLK_A_STAT_LATENCY_HIST,
	VHOST_BLK_A_STAT_PAD,
	VHOST_BLK_A_STAT_POLLED,

	__VHOST_BLK_A_STAT_MAX,
	VHOST_BLK_A_STAT_MAX = __VHOST_BLK_A_STAT_MAX - 1
};

#define VHOST_BLK_LAT_BUCKETS		24

#endif /* _UAPI_LINUX_VHOST_BLK_NL_H */
