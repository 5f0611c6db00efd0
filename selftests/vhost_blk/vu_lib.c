// SPDX-License-Identifier: GPL-2.0
/*
 * vu: a vhost-user front-end for the selftests. See vu.h.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vu.h"

#define VU_TIMEOUT_MS		5000

/*
 * The config space QEMU 7.2's vhost-user-blk asks for: up to the
 * write-zeroes fields (its headers predate secure erase).
 */
#define VU_QEMU_CONFIG_SIZE \
	offsetof(struct vhost_blk_config, max_secure_erase_sectors)

static int64_t vu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void vu_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------
 * Raw messages
 */

int vu_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int64_t deadline = vu_now_ms() + timeout_ms;
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (!connect(fd, (struct sockaddr *)&sun, sizeof(sun)))
			return fd;
		err = errno;
		close(fd);
		if ((err != ENOENT && err != ECONNREFUSED) ||
		    vu_now_ms() > deadline)
			return -err;
		vu_sleep_ms(10);
	}
}

int vu_send(int sock, uint32_t request, uint32_t flags, const void *payload,
	    uint32_t size, const int *fds, unsigned int nfds)
{
	struct vu_msg_hdr hdr = {
		.request = request,
		.flags = VHOST_USER_VERSION | flags,
		.size = size,
	};
	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_MSG_FDS)];
		struct cmsghdr align;
	} control;
	struct iovec iov[2] = {
		{ &hdr, sizeof(hdr) },
		{ (void *)payload, size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	ssize_t n;

	if (nfds > VU_MAX_MSG_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return (size_t)n == sizeof(hdr) + size ? 0 : -EIO;
}

/* Reads @len bytes, waiting until @deadline. */
static int recv_all(int sock, void *buf, size_t len, int64_t deadline,
		    bool first)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		int left = deadline - vu_now_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		n = recv(sock, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		}
		if (!n)
			return first && !got ? -ECONNRESET : -EPROTO;
		got += n;
	}
	return 0;
}

int vu_recv(int sock, struct vu_msg_hdr *hdr, void *payload, size_t max,
	    int timeout_ms)
{
	int64_t deadline = vu_now_ms() + timeout_ms;
	int ret;

	ret = recv_all(sock, hdr, sizeof(*hdr), deadline, true);
	if (ret)
		return ret;
	if (hdr->size > max)
		return -EPROTO;
	ret = recv_all(sock, payload, hdr->size, deadline, false);
	return ret ? ret : (int)hdr->size;
}

int vu_recv_reply(int sock, uint32_t request, void *payload, size_t max,
		  int timeout_ms)
{
	struct vu_msg_hdr hdr;
	int ret;

	ret = vu_recv(sock, &hdr, payload, max, timeout_ms);
	if (ret < 0)
		return ret;
	if (hdr.request != request ||
	    hdr.flags != (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK))
		return -EPROTO;
	return ret;
}

int vu_send_ack(int sock, uint32_t request, const void *payload,
		uint32_t size, const int *fds, unsigned int nfds)
{
	uint64_t ack;
	int ret;

	ret = vu_send(sock, request, VHOST_USER_NEED_REPLY_MASK, payload, size,
		      fds, nfds);
	if (ret)
		return ret;
	ret = vu_recv_reply(sock, request, &ack, sizeof(ack), VU_TIMEOUT_MS);
	if (ret < 0)
		return ret;
	if (ret != sizeof(ack))
		return -EPROTO;
	return ack ? -EREMOTEIO : 0;
}

int vu_get_u64(int sock, uint32_t request, uint64_t *val)
{
	int ret;

	ret = vu_send(sock, request, 0, NULL, 0, NULL, 0);
	if (ret)
		return ret;
	ret = vu_recv_reply(sock, request, val, sizeof(*val), VU_TIMEOUT_MS);
	if (ret < 0)
		return ret;
	return ret == sizeof(*val) ? 0 : -EPROTO;
}

static int send_u64(struct vu_frontend *fe, uint32_t request, uint64_t val)
{
	return vu_send(fe->sock, request, 0, &val, sizeof(val), NULL, 0);
}

static int send_state(struct vu_frontend *fe, uint32_t request,
		      unsigned int index, unsigned int num)
{
	struct vu_state_msg s = { .index = index, .num = num };

	return vu_send(fe->sock, request, 0, &s, sizeof(s), NULL, 0);
}

static int send_vring_fd(struct vu_frontend *fe, uint32_t request,
			 unsigned int index, int fd)
{
	uint64_t v = index;

	if (fd < 0)
		v |= VHOST_USER_VRING_NOFD_MASK;
	return vu_send(fe->sock, request, 0, &v, sizeof(v), &fd, fd < 0 ? 0 : 1);
}

/* ------------------------------------------------------------------------
 * Guest memory and queues
 */

struct vu_region_msg vu_frontend_region(const struct vu_frontend *fe,
					unsigned int i)
{
	const struct vblk_region *r = &fe->dev.mem.regions[i];

	return (struct vu_region_msg){
		.guest_phys_addr = r->gpa,
		.memory_size = r->size,
		.userspace_addr = (uintptr_t)r->hva,
		.mmap_offset = r->hva - fe->dev.mem.map,
	};
}

/* Queue @index in guest memory, ready to be handed to the backend. */
static int queue_alloc(struct vu_frontend *fe, unsigned int index,
		       unsigned int num)
{
	struct vblk_dev *dev = &fe->dev;
	struct vblk_queue *q = &dev->queues[index];
	int ret;

	memset(q, 0, sizeof(*q));
	q->dev = dev;
	q->index = index;
	q->kick_fd = q->call_fd = q->err_fd = -1;
	ret = vblk_queue_alloc(q, num);
	if (ret)
		return ret;
	q->ready = true;
	return 0;
}

static int frontend_alloc(struct vu_frontend *fe)
{
	const struct vblk_opts *o = &fe->opts.vblk;
	struct vblk_dev *dev = &fe->dev;
	unsigned int i, n = o->nqueues ? o->nqueues : 1;
	int ret;

	memset(dev, 0, sizeof(*dev));
	dev->fd = -1;
	dev->open = true;	/* so that vblk_dev_close frees it all */
	dev->timeout_ms = VBLK_TIMEOUT_MS;
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		dev->queues[i].kick_fd = -1;
		dev->queues[i].call_fd = -1;
		dev->queues[i].err_fd = -1;
	}
	if (n > VHOST_BLK_MAX_QUEUES)
		return -EINVAL;
	ret = vblk_mem_init(&dev->mem, o->mem_size ? o->mem_size : VBLK_MEM_SIZE,
			    o->nregions ? o->nregions : 2);
	if (ret)
		return ret;
	for (i = 0; i < n; i++) {
		ret = queue_alloc(fe, i, o->queue_size ? o->queue_size :
					 VBLK_QUEUE_SIZE);
		if (ret)
			return ret;
	}
	dev->nqueues = n;
	return 0;
}

/* ------------------------------------------------------------------------
 * Front-end
 */

#define WANTED_PROTOCOL_FEATURES ((1ULL << VHOST_USER_PROTOCOL_F_MQ) | \
				  (1ULL << VHOST_USER_PROTOCOL_F_LOG_SHMFD) | \
				  (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
				  (1ULL << VHOST_USER_PROTOCOL_F_CONFIG) | \
				  (1ULL << VHOST_USER_PROTOCOL_F_RESET_DEVICE) | \
				  (1ULL << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

/* SET_BACKEND_REQ_FD with one end of a new socket pair; fe->channel the other. */
static int backend_channel(struct vu_frontend *fe)
{
	int sv[2], ret;

	if (!(fe->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_BACKEND_REQ)))
		return -EPROTONOSUPPORT;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	ret = vu_send_ack(fe->sock, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1);
	close(sv[1]);
	if (ret)
		close(sv[0]);
	else
		fe->channel = sv[0];
	return ret;
}

int vu_frontend_connect(struct vu_frontend *fe, const char *path,
			const struct vu_opts *opts)
{
	struct vu_config_msg cfg = { .size = VU_QEMU_CONFIG_SIZE };
	uint64_t pf, f;
	unsigned int i;
	int ret;

	if (!fe->dev.open) {
		memset(fe, 0, sizeof(*fe));
		fe->sock = -1;
		fe->channel = -1;
		fe->opts = *opts;
		ret = frontend_alloc(fe);
		if (ret) {
			vu_frontend_close(fe);
			return ret;
		}
	}
	fe->started = false;
	fe->mem_sent = false;
	if (fe->channel >= 0)
		close(fe->channel);
	fe->channel = -1;
	fe->sock = vu_connect(path, VU_TIMEOUT_MS);
	if (fe->sock < 0)
		return fe->sock;

	ret = vu_get_u64(fe->sock, VHOST_USER_GET_FEATURES, &fe->device_features);
	if (ret)
		return ret;
	if (!(fe->device_features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)))
		return -EPROTONOSUPPORT;
	ret = vu_get_u64(fe->sock, VHOST_USER_GET_PROTOCOL_FEATURES, &pf);
	if (ret)
		return ret;
	fe->protocol_features = pf & (WANTED_PROTOCOL_FEATURES |
		(fe->opts.backend_channel ? 1ULL << VHOST_USER_PROTOCOL_F_BACKEND_REQ : 0));
	if (fe->opts.mem_table)
		fe->protocol_features &=
			~(1ULL << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
	ret = send_u64(fe, VHOST_USER_SET_PROTOCOL_FEATURES, fe->protocol_features);
	if (ret)
		return ret;
	if (fe->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_MQ)) {
		ret = vu_get_u64(fe->sock, VHOST_USER_GET_QUEUE_NUM, &fe->queue_num);
		if (ret)
			return ret;
		if (fe->queue_num < fe->dev.nqueues)
			return -ERANGE;
	}
	if (fe->protocol_features &
	    (1ULL << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
		ret = vu_get_u64(fe->sock, VHOST_USER_GET_MAX_MEM_SLOTS,
				 &fe->max_mem_slots);
		if (ret)
			return ret;
	}
	if (fe->opts.backend_channel) {
		ret = backend_channel(fe);
		if (ret)
			return ret;
	}
	ret = vu_send(fe->sock, VHOST_USER_SET_OWNER, 0, NULL, 0, NULL, 0);
	if (ret)
		return ret;
	ret = vu_get_u64(fe->sock, VHOST_USER_GET_FEATURES, &f);
	if (ret)
		return ret;
	for (i = 0; i < fe->dev.nqueues; i++) {
		ret = send_vring_fd(fe, VHOST_USER_SET_VRING_CALL, i,
				    fe->dev.queues[i].call_fd);
		if (ret)
			return ret;
	}
	if (!(fe->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_CONFIG)))
		return -EPROTONOSUPPORT;
	ret = vu_send(fe->sock, VHOST_USER_GET_CONFIG, 0, &cfg, 12 + cfg.size,
		      NULL, 0);
	if (ret)
		return ret;
	ret = vu_recv_reply(fe->sock, VHOST_USER_GET_CONFIG, &cfg, sizeof(cfg),
			    VU_TIMEOUT_MS);
	if (ret < 0)
		return ret;
	if (ret != 12 + (int)VU_QEMU_CONFIG_SIZE)
		return -EPROTO;
	memset(&fe->config, 0, sizeof(fe->config));
	memcpy(&fe->config, cfg.data, VU_QEMU_CONFIG_SIZE);
	return 0;
}

static bool has_ack(const struct vu_frontend *fe)
{
	return fe->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK);
}

/* Sends with NEED_REPLY when REPLY_ACK is there, as QEMU does. */
static int send_acked(struct vu_frontend *fe, uint32_t request,
		      const void *payload, uint32_t size, const int *fds,
		      unsigned int nfds)
{
	if (has_ack(fe))
		return vu_send_ack(fe->sock, request, payload, size, fds, nfds);
	return vu_send(fe->sock, request, 0, payload, size, fds, nfds);
}

static int send_memory(struct vu_frontend *fe)
{
	const struct vblk_mem *mem = &fe->dev.mem;
	int fds[8];
	unsigned int i;
	int ret;

	if (fe->protocol_features &
	    (1ULL << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
		if (fe->mem_sent)
			return 0;
		for (i = 0; i < mem->nregions; i++) {
			struct vu_mem_reg_msg m = {
				.region = vu_frontend_region(fe, i),
			};

			ret = send_acked(fe, VHOST_USER_ADD_MEM_REG, &m,
					 sizeof(m), &mem->fd, 1);
			if (ret)
				return ret;
		}
		fe->mem_sent = true;
		return 0;
	} else {
		struct vu_mem_table_msg t = { .nregions = mem->nregions };

		for (i = 0; i < mem->nregions; i++) {
			t.regions[i] = vu_frontend_region(fe, i);
			fds[i] = mem->fd;
		}
		ret = send_acked(fe, VHOST_USER_SET_MEM_TABLE, &t,
				 8 + mem->nregions * sizeof(t.regions[0]),
				 fds, mem->nregions);
		fe->mem_sent = !ret;
		return ret;
	}
}

int vu_frontend_start(struct vu_frontend *fe)
{
	uint64_t blk = fe->opts.blk_features ? fe->opts.blk_features :
					       (1ULL << 24) - 1;
	uint64_t features;
	unsigned int i;
	int ret;

	features = fe->device_features &
		   ((1ULL << VIRTIO_F_VERSION_1) | fe->opts.vblk.features | blk);
	ret = vu_send(fe->sock, VHOST_USER_SET_FEATURES, 0,
		      &(uint64_t){ features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES) },
		      8, NULL, 0);
	if (ret)
		return ret;
	fe->dev.features = features;
	ret = send_memory(fe);
	if (ret)
		return ret;
	for (i = 0; i < fe->dev.nqueues; i++) {
		struct vblk_queue *q = &fe->dev.queues[i];
		struct vu_addr_msg a = {
			.index = i,
			/* Our own addresses: the back-end translates them. */
			.desc = (uintptr_t)q->vr.desc,
			.used = (uintptr_t)q->vr.used,
			.avail = (uintptr_t)q->vr.avail,
			.log = q->used_gpa,
		};

		q->event_idx = features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
		ret = send_state(fe, VHOST_USER_SET_VRING_NUM, i, q->num);
		if (!ret)
			ret = send_state(fe, VHOST_USER_SET_VRING_BASE, i, fe->base[i]);
		if (!ret)
			ret = vu_send(fe->sock, VHOST_USER_SET_VRING_ADDR, 0, &a,
				      sizeof(a), NULL, 0);
		if (!ret)
			ret = send_vring_fd(fe, VHOST_USER_SET_VRING_KICK, i, q->kick_fd);
		if (!ret)
			ret = send_vring_fd(fe, VHOST_USER_SET_VRING_CALL, i, q->call_fd);
		if (!ret)
			ret = send_vring_fd(fe, VHOST_USER_SET_VRING_ERR, i, q->err_fd);
		if (ret)
			return ret;
	}
	for (i = 0; i < fe->dev.nqueues; i++) {
		struct vu_state_msg s = { .index = i, .num = 1 };

		ret = send_acked(fe, VHOST_USER_SET_VRING_ENABLE, &s, sizeof(s),
				 NULL, 0);
		if (ret)
			return ret;
	}
	fe->started = true;
	return 0;
}

int vu_frontend_open(struct vu_frontend *fe, const char *path,
		     const struct vu_opts *opts)
{
	int ret = vu_frontend_connect(fe, path, opts);

	return ret ? ret : vu_frontend_start(fe);
}

int vu_frontend_stop(struct vu_frontend *fe, uint16_t *bases)
{
	unsigned int i;
	int ret;

	for (i = 0; i < fe->dev.nqueues; i++) {
		ret = send_state(fe, VHOST_USER_SET_VRING_ENABLE, i, 0);
		if (ret)
			return ret;
	}
	for (i = 0; i < fe->dev.nqueues; i++) {
		struct vu_state_msg s = { .index = i };

		ret = vu_send(fe->sock, VHOST_USER_GET_VRING_BASE, 0, &s,
			      sizeof(s), NULL, 0);
		if (ret)
			return ret;
		ret = vu_recv_reply(fe->sock, VHOST_USER_GET_VRING_BASE, &s,
				    sizeof(s), VU_TIMEOUT_MS);
		if (ret < 0)
			return ret;
		if (ret != sizeof(s) || s.index != i)
			return -EPROTO;
		fe->base[i] = s.num;
		if (bases)
			bases[i] = s.num;
	}
	fe->started = false;
	return 0;
}

void vu_frontend_disconnect(struct vu_frontend *fe)
{
	if (fe->sock >= 0)
		close(fe->sock);
	fe->sock = -1;
	if (fe->channel >= 0)
		close(fe->channel);
	fe->channel = -1;
	fe->started = false;
}

int vu_frontend_reconnect(struct vu_frontend *fe, const char *path)
{
	unsigned int i;
	int ret;

	vu_frontend_disconnect(fe);
	for (i = 0; i < fe->dev.nqueues; i++) {
		struct vblk_queue *q = &fe->dev.queues[i];

		fe->base[i] = le16toh(__atomic_load_n(&q->vr.used->idx,
						      __ATOMIC_ACQUIRE));
	}
	ret = vu_frontend_connect(fe, path, &fe->opts);
	return ret ? ret : vu_frontend_start(fe);
}

void vu_frontend_close(struct vu_frontend *fe)
{
	vu_frontend_disconnect(fe);
	vblk_dev_close(&fe->dev);
}

/* ------------------------------------------------------------------------
 * The back-end under test
 */

int vu_server_start(struct vu_server *s, const char *backend,
		    const char *const *args)
{
	const char *helper = getenv("VHOSTBLK_SETUP");
	static unsigned int seq;
	const char *argv[32];
	unsigned int n = 0;
	int64_t deadline;
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->pid = -1;
	s->log_fd = -1;
	if (!helper)
		return -ENOENT;
	snprintf(s->sock, sizeof(s->sock), "/tmp/vu-%d-%u.sock", (int)getpid(),
		 seq++);
	unlink(s->sock);
	s->log_fd = memfd_create("vu-server-log", MFD_CLOEXEC);
	if (s->log_fd < 0)
		return -errno;

	argv[n++] = helper;
	argv[n++] = "serve";
	argv[n++] = "--backend";
	argv[n++] = backend;
	argv[n++] = "--socket";
	argv[n++] = s->sock;
	while (args && *args && n < 31)
		argv[n++] = *args++;
	argv[n] = NULL;

	s->pid = fork();
	if (s->pid < 0)
		return -errno;
	if (!s->pid) {
		int null = open("/dev/null", O_RDWR);
		sigset_t none;

		/* Gone with the test, even one the harness killed. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(null, 0);
		dup2(null, 1);
		dup2(s->log_fd, 2);
		execv(helper, (char *const *)argv);
		_exit(127);
	}
	deadline = vu_now_ms() + VU_TIMEOUT_MS;
	while (stat(s->sock, &st) || !S_ISSOCK(st.st_mode)) {
		int status;

		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = -1;
			return -ECHILD;
		}
		if (vu_now_ms() > deadline)
			return -ETIMEDOUT;
		vu_sleep_ms(10);
	}
	return 0;
}

int vu_server_stop(struct vu_server *s, int sig, int timeout_ms, int *status)
{
	int64_t start = vu_now_ms();
	int st = 0;

	if (s->pid <= 0)
		return 0;
	if (sig)
		kill(s->pid, sig);
	for (;;) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);

		if (r == s->pid)
			break;
		if (r < 0)
			return -errno;
		if (vu_now_ms() - start > timeout_ms) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
			break;
		}
		vu_sleep_ms(5);
	}
	s->pid = -1;
	if (status)
		*status = st;
	unlink(s->sock);
	return vu_now_ms() - start;
}

const char *vu_server_log(struct vu_server *s, char *buf, size_t len)
{
	ssize_t n = s->log_fd >= 0 ? pread(s->log_fd, buf, len - 1, 0) : -1;

	buf[n > 0 ? n : 0] = 0;
	return buf;
}

/* utime + stime of one thread, from its /proc stat file @path. */
static int thread_ticks(const char *path, uint64_t *ticks)
{
	char buf[1024], *p;
	unsigned long long utime, stime;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	/* Fields after "(comm)": state is field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &utime, &stime) != 2)
		return -EPROTO;
	*ticks = utime + stime;
	return 0;
}

int vu_server_cpu_ticks(struct vu_server *s, uint64_t *ticks)
{
	pid_t workers[VHOST_BLK_MAX_QUEUES + 1];
	unsigned int nworkers, i;
	char dir[64], path[128];
	struct dirent *de;
	uint64_t t = 0;
	DIR *d;
	int ret = 0;

	/* Its vhost workers are threads of the process since Linux 6.4. */
	nworkers = vblk_vhost_workers(s->pid, workers, VHOST_BLK_MAX_QUEUES + 1);
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)s->pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	*ticks = 0;
	while (!ret && (de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid <= 0)
			continue;
		for (i = 0; i < nworkers && workers[i] != tid; i++)
			;
		if (i < nworkers)
			continue;
		snprintf(path, sizeof(path), "%s/%d/stat", dir, (int)tid);
		ret = thread_ticks(path, &t);
		*ticks += t;
	}
	closedir(d);
	return ret;
}
