/* http.c - libmicrohttpd's thread pool with suspend/resume, limits, the
 * trickling-client sweeper and request logs. */
#include "http.h"

#include "err.h"
#include "retry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A request's progress through the access handler. */
enum { ST_NEW = 0, ST_BODY, ST_HANDLING, ST_READY, ST_QUEUED };

/* One connection, registered from its start to its close so that the
 * sweeper can cut off a client whose request does not arrive in time. */
struct cm_http_conn {
	int fd;
	char remote[INET6_ADDRSTRLEN];
	_Atomic int64_t deadline_ms; /* 0: none (a request is being handled) */
	struct cm_http_conn *prev, *next;
};

struct cm_http {
	struct MHD_Daemon *d;
	struct cm_http_opts o;
	pthread_mutex_t mu; /* the connection list */
	struct cm_http_conn *conns;
	pthread_t sweeper;
	pthread_mutex_t smu;
	pthread_cond_t scv;
	int stopping; /* under smu */
	atomic_int active;
	atomic_int draining;
	int listen_fd;
};

int cm_http_parse_listen(const char *addr, char *host, size_t hostsize, int *port,
                         struct cm_err *err)
{
	const char *colon, *h = addr;
	size_t hlen;
	char *end;
	long p;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return cm_errf(err, "'%s': expected [IPV6]:PORT", addr);
		h = addr + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || strchr(addr, ':') != colon)
			return cm_errf(err, "'%s': expected HOST:PORT or [IPV6]:PORT", addr);
		hlen = (size_t)(colon - addr);
	}
	if (hlen == 0 || hlen >= hostsize)
		return cm_errf(err, "'%s': missing or overlong host", addr);
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || p < 1 || p > 65535)
		return cm_errf(err, "'%s': the port must be a number from 1 to 65535", addr);
	memcpy(host, h, hlen);
	host[hlen] = 0;
	*port = (int)p;
	return 0;
}

int cm_http_bind(const char *host, int port, int *fd, struct cm_err *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char ports[16];
	int s = -1, one = 1, rc, saved = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(ports, sizeof(ports), "%d", port);
	rc = getaddrinfo(host, ports, &hints, &res);
	if (rc != 0)
		return cm_errf(err, "listen address '%s': %s", host, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		           ai->ai_protocol);
		if (s < 0) {
			saved = errno;
			continue;
		}
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s, ai->ai_addr, ai->ai_addrlen) == 0 && listen(s, SOMAXCONN) == 0)
			break;
		saved = errno;
		close(s);
		s = -1;
	}
	freeaddrinfo(res);
	if (s < 0)
		return cm_errf(err, "cannot listen on %s port %d: %s", host, port, strerror(saved));
	*fd = s;
	return 0;
}

/* libmicrohttpd's own messages, as warning lines. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	struct cm_http *h = cls;
	char msg[512];
	size_t n;

	if (!cm_log_on(h->o.log, CM_LOG_WARNING))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = 0;
	cm_logkv(h->o.log, CM_LOG_WARNING, msg, "source", "libmicrohttpd", CM_LOG_END);
}

/* Registers a connection at its start and forgets it at its close (which
 * libmicrohttpd reports before it closes the socket, so the sweeper never
 * touches a descriptor that was reused). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	struct cm_http *h = cls;
	struct cm_http_conn *c = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fi, *ai;

		c = calloc(1, sizeof(*c));
		if (!c)
			return;
		fi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		ai = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		c->fd = fi ? fi->connect_fd : -1;
		snprintf(c->remote, sizeof(c->remote), "?");
		if (ai && ai->client_addr) {
			const struct sockaddr *sa = ai->client_addr;

			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
				          c->remote, sizeof(c->remote));
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
				          c->remote, sizeof(c->remote));
		}
		atomic_store(&c->deadline_ms, cm_mono_ms() + (int64_t)h->o.timeout_s * 1000);
		pthread_mutex_lock(&h->mu);
		c->next = h->conns;
		if (h->conns)
			h->conns->prev = c;
		h->conns = c;
		pthread_mutex_unlock(&h->mu);
		*socket_context = c;
	} else if (c) {
		pthread_mutex_lock(&h->mu);
		if (c->prev)
			c->prev->next = c->next;
		else
			h->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		pthread_mutex_unlock(&h->mu);
		free(c);
		*socket_context = NULL;
	}
}

/* Cuts off, every half second, the connections whose request has not
 * arrived by its deadline: shutting the socket down makes libmicrohttpd see
 * the end of the connection and close it on its own thread. */
static void *sweep(void *arg)
{
	struct cm_http *h = arg;
	struct cm_http_conn *c;
	struct timespec ts;
	int64_t now, d;

	pthread_mutex_lock(&h->smu);
	while (!h->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&h->scv, &h->smu, &ts);
		if (h->stopping)
			break;
		now = cm_mono_ms();
		pthread_mutex_lock(&h->mu);
		for (c = h->conns; c; c = c->next) {
			d = atomic_load(&c->deadline_ms);
			if (d == 0 || now < d || c->fd < 0)
				continue;
			atomic_store(&c->deadline_ms, 0);
			shutdown(c->fd, SHUT_RDWR);
			cm_logkv(h->o.log, CM_LOG_WARNING,
			         "closed a connection whose request did not arrive in time",
			         "remote", c->remote, CM_LOG_END);
		}
		pthread_mutex_unlock(&h->mu);
	}
	pthread_mutex_unlock(&h->smu);
	return NULL;
}

/* Takes the URI as sent, before libmicrohttpd decodes anything, and starts
 * the request: what this returns is the request's context. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct cm_http *h = cls;
	const union MHD_ConnectionInfo *si =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct cm_http_req *r = calloc(1, sizeof(*r));
	char *q;

	if (!r)
		return NULL;
	r->uri_ = strdup(uri ? uri : "");
	if (!r->uri_) {
		free(r);
		return NULL;
	}
	r->http = h;
	r->app = h->o.app;
	r->mhd_ = conn;
	r->conn_ = si ? si->socket_context : NULL;
	r->remote = r->conn_ ? r->conn_->remote : "?";
	r->route = "unmatched";
	r->method = "";
	r->t0_ns_ = cm_mono_ns();
	cm_buf_init(&r->body, h->o.max_body);
	cm_buf_init(&r->out, 0);
	r->path = r->uri_;
	q = strchr(r->uri_, '?');
	if (q) {
		*q = 0;
		r->query = q + 1;
		r->query_len = strlen(q + 1);
	}
	r->path_len = strlen(r->path);
	atomic_fetch_add(&h->active, 1);
	return r;
}

/* Leaves paths alone: the router matches them raw and decodes parameters
 * itself, so that %2F stays inside a parameter. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

/* 16 random bytes for a new trace id: ChaCha20 under a per-thread key
 * from the system's generator, so that a request costs no system call. */
static void new_trace_id(unsigned char out[16])
{
	static __thread unsigned char key[crypto_stream_chacha20_KEYBYTES];
	static __thread uint64_t counter;
	unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];

	if (counter == 0) {
		randombytes_buf(key, sizeof(key));
		counter = 1;
	}
	memcpy(nonce, &counter, sizeof(nonce) < sizeof(counter) ? sizeof(nonce) : sizeof(counter));
	counter++;
	crypto_stream_chacha20(out, 16, nonce, key);
}

/* Picks the trace id: traceparent's trace-id, else X-Request-Id cleaned,
 * else a new random one. */
static void pick_trace_id(struct cm_http_req *r)
{
	const char *tp = cm_http_header(r, "traceparent");
	const char *rid;
	unsigned char raw[16];
	size_t i, n = 0;

	if (tp && strlen(tp) >= 55 && tp[2] == '-' && tp[35] == '-') {
		int ok = 1, zero = 1;

		for (i = 3; i < 35 && ok; i++) {
			char c = tp[i];

			ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
			zero &= c == '0';
		}
		if (ok && !zero) {
			memcpy(r->trace_id, tp + 3, 32);
			r->trace_id[32] = 0;
			return;
		}
	}
	rid = cm_http_header(r, "X-Request-Id");
	for (i = 0; rid && rid[i] && n < CM_HTTP_TRACE_MAX; i++) {
		char c = rid[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == ':' || c == '-')
			r->trace_id[n++] = c;
	}
	r->trace_id[n] = 0;
	if (n)
		return;
	new_trace_id(raw);
	sodium_bin2hex(r->trace_id, sizeof(r->trace_id), raw, sizeof(raw));
}

const char *cm_http_header(struct cm_http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->mhd_, MHD_HEADER_KIND, name);
}

void cm_http_reply(struct cm_http_req *r, int status, const char *ctype, struct cm_buf *body)
{
	cm_buf_release(&r->out);
	r->out = *body;
	cm_buf_init(body, body->max);
	r->status = status;
	r->ctype = ctype;
	r->state_ = ST_READY;
}

void cm_http_reply_text(struct cm_http_req *r, int status, const char *ctype, const char *s,
                        size_t n)
{
	struct cm_buf b = CM_BUF_INIT;

	if (cm_buf_add(&b, s, n) < 0) {
		status = 500;
		n = 0;
	}
	cm_http_reply(r, status, ctype, &b);
}

void cm_http_detail(struct cm_http_req *r, int status, const char *detail)
{
	struct cm_buf b = CM_BUF_INIT;

	if (cm_buf_adds(&b, "{\"detail\":") < 0 || cm_log_add_str(&b, detail, strlen(detail)) < 0 ||
	    cm_buf_addc(&b, '}') < 0)
		status = 500;
	cm_http_reply(r, status, "application/json", &b);
}

int cm_http_add_header(struct cm_http_req *r, const char *name, const char *value)
{
	if (r->nheaders >= CM_HTTP_HEADERS)
		return -1;
	r->headers[r->nheaders].name = name;
	snprintf(r->headers[r->nheaders].value, sizeof(r->headers[0].value), "%s", value);
	r->nheaders++;
	return 0;
}

/* Hands the reply to libmicrohttpd. */
static enum MHD_Result queue(struct cm_http *h, struct cm_http_req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;
	int i;

	if (r->out.len)
		resp =
		    MHD_create_response_from_buffer(r->out.len, r->out.data, MHD_RESPMEM_MUST_FREE);
	else
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	if (r->out.len)
		cm_buf_init(&r->out, 0); /* the response owns the bytes now */
	if (r->ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
	MHD_add_response_header(resp, "X-Request-Id", r->trace_id);
	for (i = 0; i < r->nheaders; i++)
		MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
	if (atomic_load(&h->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	r->state_ = ST_QUEUED;
	rc = MHD_queue_response(r->mhd_, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return rc;
}

/* Answers a body over max_body: the application's way, else 413. */
static void too_big(struct cm_http *h, struct cm_http_req *r)
{
	if (!h->o.too_big || !h->o.too_big(r))
		cm_http_detail(r, 413, "Request body too large");
}

/* libmicrohttpd's access handler: collects the body within its limit, runs
 * the application's handler once it is complete, and queues the reply
 * (at once, or on the call that follows a resume). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
	struct cm_http *h = cls;
	struct cm_http_req *r = *con_cls;

	(void)url;
	(void)version;
	if (!r)
		return MHD_NO;
	switch (r->state_) {
	case ST_NEW: {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                             MHD_HTTP_HEADER_CONTENT_LENGTH);

		r->method = method;
		pick_trace_id(r);
		r->state_ = ST_BODY;
		if (cl) {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(cl, &end, 10);
			if (errno || *end || n > h->o.max_body) {
				/* Answered before the body is read; the
				 * connection is closed after the reply. */
				too_big(h, r);
				return queue(h, r);
			}
		}
		return MHD_YES;
	}
	case ST_BODY:
		if (*upload_size) {
			if (!r->too_big_ && cm_buf_add(&r->body, upload_data, *upload_size) < 0) {
				r->too_big_ = 1;
				cm_buf_release(&r->body);
			}
			*upload_size = 0;
			return MHD_YES;
		}
		if (r->conn_)
			atomic_store(&r->conn_->deadline_ms, 0);
		if (r->too_big_) {
			too_big(h, r);
			return queue(h, r);
		}
		r->state_ = ST_HANDLING;
		/* fall through */
	case ST_HANDLING:
		/* The first run, or another after cm_http_rerun. */
		r->suspended_ = 0;
		h->o.handler(r);
		/* A suspended request is answered on the call that follows
		 * its resume; r may already be in another thread's hands. */
		if (r->suspended_)
			return MHD_YES;
		if (r->state_ != ST_READY)
			cm_http_detail(r, 500, "Internal Server Error");
		return queue(h, r);
	case ST_READY:
		r->suspended_ = 0;
		return queue(h, r);
	default:
		return MHD_YES;
	}
}

void cm_http_suspend(struct cm_http_req *r)
{
	r->suspended_ = 1;
	MHD_suspend_connection(r->mhd_);
}

void cm_http_resume(struct cm_http_req *r)
{
	if (r->state_ != ST_READY)
		cm_http_detail(r, 500, "Internal Server Error");
	MHD_resume_connection(r->mhd_);
}

void cm_http_rerun(struct cm_http_req *r)
{
	MHD_resume_connection(r->mhd_);
}

/* Appends the request's log line and hands it to the log (a buffer per call:
 * one allocation is nothing beside a request, and a per-thread one would
 * outlive libmicrohttpd's threads). */
static void log_request(struct cm_http *h, struct cm_http_req *r, int status, double secs)
{
	struct cm_buf b = CM_BUF_INIT;
	int level = status >= 500 ? CM_LOG_ERROR : CM_LOG_INFO;
	size_t plen = r->path_len > 512 ? 512 : r->path_len;
	int bad;

	if (!cm_log_on(h->o.log, level))
		return;
	bad = cm_log_begin(&b, level) | cm_buf_adds(&b, ",\"method\":") |
	      cm_log_add_str(&b, r->method, strlen(r->method)) | cm_buf_adds(&b, ",\"route\":") |
	      cm_log_add_str(&b, r->route, strlen(r->route)) | cm_buf_adds(&b, ",\"path\":") |
	      cm_log_add_str(&b, r->path, plen) |
	      cm_buf_addf(&b, ",\"status\":%d,\"duration_ms\":%.3f,\"user\":", status, secs * 1e3);
	if (r->user[0])
		bad |= cm_log_add_str(&b, r->user, strlen(r->user));
	else
		bad |= cm_buf_adds(&b, "null");
	bad |= cm_buf_adds(&b, ",\"trace_id\":") |
	       cm_log_add_str(&b, r->trace_id, strlen(r->trace_id)) |
	       cm_buf_adds(&b, ",\"remote\":") | cm_log_add_str(&b, r->remote, strlen(r->remote));
	if (!bad)
		cm_log_end(h->o.log, level, &b);
	cm_buf_release(&b);
}

/* The end of a request: log, metrics, and the connection's next deadline. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct cm_http *h = cls;
	struct cm_http_req *r = *con_cls;
	double secs;
	int status;

	if (!r)
		return;
	*con_cls = NULL;
	secs = (double)(cm_mono_ns() - r->t0_ns_) / 1e9;
	if (r->state_ == ST_QUEUED) {
		status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 499;
	} else {
		/* Refused by libmicrohttpd's parser, or the client left. */
		const union MHD_ConnectionInfo *si =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);

		status = si && si->http_status ? (int)si->http_status : 499;
	}
	if (!r->method[0])
		r->method = "-";
	log_request(h, r, status, secs);
	if (h->o.on_done)
		h->o.on_done(h->o.app, r->route, r->method, status, secs);
	if (r->conn_)
		atomic_store(&r->conn_->deadline_ms, cm_mono_ms() + (int64_t)h->o.timeout_s * 1000);
	if (r->data_free)
		r->data_free(r->data);
	cm_buf_release(&r->body);
	cm_buf_release(&r->out);
	free(r->uri_);
	free(r);
	atomic_fetch_sub(&h->active, 1);
}

struct cm_http *cm_http_start(const struct cm_http_opts *o, struct cm_err *err)
{
	struct cm_http *h = calloc(1, sizeof(*h));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;

	if (!h) {
		close(o->listen_fd);
		return cm_errf(err, "out of memory"), NULL;
	}
	h->o = *o;
	h->listen_fd = o->listen_fd;
	pthread_mutex_init(&h->mu, NULL);
	pthread_mutex_init(&h->smu, NULL);
	pthread_cond_init(&h->scv, NULL);
	h->d = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h,
	    MHD_OPTION_LISTEN_SOCKET, o->listen_fd, MHD_OPTION_THREAD_POOL_SIZE,
	    o->threads ? o->threads : 1u, MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
	    o->timeout_s ? o->timeout_s : 1u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->max_head,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION,
	    on_connection, h, MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_UNESCAPE_CALLBACK,
	    no_unescape, h, MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
	if (!h->d) {
		cm_errf(err, "libmicrohttpd refused to start (see the messages above)");
		goto fail;
	}
	if (pthread_create(&h->sweeper, NULL, sweep, h) != 0) {
		cm_errf(err, "cannot start the connection sweeper");
		MHD_stop_daemon(h->d);
		goto fail;
	}
	return h;
fail:
	close(o->listen_fd);
	pthread_mutex_destroy(&h->mu);
	pthread_mutex_destroy(&h->smu);
	pthread_cond_destroy(&h->scv);
	free(h);
	return NULL;
}

int cm_http_drain(struct cm_http *h, int64_t grace_ms)
{
	int64_t deadline = cm_mono_ms() + grace_ms;
	MHD_socket fd;

	if (!atomic_exchange(&h->draining, 1)) {
		fd = MHD_quiesce_daemon(h->d);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	while (atomic_load(&h->active) > 0 && cm_mono_ms() < deadline) {
		struct timespec ts = {0, 10000000};

		nanosleep(&ts, NULL);
	}
	return atomic_load(&h->active);
}

void cm_http_stop(struct cm_http *h)
{
	struct cm_http_conn *c, *next;

	if (!h)
		return;
	pthread_mutex_lock(&h->smu);
	h->stopping = 1;
	pthread_cond_signal(&h->scv);
	pthread_mutex_unlock(&h->smu);
	pthread_join(h->sweeper, NULL);
	MHD_stop_daemon(h->d);
	for (c = h->conns; c; c = next) {
		next = c->next;
		free(c);
	}
	pthread_mutex_destroy(&h->mu);
	pthread_mutex_destroy(&h->smu);
	pthread_cond_destroy(&h->scv);
	free(h);
}
