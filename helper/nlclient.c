// SPDX-License-Identifier: GPL-2.0
/*
 * The "vhost_blk" generic netlink family's client: requests with
 * libnl-genl-3, replies parsed into structs. See nlclient.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "nlclient.h"

struct nlc {
	struct nl_sock *sock;
	int family;
};

/* Where a reply's parser puts what it reads: devices or counters. */
struct reply {
	uint8_t cmd;
	void *items;		/* struct nlc_dev or struct nlc_stats */
	size_t size;		/* of one item */
	unsigned int n, max;
	bool grow;		/* a dump: items is realloc'd */
	int error;
};

int nlc_open(struct nlc **out)
{
	struct nlc *nlc = calloc(1, sizeof(*nlc));
	int ret;

	if (!nlc)
		return -ENOMEM;
	nlc->sock = nl_socket_alloc();
	if (!nlc->sock) {
		free(nlc);
		return -ENOMEM;
	}
	ret = genl_connect(nlc->sock);
	if (ret) {
		ret = -EPROTONOSUPPORT;
		goto fail;
	}
	nlc->family = genl_ctrl_resolve(nlc->sock, VHOST_BLK_GENL_NAME);
	if (nlc->family < 0) {
		ret = -ENOENT;
		goto fail;
	}
	/* One answer per request: its reply, its dump, or its error. */
	nl_socket_disable_auto_ack(nlc->sock);
	/* A device's counters make large messages: size each read. */
	nl_socket_enable_msg_peek(nlc->sock);
	*out = nlc;
	return 0;
fail:
	nl_socket_free(nlc->sock);
	free(nlc);
	return ret;
}

void nlc_close(struct nlc *nlc)
{
	if (!nlc)
		return;
	nl_socket_free(nlc->sock);
	free(nlc);
}

static uint32_t get_u32(struct nlattr *a, bool *ok)
{
	if (nla_len(a) != sizeof(uint32_t)) {
		*ok = false;
		return 0;
	}
	return nla_get_u32(a);
}

static void get_string(struct nlattr *a, char *buf, size_t len)
{
	nla_strlcpy(buf, a, len);
}

/*
 * The attributes @type that come once per queue, in order, into @v (at
 * most VHOST_BLK_MAX_QUEUES); their number in *n.
 */
static bool parse_per_queue(struct genlmsghdr *gh, int type, uint32_t *v,
			    unsigned int *n)
{
	struct nlattr *a;
	bool ok = true;
	int rem;

	*n = 0;
	nla_for_each_attr(a, genlmsg_attrdata(gh, 0), genlmsg_attrlen(gh, 0), rem) {
		if (nla_type(a) != type)
			continue;
		if (*n == VHOST_BLK_MAX_QUEUES)
			return false;
		v[(*n)++] = get_u32(a, &ok);
	}
	return ok;
}

static int parse_dev(struct genlmsghdr *gh, struct nlattr **tb,
		     struct nlc_dev *d)
{
	bool ok = true;

	memset(d, 0, sizeof(*d));
	if (!tb[VHOST_BLK_A_DEV_ID] || !tb[VHOST_BLK_A_DEV_STATE])
		return -EPROTO;
	d->id = get_u32(tb[VHOST_BLK_A_DEV_ID], &ok);
	d->state = get_u32(tb[VHOST_BLK_A_DEV_STATE], &ok);
	if (tb[VHOST_BLK_A_DEV_OWNER_PID]) {
		d->has_owner_pid = true;
		d->owner_pid = get_u32(tb[VHOST_BLK_A_DEV_OWNER_PID], &ok);
	}
	if (tb[VHOST_BLK_A_DEV_OWNER_COMM])
		get_string(tb[VHOST_BLK_A_DEV_OWNER_COMM], d->owner_comm,
			   sizeof(d->owner_comm));
	if (tb[VHOST_BLK_A_DEV_BACKEND_NAME]) {
		d->has_backend = true;
		get_string(tb[VHOST_BLK_A_DEV_BACKEND_NAME], d->backend,
			   sizeof(d->backend));
	}
	if (tb[VHOST_BLK_A_DEV_BACKEND_MAJOR])
		d->major = get_u32(tb[VHOST_BLK_A_DEV_BACKEND_MAJOR], &ok);
	if (tb[VHOST_BLK_A_DEV_BACKEND_MINOR])
		d->minor = get_u32(tb[VHOST_BLK_A_DEV_BACKEND_MINOR], &ok);
	if (tb[VHOST_BLK_A_DEV_READ_ONLY]) {
		if (nla_len(tb[VHOST_BLK_A_DEV_READ_ONLY]) != sizeof(uint8_t))
			ok = false;
		else
			d->read_only = nla_get_u8(tb[VHOST_BLK_A_DEV_READ_ONLY]);
	}
	if (tb[VHOST_BLK_A_DEV_FEATURES]) {
		if (nla_len(tb[VHOST_BLK_A_DEV_FEATURES]) != sizeof(uint64_t))
			ok = false;
		else
			d->features = nla_get_u64(tb[VHOST_BLK_A_DEV_FEATURES]);
	}
	if (tb[VHOST_BLK_A_DEV_NUM_QUEUES])
		d->num_queues = get_u32(tb[VHOST_BLK_A_DEV_NUM_QUEUES], &ok);
	if (!parse_per_queue(gh, VHOST_BLK_A_DEV_WORKER, d->workers, &d->nworkers) ||
	    !parse_per_queue(gh, VHOST_BLK_A_DEV_POLL_US, d->poll_us, &d->npoll_us))
		ok = false;
	return ok ? 0 : -EPROTO;
}

static int parse_counters(struct nlattr *nest, struct nlc_counters *c)
{
	struct nlattr *tb[VHOST_BLK_A_STAT_MAX + 1];
	bool ok = true;
	int i;

	memset(c, 0, sizeof(*c));
	if (nla_parse_nested(tb, VHOST_BLK_A_STAT_MAX, nest, NULL))
		return -EPROTO;
	for (i = VHOST_BLK_A_STAT_REQ_IN; i <= VHOST_BLK_A_STAT_MAX; i++) {
		if (!tb[i] || i == VHOST_BLK_A_STAT_LATENCY_HIST ||
		    i == VHOST_BLK_A_STAT_PAD)
			continue;
		if (nla_len(tb[i]) != sizeof(uint64_t))
			return -EPROTO;
		c->v[i] = nla_get_u64(tb[i]);
	}
	if (tb[VHOST_BLK_A_STAT_QUEUE])
		c->queue = get_u32(tb[VHOST_BLK_A_STAT_QUEUE], &ok);
	if (!tb[VHOST_BLK_A_STAT_LATENCY_HIST] ||
	    nla_len(tb[VHOST_BLK_A_STAT_LATENCY_HIST]) != sizeof(c->hist))
		return -EPROTO;
	memcpy(c->hist, nla_data(tb[VHOST_BLK_A_STAT_LATENCY_HIST]), sizeof(c->hist));
	return ok ? 0 : -EPROTO;
}

static int parse_stats(struct genlmsghdr *gh, struct nlattr **tb, struct nlc_stats *s)
{
	struct nlattr *a;
	bool ok = true;
	int rem, ret;

	memset(s, 0, sizeof(*s));
	if (!tb[VHOST_BLK_A_DEV_ID] || !tb[VHOST_BLK_A_STATS_TOTAL])
		return -EPROTO;
	s->id = get_u32(tb[VHOST_BLK_A_DEV_ID], &ok);
	ret = parse_counters(tb[VHOST_BLK_A_STATS_TOTAL], &s->total);
	if (ret)
		return ret;
	nla_for_each_attr(a, genlmsg_attrdata(gh, 0), genlmsg_attrlen(gh, 0), rem) {
		if (nla_type(a) != VHOST_BLK_A_STATS_QUEUE)
			continue;
		if (s->nqueues == VHOST_BLK_MAX_QUEUES)
			return -EPROTO;
		ret = parse_counters(a, &s->queue[s->nqueues++]);
		if (ret)
			return ret;
	}
	return ok ? 0 : -EPROTO;
}

/* A slot for one more item, growing a dump's array. */
static void *next_item(struct reply *r)
{
	if (r->n == r->max) {
		unsigned int max = r->max ? r->max * 2 : 16;
		void *items;

		if (!r->grow)
			return NULL;
		items = realloc(r->items, (size_t)max * r->size);
		if (!items)
			return NULL;
		r->items = items;
		r->max = max;
	}
	return (char *)r->items + (size_t)r->n++ * r->size;
}

static int on_msg(struct nl_msg *msg, void *arg)
{
	struct genlmsghdr *gh = nlmsg_data(nlmsg_hdr(msg));
	struct nlattr *tb[VHOST_BLK_A_MAX + 1];
	struct reply *r = arg;
	void *item;

	if (r->error)
		return NL_SKIP;	/* the rest of a dump, read and dropped */
	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, VHOST_BLK_A_MAX, NULL) ||
	    gh->cmd != r->cmd) {
		r->error = -EPROTO;
		return NL_SKIP;
	}
	item = next_item(r);
	if (!item) {
		r->error = r->grow ? -ENOMEM : -EPROTO;
		return NL_SKIP;
	}
	r->error = r->cmd == VHOST_BLK_CMD_DEV_GET ? parse_dev(gh, tb, item) :
						     parse_stats(gh, tb, item);
	return NL_OK;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *err, void *arg)
{
	struct reply *r = arg;

	(void)nla;
	r->error = err->error < 0 ? err->error : -EPROTO;
	return NL_STOP;
}

/* A request of r->cmd, a dump unless @id; its answer parsed into @r. */
static int transact(struct nlc *nlc, uint32_t id, struct reply *r)
{
	struct nl_msg *msg = nlmsg_alloc();
	struct nl_cb *cb;
	int ret;

	if (!msg)
		return -ENOMEM;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, nlc->family, 0,
			 id ? 0 : NLM_F_DUMP, r->cmd, VHOST_BLK_GENL_VERSION) ||
	    (id && nla_put_u32(msg, VHOST_BLK_A_DEV_ID, id))) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	cb = nl_cb_alloc(NL_CB_CUSTOM);
	if (!cb) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	r->error = 0;
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_msg, r);
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, r);
	ret = nl_send_auto(nlc->sock, msg);
	nlmsg_free(msg);
	if (ret >= 0)
		ret = nl_recvmsgs(nlc->sock, cb);
	nl_cb_put(cb);
	if (r->error)
		return r->error;
	return ret < 0 ? -EIO : 0;
}

int nlc_dev_get(struct nlc *nlc, uint32_t id, struct nlc_dev *dev)
{
	struct reply r = { .cmd = VHOST_BLK_CMD_DEV_GET, .items = dev,
			   .size = sizeof(*dev), .max = 1 };
	int ret;

	if (!id)
		return -EINVAL;
	ret = transact(nlc, id, &r);
	return ret ? ret : r.n == 1 ? 0 : -EPROTO;
}

static int dump(struct nlc *nlc, uint8_t cmd, size_t size, void **items)
{
	struct reply r = { .cmd = cmd, .size = size, .grow = true };
	int ret;

	ret = transact(nlc, 0, &r);
	if (ret) {
		free(r.items);
		return ret;
	}
	*items = r.items;
	return r.n;
}

int nlc_dev_dump(struct nlc *nlc, struct nlc_dev **devs)
{
	void *items = NULL;
	int ret = dump(nlc, VHOST_BLK_CMD_DEV_GET, sizeof(**devs), &items);

	*devs = ret >= 0 ? items : NULL;
	return ret;
}

int nlc_stats_get(struct nlc *nlc, uint32_t id, struct nlc_stats *stats)
{
	struct reply r = { .cmd = VHOST_BLK_CMD_STATS_GET, .items = stats,
			   .size = sizeof(*stats), .max = 1 };
	int ret;

	if (!id)
		return -EINVAL;
	ret = transact(nlc, id, &r);
	return ret ? ret : r.n == 1 ? 0 : -EPROTO;
}

int nlc_stats_dump(struct nlc *nlc, struct nlc_stats **stats)
{
	void *items = NULL;
	int ret = dump(nlc, VHOST_BLK_CMD_STATS_GET, sizeof(**stats), &items);

	*stats = ret >= 0 ? items : NULL;
	return ret;
}

const char *nlc_state_name(uint32_t state)
{
	switch (state) {
	case VHOST_BLK_STATE_NO_OWNER:
		return "no-owner";
	case VHOST_BLK_STATE_NO_BACKEND:
		return "no-backend";
	case VHOST_BLK_STATE_RUNNING:
		return "running";
	case VHOST_BLK_STATE_QUEUE_ERROR:
		return "queue-error";
	case VHOST_BLK_STATE_STOPPED:
		return "stopped";
	}
	return "unknown";
}

uint64_t nlc_requests(const struct nlc_counters *c)
{
	uint64_t n = 0;
	int i;

	for (i = VHOST_BLK_A_STAT_REQ_IN; i <= VHOST_BLK_A_STAT_REQ_OTHER; i++)
		n += c->v[i];
	return n;
}

bool nlc_lat_mean_us(const uint64_t *hist, double *mean)
{
	double sum = 0, n = 0;
	int i;

	for (i = 0; i < VHOST_BLK_LAT_BUCKETS; i++) {
		sum += (double)hist[i] * (i ? 1.5 * (double)(1ULL << i) : 1.0);
		n += (double)hist[i];
	}
	if (!n)
		return false;
	*mean = sum / n;
	return true;
}

bool nlc_lat_p99_us(const uint64_t *hist, uint64_t *p99)
{
	uint64_t n = 0, seen = 0, rank;
	int i;

	for (i = 0; i < VHOST_BLK_LAT_BUCKETS; i++)
		n += hist[i];
	if (!n)
		return false;
	/* The request at rank ceil(0.99 n), from 1. */
	rank = n - n / 100;
	for (i = 0; i < VHOST_BLK_LAT_BUCKETS - 1; i++) {
		seen += hist[i];
		if (seen >= rank)
			break;
	}
	*p99 = 1ULL << (i + 1);
	return true;
}
