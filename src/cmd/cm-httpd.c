/* cm-httpd - the REST API of CONTRACT section 4: options, the JWT secret,
 * JSON logs on stderr, signals; the server is api.c over http.c. */
#include "api.h"
#include "tool.h"
#include "err.h"
#include "http.h"
#include "jwtx.h"
#include "logj.h"
#include "pg.h"
#include "redisx.h"
#include "timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Exit statuses (CONTRACT section 2). */
enum { EXIT_SYSTEM = 5 };

#define SECRET_MAX 4096

static const char usage_text[] =
    "Usage: cm-httpd [--listen ADDR:PORT] [--jwt-secret-file FILE] [--db CONNINFO]\n"
    "                [--redis URL] [--stream KEY] [--threads N] [--token-ttl SECONDS]\n"
    "                [--max-body SIZE] [--max-connections N] [--max-per-ip N]\n"
    "                [--timeout SECONDS] [--worker-ttl SECONDS] [--log-level LEVEL]\n"
    "                [--backtest-time MS]\n"
    "Serve the Campaign Manager REST API: campaigns, events into the Redis stream\n"
    "(also as Segment's Tracking API, /v1), profiles, users' tokens and write keys,\n"
    "health, metrics.\n"
    "\n"
    "  --listen ADDR:PORT      address to listen on, [::1]:PORT for IPv6\n"
    "                          (default $CM_LISTEN, else 127.0.0.1:8000)\n"
    "  --jwt-secret-file FILE  the token signing secret, at least 32 bytes (default\n"
    "                          $CM_JWT_SECRET itself, else $CM_JWT_SECRET_FILE)\n"
    "  --db CONNINFO           PostgreSQL conninfo or URI (default $CM_DATABASE_URL)\n"
    "  --redis URL             redis://[[user]:password@]host[:port][/db] or\n"
    "                          unix:///path (default $CM_REDIS_URL, else\n"
    "                          redis://127.0.0.1:6379)\n"
    "  --stream KEY            stream the events go to (default cm:events)\n"
    "  --threads N             HTTP threads (default and most: the number of cores)\n"
    "  --token-ttl SECONDS     lifetime of the tokens issued (default 1800)\n"
    "  --max-body SIZE         largest request body, K/M suffixes (default 1M)\n"
    "  --max-connections N     open connections at most (default 1024)\n"
    "  --max-per-ip N          open connections per client address (default 256, 0: any)\n"
    "  --timeout SECONDS       idle connections are closed after this, and a request\n"
    "                          must arrive within it (default 30)\n"
    "  --worker-ttl SECONDS    workers not heard from for this long leave /metrics\n"
    "                          (default 30)\n"
    "  --log-level LEVEL       debug, info (a line per request), warning or error\n"
    "                          (default info)\n"
    "  --backtest-time MS      a backtest stops after this many milliseconds, saying\n"
    "                          so (default 10000)\n"
    "  -h, --help              this help\n"
    "  -V, --version           version\n"
    "\n"
    "Exit status: 0 stopped by SIGTERM or SIGINT after finishing the requests in\n"
    "progress; 2 usage or configuration error; 5 cannot listen.\n";

/* The log on stderr. At a few lines a second each line is written at once;
 * under load lines are gathered for up to LOG_FLUSH_MS and written
 * together (a write per request would cost a tenth of the server's time),
 * always whole, warnings and errors at once. */
#define LOG_FLUSH_MS 20
#define LOG_BUF      (64 * 1024)

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char buf[LOG_BUF];
	size_t len;
	int64_t last_write;
	int running, stop;
	pthread_t thread;
} logq;

/* Writes p[0..n) to stderr whole, despite short writes. */
static void write_all(const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(2, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Writes what is gathered; with logq.mu held. */
static void log_flush_locked(void)
{
	if (logq.len)
		write_all(logq.buf, logq.len);
	logq.len = 0;
	logq.last_write = cm_time_now();
}

static void log_line(void *ctx, int level, const char *line, size_t len)
{
	(void)ctx;
	pthread_mutex_lock(&logq.mu);
	if (logq.len + len + 1 > sizeof(logq.buf))
		log_flush_locked();
	if (len + 1 > sizeof(logq.buf)) {
		write_all(line, len);
		write_all("\n", 1);
	} else {
		memcpy(logq.buf + logq.len, line, len);
		logq.buf[logq.len + len] = '\n';
		logq.len += len + 1;
		if (!logq.running || level >= CM_LOG_WARNING ||
		    cm_time_now() - logq.last_write >= LOG_FLUSH_MS)
			log_flush_locked();
	}
	pthread_mutex_unlock(&logq.mu);
}

/* Writes the gathered lines every LOG_FLUSH_MS. */
static void *log_flusher(void *arg)
{
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&logq.mu);
	while (!logq.stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += LOG_FLUSH_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&logq.cv, &logq.mu, &ts);
		log_flush_locked();
	}
	pthread_mutex_unlock(&logq.mu);
	return NULL;
}

/* Starts gathering lines (after start-up, whose lines go out at once). */
static void log_start(void)
{
	pthread_cond_init(&logq.cv, NULL);
	if (pthread_create(&logq.thread, NULL, log_flusher, NULL) == 0)
		logq.running = 1;
}

/* Writes what is left and stops the flusher. */
static void log_stop(void)
{
	if (!logq.running)
		return;
	pthread_mutex_lock(&logq.mu);
	logq.stop = 1;
	pthread_cond_signal(&logq.cv);
	pthread_mutex_unlock(&logq.mu);
	pthread_join(logq.thread, NULL);
	pthread_mutex_lock(&logq.mu);
	logq.running = 0;
	log_flush_locked();
	pthread_mutex_unlock(&logq.mu);
}

static struct cm_log logger = {log_line, NULL, CM_LOG_INFO};

/* A start-up error as a JSON line too, then exit. */
static void die(int status, const char *msg)
{
	cm_logkv(&logger, CM_LOG_ERROR, msg, CM_LOG_END);
	exit(status);
}

/* Reads the secret from a file (at most SECRET_MAX bytes; one trailing
 * newline stripped); a usage error when it cannot. */
static size_t read_secret_file(const char *path, unsigned char *out)
{
	struct stat st;
	char msg[512];
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(msg, sizeof(msg), "JWT secret file %s: %s", path, strerror(errno));
		die(CM_EXIT_USAGE, msg);
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077))
		cm_logkv(&logger, CM_LOG_WARNING,
		         "the JWT secret file can be read by other users (chmod 600 it)", "file",
		         path, CM_LOG_END);
	while (len <= SECRET_MAX) {
		n = read(fd, out + len, SECRET_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(msg, sizeof(msg), "JWT secret file %s: %s", path, strerror(errno));
			close(fd);
			die(CM_EXIT_USAGE, msg);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > SECRET_MAX) {
		snprintf(msg, sizeof(msg), "JWT secret file %s: longer than %d bytes", path,
		         SECRET_MAX);
		die(CM_EXIT_USAGE, msg);
	}
	if (len && out[len - 1] == '\n')
		len--;
	if (len && out[len - 1] == '\r')
		len--;
	return len;
}

/* The secret: --jwt-secret-file, else $CM_JWT_SECRET, else
 * $CM_JWT_SECRET_FILE; at least 32 bytes. $CM_JWT_SECRET is wiped from the
 * environment whichever is used (in place, so that /proc/PID/environ no
 * longer shows it, and nothing the server starts inherits it). */
static size_t load_secret(const char *file, unsigned char *out)
{
	char *env = getenv("CM_JWT_SECRET");
	const char *envfile = getenv("CM_JWT_SECRET_FILE");
	char msg[256];
	size_t len, envlen = env ? strlen(env) : 0;

	if (file) {
		len = read_secret_file(file, out);
	} else if (envlen) {
		len = envlen;
		if (len > SECRET_MAX)
			die(CM_EXIT_USAGE, "CM_JWT_SECRET: longer than 4096 bytes");
		memcpy(out, env, len);
	} else if (envfile && *envfile) {
		len = read_secret_file(envfile, out);
	} else {
		die(CM_EXIT_USAGE, "no JWT secret: give --jwt-secret-file FILE, CM_JWT_SECRET or "
		                   "CM_JWT_SECRET_FILE");
	}
	if (len < CM_JWT_KEY_MIN) {
		snprintf(msg, sizeof(msg),
		         "the JWT secret is %zu bytes; it must be at least %d (try: head -c 48 "
		         "/dev/urandom | base64 > FILE)",
		         len, CM_JWT_KEY_MIN);
		die(CM_EXIT_USAGE, msg);
	}
	if (env) {
		sodium_memzero(env, envlen);
		unsetenv("CM_JWT_SECRET");
	}
	return len;
}

enum {
	OPT_LISTEN = 256,
	OPT_SECRET,
	OPT_DB,
	OPT_REDIS,
	OPT_STREAM,
	OPT_THREADS,
	OPT_TTL,
	OPT_MAXBODY,
	OPT_MAXCONN,
	OPT_PERIP,
	OPT_TIMEOUT,
	OPT_WORKERTTL,
	OPT_LOGLEVEL,
	OPT_BACKTEST,
};

struct opts {
	const char *listen, *secret_file, *db, *redis, *stream;
	int64_t threads, token_ttl, max_conn, per_ip, timeout, worker_ttl;
	size_t max_body;
	int64_t backtest_ms;
};

/* Parses an option number within [min, max] or exits with a usage error. */
static int64_t num_opt(const char *name, const char *v, int64_t min, int64_t max)
{
	int64_t n;

	if (cm_parse_i64(v, min, max, &n) < 0)
		cm_usage_error("--%s: expected a number from %lld to %lld, got '%s'", name,
		               (long long)min, (long long)max, v);
	return n;
}

static void parse_opts(int argc, char **argv, struct opts *o, long cores)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"jwt-secret-file", required_argument, NULL, OPT_SECRET},
	    {"db", required_argument, NULL, OPT_DB},
	    {"redis", required_argument, NULL, OPT_REDIS},
	    {"stream", required_argument, NULL, OPT_STREAM},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"token-ttl", required_argument, NULL, OPT_TTL},
	    {"max-body", required_argument, NULL, OPT_MAXBODY},
	    {"max-connections", required_argument, NULL, OPT_MAXCONN},
	    {"max-per-ip", required_argument, NULL, OPT_PERIP},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"worker-ttl", required_argument, NULL, OPT_WORKERTTL},
	    {"log-level", required_argument, NULL, OPT_LOGLEVEL},
	    {"backtest-time", required_argument, NULL, OPT_BACKTEST},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c, lvl;

	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			o->listen = optarg;
			break;
		case OPT_SECRET:
			o->secret_file = optarg;
			break;
		case OPT_DB:
			o->db = optarg;
			break;
		case OPT_REDIS:
			o->redis = optarg;
			break;
		case OPT_STREAM:
			if (!*optarg)
				cm_usage_error("--stream: empty key");
			o->stream = optarg;
			break;
		case OPT_THREADS:
			o->threads = num_opt("threads", optarg, 1, cores);
			break;
		case OPT_TTL:
			o->token_ttl = num_opt("token-ttl", optarg, 60, 7 * 86400);
			break;
		case OPT_MAXBODY:
			if (cm_parse_size(optarg, 1024, (size_t)256 << 20, &o->max_body) < 0)
				cm_usage_error(
				    "--max-body: expected a size from 1K to 256M, got '%s'",
				    optarg);
			break;
		case OPT_MAXCONN:
			o->max_conn = num_opt("max-connections", optarg, 1, 1000000);
			break;
		case OPT_PERIP:
			o->per_ip = num_opt("max-per-ip", optarg, 0, 1000000);
			break;
		case OPT_TIMEOUT:
			o->timeout = num_opt("timeout", optarg, 1, 3600);
			break;
		case OPT_WORKERTTL:
			o->worker_ttl = num_opt("worker-ttl", optarg, 1, 86400);
			break;
		case OPT_BACKTEST:
			o->backtest_ms = num_opt("backtest-time", optarg, 1, 3600 * 1000);
			break;
		case OPT_LOGLEVEL:
			lvl = cm_log_level_parse(optarg);
			if (lvl < 0)
				cm_usage_error(
				    "--log-level: expected debug, info, warning or error, "
				    "got '%s'",
				    optarg);
			logger.min_level = lvl;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(fflush(stdout) == 0 ? CM_EXIT_OK : CM_EXIT_USAGE);
		case 'V':
			cm_print_version();
		default:
			fprintf(stderr, "Try 'cm-httpd --help' for more information.\n");
			exit(CM_EXIT_USAGE);
		}
	}
	if (optind < argc)
		cm_usage_error("unexpected argument '%s'", argv[optind]);
}

int main(int argc, char **argv)
{
	static unsigned char secret[SECRET_MAX + 1];
	struct opts o = {NULL, NULL, NULL,        NULL, CM_REDIS_DEFAULT_STREAM, 0, 1800, 1024, 256,
	                 30,   30,   1024 * 1024, 10000};
	struct cm_redis_url url;
	struct cm_api_opts ao;
	struct cm_http_opts ho;
	struct cm_api *api;
	struct cm_http *http;
	struct cm_err err;
	char host[256], port_s[16], threads_s[16];
	const char *conninfo;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	sigset_t sigs;
	size_t secret_len;
	int port, fd, sig, left;

	cm_cli_init(argv[0]);
	pthread_mutex_init(&logq.mu, NULL);
	if (cores < 1)
		cores = 1;
	parse_opts(argc, argv, &o, cores);
	if (!o.listen)
		o.listen = getenv("CM_LISTEN") && *getenv("CM_LISTEN") ? getenv("CM_LISTEN")
		                                                       : "127.0.0.1:8000";
	if (cm_http_parse_listen(o.listen, host, sizeof(host), &port, &err) < 0)
		cm_usage_error("--listen: %s", err.msg);
	if (cm_redis_url_parse(cm_redis_url(o.redis), &url, &err) < 0)
		cm_usage_error("--redis: %s", err.msg);
	conninfo = cm_pg_conninfo(o.db);
	if (cm_pg_conninfo_check(conninfo, &err) < 0)
		cm_usage_error("--db: %s", err.msg);
	if (sodium_init() < 0)
		die(CM_EXIT_USAGE, "libsodium failed to initialise");
	secret_len = load_secret(o.secret_file, secret);
	if (o.threads == 0)
		o.threads = cores;

	/* Every thread started from here blocks these; main waits for them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if (cm_http_bind(host, port, &fd, &err) < 0)
		die(EXIT_SYSTEM, err.msg);
	memset(&ao, 0, sizeof(ao));
	ao.conninfo = conninfo;
	ao.redis = &url;
	ao.stream = o.stream;
	ao.secret = secret;
	ao.secret_len = secret_len;
	ao.token_ttl_s = o.token_ttl;
	ao.worker_ttl_s = o.worker_ttl;
	ao.backtest_ms = o.backtest_ms;
	ao.max_body = o.max_body;
	ao.log = &logger;
	api = cm_api_start(&ao, &err);
	sodium_memzero(secret, sizeof(secret));
	if (!api)
		die(CM_EXIT_USAGE, err.msg);
	memset(&ho, 0, sizeof(ho));
	ho.listen_fd = fd;
	ho.threads = (unsigned)o.threads;
	ho.max_connections = (unsigned)o.max_conn;
	ho.max_per_ip = (unsigned)o.per_ip;
	ho.timeout_s = (unsigned)o.timeout;
	ho.max_body = o.max_body;
	ho.max_head = 16 * 1024;
	ho.handler = cm_api_handle;
	ho.too_big = cm_api_too_big;
	ho.on_done = cm_api_done;
	ho.app = api;
	ho.log = &logger;
	http = cm_http_start(&ho, &err);
	if (!http) {
		cm_api_stop(api);
		cm_api_free(api);
		die(EXIT_SYSTEM, err.msg);
	}
	snprintf(port_s, sizeof(port_s), "%d", port);
	snprintf(threads_s, sizeof(threads_s), "%lld", (long long)o.threads);
	cm_logkv(&logger, CM_LOG_INFO, "listening", "host", host, "#port", port_s, "#threads",
	         threads_s, "stream", o.stream, "redis", url.safe, "version", CM_VERSION,
	         CM_LOG_END);
	log_start();

	do
		if (sigwait(&sigs, &sig) != 0)
			sig = SIGTERM;
	while (sig == SIGHUP);

	cm_logkv(&logger, CM_LOG_INFO, "stopping: finishing the requests in progress", "signal",
	         sig == SIGINT ? "SIGINT" : "SIGTERM", CM_LOG_END);
	left = cm_http_drain(http, o.timeout * 1000);
	/* Whatever is still out comes back now (published, or failed with a
	 * 503), and its replies go out before the threads stop. */
	cm_api_stop(api);
	if (left)
		cm_http_drain(http, 5000);
	cm_http_stop(http);
	cm_api_free(api);
	cm_logkv(&logger, CM_LOG_INFO, "stopped", CM_LOG_END);
	log_stop();
	return CM_EXIT_OK;
}
