/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhost-blk: tracepoints vhost_blk:req_start and vhost_blk:req_done, one
 * request's start (taken from the avail ring) and end (in the used ring).
 * Documentation/admin-guide.rst has the recipes.
 */
#undef TRACE_SYSTEM
/* The migration test's control module loads beside the real one. */
#ifdef VHOST_BLK_NO_DATA_LOG
#define TRACE_SYSTEM vhost_blk_nolog
#else
#define TRACE_SYSTEM vhost_blk
#endif

#if !defined(_VHOST_BLK_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _VHOST_BLK_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(req_start,
	    TP_PROTO(u32 dev, u16 queue, u16 chain, u32 type, u64 sector,
		     u32 len),
	    TP_ARGS(dev, queue, chain, type, sector, len),
	    TP_STRUCT__entry(__field(u32, dev)
			     __field(u16, queue)
			     __field(u16, head)
			     __field(u32, type)
			     __field(u32, len)
			     __field(u64, sector)),
	    TP_fast_assign(__entry->dev = dev;
			   __entry->queue = queue;
			   __entry->head = chain;
			   __entry->type = type;
			   __entry->len = len;
			   __entry->sector = sector;),
	    TP_printk("dev=%u queue=%u head=%u type=%u sector=%llu len=%u",
		      __entry->dev, __entry->queue, __entry->head,
		      __entry->type, __entry->sector, __entry->len)
);

TRACE_EVENT(req_done,
	    TP_PROTO(u32 dev, u16 queue, u16 chain, u32 type, u64 sector,
		     u32 len, u8 status, u64 latency_ns),
	    TP_ARGS(dev, queue, chain, type, sector, len, status, latency_ns),
	    TP_STRUCT__entry(__field(u32, dev)
			     __field(u16, queue)
			     __field(u16, head)
			     __field(u32, type)
			     __field(u32, len)
			     __field(u64, sector)
			     __field(u64, latency_ns)
			     __field(u8, status)),
	    TP_fast_assign(__entry->dev = dev;
			   __entry->queue = queue;
			   __entry->head = chain;
			   __entry->type = type;
			   __entry->len = len;
			   __entry->sector = sector;
			   __entry->latency_ns = latency_ns;
			   __entry->status = status;),
	    TP_printk("dev=%u queue=%u head=%u type=%u sector=%llu len=%u status=%u latency_ns=%llu",
		      __entry->dev, __entry->queue, __entry->head,
		      __entry->type, __entry->sector, __entry->len,
		      __entry->status, __entry->latency_ns)
);

#endif /* _VHOST_BLK_TRACE_H */

/* Out of tree: the header is found next to the sources. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
