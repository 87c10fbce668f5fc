/* redisx.h - connecting to Redis from a CONTRACT URL
 * (redis://[:pass@]host[:port][/db], unix:///path[?db=N]). */
#ifndef CM_REDISX_H
#define CM_REDISX_H

#include <hiredis/hiredis.h>

struct cm_err;

/* Default URL when neither --redis nor CM_REDIS_URL is given. */
#define CM_REDIS_DEFAULT_URL "redis://127.0.0.1:6379"

/* Connects (with a timeout), authenticates and selects the database; on
 * failure returns NULL with err saying which step failed. The caller frees
 * the context with redisFree. */
redisContext *cm_redis_connect(const char *url, struct cm_err *err);
/* The URL to use: opt if set, else $CM_REDIS_URL, else the default. */
const char *cm_redis_url(const char *opt);

#endif
