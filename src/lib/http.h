/* http.h - the HTTP server core of cm-httpd over libmicrohttpd 0.9.75.
 *
 * An epoll thread pool (one thread per core at most) parses requests and
 * runs the application's handler once a request's body is complete. A
 * handler answers at once (cm_http_reply and friends) or, when the answer
 * needs something that blocks (Redis, PostgreSQL, a password hash), calls
 * cm_http_suspend, hands the request to another thread, and that thread
 * answers and calls cm_http_resume: pool threads never block.
 *
 * Limits: a body over max_body is a 413 (or what the too_big hook answers),
 * decided from Content-Length before the body is read (the connection is
 * then closed, as libmicrohttpd must); a chunked body is read to its end
 * without being kept and answered the same way.
 * Connections are limited overall and per address; a connection idle for
 * timeout seconds is closed, and so is one whose request has not fully
 * arrived timeout seconds after the connection became ready for it (a
 * client trickling bytes is cut off, not only an idle one). Request heads
 * larger than max_head are refused by libmicrohttpd (431); malformed HTTP
 * gets its 400.
 *
 * Every request is logged as one JSON line when it completes, with its
 * method, route (the template the application set; "unmatched" otherwise),
 * path, status, duration, user, trace id and client address; never a
 * header or a body. The trace id comes from a traceparent header (its
 * trace-id), else X-Request-Id (sanitised: [A-Za-z0-9._:-], at most 64
 * bytes), else 16 random bytes in hex, and is returned in X-Request-Id.
 *
 * Ownership: a request belongs to the thread running its handler, then to
 * the thread it was handed to while suspended, until cm_http_resume; it is
 * freed when it completes (after the reply is sent or the client left). */
#ifndef CM_HTTP_H
#define CM_HTTP_H

#include "buf.h"
#include "logj.h"

#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_http;
struct cm_http_req;

#define CM_HTTP_TRACE_MAX 64
#define CM_HTTP_USER_MAX  136 /* "key:" and a 128-byte name */
#define CM_HTTP_HEADERS   4   /* extra response headers per reply */

typedef void cm_http_handler(struct cm_http_req *r);
/* Called as each request completes (for metrics): its route template,
 * method, status (499 when the client left first) and duration. */
typedef void cm_http_done_fn(void *app, const char *route, const char *method, int status,
                             double seconds);

struct cm_http_opts {
	int listen_fd;            /* a listening socket (cm_http_bind); taken over */
	unsigned threads;         /* pool threads (at least 1) */
	unsigned max_connections; /* over all addresses */
	unsigned max_per_ip;      /* 0: no limit */
	unsigned timeout_s;       /* see above (at least 1) */
	size_t max_body;          /* bytes */
	size_t max_head;          /* per-connection memory for a request head */
	cm_http_handler *handler; /* every request, body complete */
	/* A request whose body is over max_body: 1 when it set the reply
	 * itself (at once), 0 for the 413; may be NULL. */
	int (*too_big)(struct cm_http_req *r);
	cm_http_done_fn *on_done; /* may be NULL */
	void *app;                /* handed to handlers as r->app */
	const struct cm_log *log; /* request lines and server messages */
};

/* What a handler sees of a request. */
struct cm_http_req {
	struct cm_http *http;
	void *app;
	const char *method; /* as sent: "GET", "POST", ... */
	const char *path;   /* raw (not decoded), without the query */
	size_t path_len;
	const char *query; /* raw, after '?'; NULL when there is none */
	size_t query_len;
	const char *remote; /* the client's address */
	struct cm_buf body; /* the complete body */
	char trace_id[CM_HTTP_TRACE_MAX + 1];
	const char *route;               /* set by the application: the route template */
	char user[CM_HTTP_USER_MAX + 1]; /* set by the application: who, for the log */
	void *data;                      /* the application's per-request state */
	void (*data_free)(void *data);   /* called when the request is freed */
	/* The reply, filled by cm_http_reply*. */
	int status;
	struct cm_buf out;
	const char *ctype;
	int nheaders;
	struct {
		const char *name;
		char value[192];
	} headers[CM_HTTP_HEADERS];
	/* Private to http.c. */
	struct cm_http_conn *conn_;
	void *mhd_;
	int state_;
	int suspended_;
	int too_big_;
	int64_t t0_ns_;
	char *uri_;
};

/* Parses "HOST:PORT" or "[IPV6]:PORT" (the port from 1 to 65535); -1 with err
 * for a usage error. */
int cm_http_parse_listen(const char *addr, char *host, size_t hostsize, int *port,
                         struct cm_err *err);
/* Creates a non-blocking listening socket on host and port (reusing the
 * address); -1 with err naming the address and the system's reason. */
int cm_http_bind(const char *host, int port, int *fd, struct cm_err *err);

/* Starts the server; NULL with err when libmicrohttpd refuses. */
struct cm_http *cm_http_start(const struct cm_http_opts *o, struct cm_err *err);
/* Stops accepting connections, marks every further reply "Connection:
 * close", and waits up to grace_ms for the requests in progress; returns
 * how many are still in progress. */
int cm_http_drain(struct cm_http *h, int64_t grace_ms);
/* Stops the threads and frees the server. No request may be suspended any
 * more: finish the threads that requests were handed to first. */
void cm_http_stop(struct cm_http *h);

/* A request header (case-insensitive name), or NULL; only on the thread
 * running the handler. */
const char *cm_http_header(struct cm_http_req *r, const char *name);

/* Sets the reply: status, content type and body (taken from body, which is
 * left empty). */
void cm_http_reply(struct cm_http_req *r, int status, const char *ctype, struct cm_buf *body);
/* The same with a copy of s[0..n). */
void cm_http_reply_text(struct cm_http_req *r, int status, const char *ctype, const char *s,
                        size_t n);
/* A JSON reply {"detail":"..."} (FastAPI's error shape). */
void cm_http_detail(struct cm_http_req *r, int status, const char *detail);
/* Adds a response header (the name must be a constant string; the value is
 * copied, at most 191 bytes); -1 when there is no room. */
int cm_http_add_header(struct cm_http_req *r, const char *name, const char *value);

/* Suspends the request from its handler, before handing it to another
 * thread; the handler then returns without replying. */
void cm_http_suspend(struct cm_http_req *r);
/* Resumes a suspended request once its reply is set; any thread. */
void cm_http_resume(struct cm_http_req *r);
/* Resumes a suspended request without a reply: the handler runs again, on
 * a pool thread, with whatever the other thread left in r->data (a write
 * key looked up, say); any thread. */
void cm_http_rerun(struct cm_http_req *r);

#endif
