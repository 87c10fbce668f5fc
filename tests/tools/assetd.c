/* assetd - a test-only HTTP server of the embedded assets (cm_asset_find)
 * over libmicrohttpd, for tests/docs.bats until cm-httpd serves them:
 *
 *     assetd [--listen ADDR:PORT]     (default 127.0.0.1:8001)
 *
 * GET and HEAD of an asset's path answer 200 with its content type and
 * ETag (304 for a matching If-None-Match); other paths 404, other methods
 * 405, with FastAPI's bodies. Runs until SIGTERM or SIGINT. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"

/* Answers with a static JSON body. */
static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status, const char *body)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	MHD_add_response_header(r, "Content-Type", "application/json");
	if (status == 405)
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* The request handler: one call per request, the body is never read. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **ctx)
{
	const struct cm_asset *a;
	struct MHD_Response *r;
	const char *inm;
	enum MHD_Result rc;
	unsigned status = 200;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply_json(conn, 405, "{\"detail\":\"Method Not Allowed\"}");
	a = cm_asset_find(url);
	if (!a)
		return reply_json(conn, 404, "{\"detail\":\"Not Found\"}");
	inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
	if (inm && strcmp(inm, a->etag) == 0) {
		status = 304;
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else
		r = MHD_create_response_from_buffer(a->len, (void *)a->data,
		                                    MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", a->content_type);
	MHD_add_response_header(r, "ETag", a->etag);
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* Parses IPv4 ADDR:PORT into sa; 0 or -1. */
static int parse_listen(const char *s, struct sockaddr_in *sa)
{
	const char *colon = strrchr(s, ':');
	char host[64], *end;
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *listen = "127.0.0.1:8001";
	struct sockaddr_in sa;
	struct MHD_Daemon *d;
	sigset_t set;
	int sig;

	if (argc == 3 && strcmp(argv[1], "--listen") == 0)
		listen = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: assetd [--listen ADDR:PORT]\n");
		return 2;
	}
	if (parse_listen(listen, &sa) < 0) {
		fprintf(stderr, "assetd: --listen %s: not an IPv4 ADDR:PORT\n", listen);
		return 2;
	}
	/* Block the stop signals before the daemon's threads start, so
	 * that sigwait gets them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	                     handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	                     MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "assetd: cannot listen on %s\n", listen);
		return 5;
	}
	fprintf(stderr, "assetd: listening on %s\n", listen);
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	return 0;
}
