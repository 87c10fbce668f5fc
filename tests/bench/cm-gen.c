/* cm-gen.c - the deterministic data generator behind make bench and the tests:
 * canonical events, campaigns, an orders CSV and the single bench campaign.
 * The output depends only on the arguments (its own PRNG, integer arithmetic,
 * no clock, no locale), so it is the same on every run and every machine. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "version.h"

#define OUT_CAP   (1u << 20)
#define MAX_N     1000000000000LL
#define YEAR_SECS (365LL * 86400)
#define N_TYPES   60
#define N_USERS   100000

/* The output: one big buffer written with write(2) when nearly full. */
struct wout {
	char *buf;
	size_t len;
	int failed; /* errno of the failed write; EPIPE means the reader left */
};

/* xoshiro256** state, seeded through splitmix64. */
struct rng {
	uint64_t s[4];
};

/* Property keys an event type carries; the keys of one type never vary. */
enum {
	P_AMOUNT = 1 << 0,
	P_CURRENCY = 1 << 1,
	P_COUNTRY = 1 << 2,
	P_CITY = 1 << 3,
	P_SKU = 1 << 4,
	P_ITEMS = 1 << 5,
	P_TAGS = 1 << 6,
	P_PLAN = 1 << 7,
	P_CHANNEL = 1 << 8,
	P_REFERRER = 1 << 9,
	P_CART = 1 << 10,
	P_QUERY = 1 << 11,
};

#define F_COMMERCE (P_AMOUNT | P_CURRENCY | P_COUNTRY | P_SKU | P_ITEMS | P_CHANNEL | P_TAGS)
#define F_BROWSE   (P_CHANNEL | P_COUNTRY | P_REFERRER | P_SKU | P_TAGS)
#define F_ACCOUNT  (P_PLAN | P_CHANNEL | P_COUNTRY | P_CITY)
#define F_SUBSCR   (P_PLAN | P_AMOUNT | P_CURRENCY | P_COUNTRY | P_CHANNEL)
#define F_MESSAGE  (P_CHANNEL | P_COUNTRY | P_TAGS)
#define F_PAGE     (P_CHANNEL | P_COUNTRY | P_REFERRER)

struct etype {
	const char *name;
	unsigned weight; /* relative frequency; purchase's is computed */
	unsigned props;
};

/* Ordered by popularity: --types K takes the first K. */
static const struct etype types[N_TYPES] = {
    {"purchase", 0, F_COMMERCE | P_CART | P_CITY},
    {"page_view", 300, F_PAGE},
    {"product_viewed", 160, P_CHANNEL | P_COUNTRY | P_SKU},
    {"search", 90, P_QUERY | P_CHANNEL | P_COUNTRY},
    {"add_to_cart", 80, F_COMMERCE & ~P_TAGS},
    {"login", 60, F_ACCOUNT},
    {"session_started", 50, F_ACCOUNT | P_REFERRER},
    {"checkout_started", 40, F_COMMERCE | P_CART},
    {"signup", 24, F_ACCOUNT | P_REFERRER},
    {"remove_from_cart", 22, F_COMMERCE},
    {"email_opened", 20, F_MESSAGE},
    {"email_clicked", 16, F_MESSAGE},
    {"refund", 12, F_COMMERCE},
    {"push_opened", 12, F_MESSAGE},
    {"wishlist_added", 11, F_BROWSE},
    {"coupon_applied", 10, F_COMMERCE},
    {"payment_failed", 9, F_COMMERCE},
    {"subscription_started", 8, F_SUBSCR},
    {"subscription_renewed", 8, F_SUBSCR},
    {"subscription_cancelled", 6, F_SUBSCR},
    {"review_submitted", 6, F_MESSAGE | P_SKU},
    {"support_ticket_opened", 5, F_MESSAGE},
    {"app_installed", 5, F_ACCOUNT},
    {"logout", 5, F_ACCOUNT},
    {"password_reset", 4, F_ACCOUNT},
    {"profile_updated", 4, F_ACCOUNT},
    {"address_added", 4, F_ACCOUNT},
    {"payment_method_added", 4, F_ACCOUNT},
    {"order_shipped", 4, F_COMMERCE},
    {"order_delivered", 4, F_COMMERCE | P_CITY},
    {"order_returned", 3, F_COMMERCE},
    {"trial_started", 3, F_SUBSCR},
    {"trial_converted", 3, F_SUBSCR},
    {"plan_upgraded", 3, F_SUBSCR},
    {"plan_downgraded", 3, F_SUBSCR},
    {"referral_sent", 3, F_MESSAGE},
    {"referral_converted", 3, F_MESSAGE},
    {"newsletter_subscribed", 3, F_MESSAGE},
    {"newsletter_unsubscribed", 2, F_MESSAGE},
    {"sms_clicked", 2, F_MESSAGE},
    {"banner_clicked", 2, F_BROWSE},
    {"video_played", 2, F_BROWSE},
    {"video_completed", 2, F_BROWSE},
    {"share_clicked", 2, F_BROWSE},
    {"gift_card_redeemed", 2, F_COMMERCE},
    {"loyalty_points_earned", 2, F_COMMERCE},
    {"loyalty_points_redeemed", 2, F_COMMERCE},
    {"store_visit", 2, F_ACCOUNT},
    {"chat_started", 2, F_MESSAGE},
    {"survey_completed", 2, F_MESSAGE},
    {"app_opened", 2, F_ACCOUNT},
    {"notification_enabled", 1, F_ACCOUNT},
    {"cart_abandoned", 1, F_COMMERCE | P_CART},
    {"price_alert_set", 1, F_BROWSE},
    {"back_in_stock_requested", 1, F_BROWSE},
    {"invoice_paid", 1, F_SUBSCR},
    {"invoice_overdue", 1, F_SUBSCR},
    {"account_deleted", 1, F_ACCOUNT},
    {"two_factor_enabled", 1, F_ACCOUNT},
    {"feature_used", 1, F_ACCOUNT},
};

/* Countries with their weight and currency. */
struct country {
	const char *code, *currency;
	unsigned weight;
};

#define N_COUNTRIES 15
static const struct country countries[N_COUNTRIES] = {
    {"DE", "EUR", 20}, {"US", "USD", 18}, {"GB", "GBP", 10}, {"FR", "EUR", 9}, {"NL", "EUR", 6},
    {"AT", "EUR", 5},  {"CH", "CHF", 5},  {"ES", "EUR", 5},  {"IT", "EUR", 5}, {"PL", "PLN", 4},
    {"JP", "JPY", 4},  {"SE", "SEK", 3},  {"BR", "BRL", 3},  {"CA", "CAD", 2}, {"AU", "AUD", 1},
};

/* Three cities per country, in the order of countries (some not ASCII). */
static const char *const cities[N_COUNTRIES * 3] = {
    "Berlin",    "München",        "Köln",      "New York", "San Francisco", "Austin",
    "London",    "Manchester",     "Leeds",     "Paris",    "Lyon",          "Besançon",
    "Amsterdam", "Utrecht",        "Rotterdam", "Wien",     "Graz",          "Linz",
    "Zürich",    "Genève",         "Basel",     "Madrid",   "A Coruña",      "Sevilla",
    "Milano",    "Roma",           "Torino",    "Kraków",   "Warszawa",      "Łódź",
    "東京",      "大阪",           "Kyoto",     "Malmö",    "Göteborg",      "Stockholm",
    "São Paulo", "Rio de Janeiro", "Brasília",  "Toronto",  "Montréal",      "Vancouver",
    "Sydney",    "Melbourne",      "Perth",
};

static const char *const currencies[] = {"EUR", "USD", "GBP", "CHF", "PLN",
                                         "JPY", "SEK", "BRL", "CAD", "AUD"};
static const char *const channels[] = {"web", "ios", "android", "email", "pos", "partner"};
static const char *const plans[] = {"free", "basic", "pro", "team", "enterprise"};
static const char *const tags[] = {"promo",     "sale",   "new", "gift",   "vip",
                                   "clearance", "bundle", "b2b", "mobile", "first_order"};
static const char *const referrers[] = {"https://www.google.com/",        "https://www.google.de/",
                                        "https://www.facebook.com/",      "https://t.co/x4Kp9",
                                        "https://duckduckgo.com/",        "https://www.bing.com/",
                                        "https://news.example.com/spring"};
static const char *const queries[] = {
    "running shoes", "rain jacket",  "gift card",  "café au lait mug", "headphones",
    "yoga mat",      "winter boots", "東京 guide", "usb-c cable",      "backpack 30l"};
static const char *const words[] = {"spring", "vip",     "winback", "upsell", "loyalty",
                                    "flash",  "weekend", "launch",  "nudge",  "reactivation"};
static const char *const notes[] = {
    "leave at door",    "gift wrap, please",    "said \"ring twice\", thanks",
    "Grüße aus Zürich", "call before delivery", "fragile; \"handle with care\"",
    "no invoice",       "2nd floor, left door", "back door\nafter 6pm"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* splitmix64 spreads a small seed over the whole xoshiro state. */
static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Seeds a generator; stream keeps the data kinds independent of each other. */
static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

/* Rotation helper of xoshiro256**. */
static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* Next 64 random bits (xoshiro256**, public-domain algorithm by Blackman and Vigna). */
static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* A number in [0, n) by multiply-shift, which needs no division. */
static inline uint64_t below(struct rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* True with probability pct percent. */
static inline int chance(struct rng *r, unsigned pct)
{
	return below(r, 100) < pct;
}

/* Writes the buffered bytes to stdout; remembers the first error. */
static void w_flush(struct wout *w)
{
	size_t off = 0;

	while (off < w->len && !w->failed) {
		ssize_t n = write(STDOUT_FILENO, w->buf + off, w->len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			w->failed = errno;
			break;
		}
		off += (size_t)n;
	}
	w->len = 0;
}

/* Makes sure n bytes fit; records are far smaller than the buffer. */
static inline void w_room(struct wout *w, size_t n)
{
	if (w->len + n > OUT_CAP)
		w_flush(w);
}

/* Appends n bytes. */
static inline void w_mem(struct wout *w, const char *s, size_t n)
{
	w_room(w, n);
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

/* Appends a NUL-terminated string. */
static inline void w_str(struct wout *w, const char *s)
{
	w_mem(w, s, strlen(s));
}

/* Appends one byte. */
static inline void w_chr(struct wout *w, char c)
{
	w_room(w, 1);
	w->buf[w->len++] = c;
}

/* Appends an unsigned decimal number. */
static inline void w_u64(struct wout *w, uint64_t v)
{
	char tmp[24];
	int i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	w_mem(w, tmp + i, sizeof(tmp) - (size_t)i);
}

/* Appends v as exactly width digits, zero-padded. */
static inline void w_pad(struct wout *w, unsigned v, int width)
{
	char tmp[8];

	for (int i = width - 1; i >= 0; i--) {
		tmp[i] = (char)('0' + v % 10);
		v /= 10;
	}
	w_mem(w, tmp, (size_t)width);
}

/* Appends "key": with the opening comma when it is not the first key. */
static inline void w_key(struct wout *w, const char *key, int *first)
{
	if (!*first)
		w_chr(w, ',');
	*first = 0;
	w_chr(w, '"');
	w_str(w, key);
	w_str(w, "\":");
}

/* Appends a JSON string literal; the generator's strings only need " and \ escaped. */
static void w_jstr(struct wout *w, const char *s)
{
	w_chr(w, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			w_chr(w, '\\');
		w_chr(w, *s);
	}
	w_chr(w, '"');
}

/* Appends "key":"value". */
static inline void w_kstr(struct wout *w, const char *key, const char *val, int *first)
{
	w_key(w, key, first);
	w_jstr(w, val);
}

/* Appends a money amount given in cents: "120", "99.5", "99.95" or "120.0". */
static void w_amount(struct wout *w, uint64_t cents, int integer)
{
	w_u64(w, cents / 100);
	if (integer)
		return;
	w_chr(w, '.');
	if (cents % 10)
		w_pad(w, (unsigned)(cents % 100), 2);
	else
		w_chr(w, (char)('0' + cents % 100 / 10));
}

/* Appends a 2026 time, s seconds into the year, with or without milliseconds;
 * offset_min != 0 writes a numeric offset instead of Z (the CSV's local times). */
static void w_time(struct wout *w, uint64_t s, int ms, int offset_min)
{
	unsigned day = (unsigned)(s / 86400), sec = (unsigned)(s % 86400), mon = 0;

	while (mon < 11 && day >= (unsigned)month_days[mon])
		day -= (unsigned)month_days[mon++];
	w_str(w, "2026-");
	w_pad(w, mon + 1, 2);
	w_chr(w, '-');
	w_pad(w, day + 1, 2);
	w_chr(w, 'T');
	w_pad(w, sec / 3600, 2);
	w_chr(w, ':');
	w_pad(w, sec / 60 % 60, 2);
	w_chr(w, ':');
	w_pad(w, sec % 60, 2);
	if (ms >= 0) {
		w_chr(w, '.');
		w_pad(w, (unsigned)ms, 3);
	}
	if (offset_min == 0) {
		w_chr(w, 'Z');
		return;
	}
	w_chr(w, offset_min < 0 ? '-' : '+');
	if (offset_min < 0)
		offset_min = -offset_min;
	w_pad(w, (unsigned)offset_min / 60, 2);
	w_chr(w, ':');
	w_pad(w, (unsigned)offset_min % 60, 2);
}

/* The time of record n of count: spread over 2026 in order, with up to an
 * hour of jitter, as a stream of real events would be. */
static uint64_t spread_time(struct rng *r, uint64_t n, uint64_t count)
{
	uint64_t t = (uint64_t)((unsigned __int128)(n - 1) * YEAR_SECS / (count ? count : 1));

	t += below(r, 3600);
	return t < YEAR_SECS ? t : YEAR_SECS - 1 - below(r, 60);
}

/* Draws an index from a table of cumulative weights. */
static unsigned pick_weighted(struct rng *r, const unsigned *cum, unsigned n)
{
	uint64_t u = below(r, cum[n - 1]);
	unsigned i = 0;

	while (u >= cum[i])
		i++;
	return i;
}

/* A country index, weighted by how much traffic each country sends. */
static unsigned pick_country(struct rng *r)
{
	static unsigned cum[N_COUNTRIES];

	if (!cum[0]) {
		unsigned sum = 0;

		for (unsigned i = 0; i < N_COUNTRIES; i++)
			cum[i] = sum += countries[i].weight;
	}
	return pick_weighted(r, cum, N_COUNTRIES);
}

/* An amount in cents between 0 and 500, most below 100 as in a real shop. */
static uint64_t pick_cents(struct rng *r)
{
	if (chance(r, 62))
		return 100 + below(r, 9900);
	return 10000 + below(r, 40001);
}

/* A SKU number: a fifth of the catalogue gets half of the traffic. */
static unsigned pick_sku(struct rng *r)
{
	return chance(r, 50) ? 10000 + (unsigned)below(r, 4000) : 10000 + (unsigned)below(r, 20000);
}

/* 1 to 10 items, mostly few. */
static unsigned pick_items(struct rng *r)
{
	static const unsigned cum[10] = {40, 65, 78, 86, 91, 94, 96, 98, 99, 100};

	return pick_weighted(r, cum, 10) + 1;
}

/* Writes the properties object for one event of type t. */
static void w_props(struct wout *w, struct rng *r, unsigned props)
{
	unsigned c = pick_country(r);
	uint64_t cents = 0;
	unsigned items = 0;
	int integer = 0, first = 1;

	w_chr(w, '{');
	if (props & P_AMOUNT) {
		cents = pick_cents(r);
		integer = chance(r, 35);
		if (integer)
			cents -= cents % 100;
		w_key(w, "amount", &first);
		w_amount(w, cents, integer);
	}
	if (props & P_CURRENCY)
		w_kstr(w, "currency", countries[c].currency, &first);
	if (props & P_COUNTRY)
		w_kstr(w, "country", countries[c].code, &first);
	if (props & P_CITY)
		w_kstr(w, "city", cities[c * 3 + below(r, 3)], &first);
	if (props & P_SKU) {
		w_key(w, "sku", &first);
		w_str(w, "\"SKU-");
		w_u64(w, pick_sku(r));
		w_chr(w, '"');
	}
	if (props & P_ITEMS) {
		items = pick_items(r);
		w_key(w, "items", &first);
		w_u64(w, items);
	}
	if (props & P_TAGS) {
		unsigned n = (unsigned)below(r, 4), start = (unsigned)below(r, NELEM(tags));

		w_key(w, "tags", &first);
		w_chr(w, '[');
		for (unsigned i = 0; i < n; i++) {
			if (i)
				w_chr(w, ',');
			w_jstr(w, tags[(start + i * 3) % NELEM(tags)]);
		}
		w_chr(w, ']');
	}
	if (props & P_PLAN)
		w_kstr(w, "plan", plans[below(r, NELEM(plans))], &first);
	if (props & P_CHANNEL)
		w_kstr(w, "channel", channels[below(r, NELEM(channels))], &first);
	if (props & P_REFERRER)
		w_kstr(w, "referrer", referrers[below(r, NELEM(referrers))], &first);
	if (props & P_QUERY)
		w_kstr(w, "query", queries[below(r, NELEM(queries))], &first);
	if (props & P_CART) {
		w_key(w, "cart", &first);
		w_str(w, "{\"total\":");
		w_amount(w, cents, integer);
		w_str(w, ",\"lines\":");
		w_u64(w, items ? (items + 1) / 2 : 1);
		w_chr(w, '}');
	}
	w_chr(w, '}');
}

/* Cumulative weights of the first k types, purchase set to about 10%. */
static void type_weights(unsigned k, unsigned *cum)
{
	unsigned rest = 0, sum = 0;

	for (unsigned i = 1; i < k; i++)
		rest += types[i].weight;
	for (unsigned i = 0; i < k; i++) {
		sum += i ? types[i].weight : (k == 1 ? 1 : (rest + 4) / 9);
		cum[i] = sum;
	}
}

/* cm-gen events: count canonical events, one compact JSON object a line. */
static void gen_events(struct wout *w, uint64_t count, uint64_t seed, unsigned k)
{
	struct rng r;
	unsigned cum[N_TYPES];

	rng_seed(&r, seed, 1);
	type_weights(k, cum);
	for (uint64_t n = 1; n <= count && !w->failed; n++) {
		unsigned t = pick_weighted(&r, cum, k);
		uint64_t when = spread_time(&r, n, count);

		w_str(w, "{\"event_id\":\"e-");
		w_u64(w, seed);
		w_chr(w, '-');
		w_u64(w, n);
		w_str(w, "\",\"event_type\":\"");
		w_str(w, types[t].name);
		w_str(w, "\",\"user_id\":\"u-");
		w_u64(w, 1 + below(&r, N_USERS));
		w_str(w, "\",\"occurred_at\":\"");
		w_time(w, when, chance(&r, 30) ? (int)below(&r, 1000) : -1, 0);
		w_str(w, "\",\"properties\":");
		w_props(w, &r, types[t].props);
		w_str(w, "}\n");
	}
}

/* Fields a native condition may test, by the property that carries them. */
enum cond_kind { C_ENUM, C_NUM, C_PREFIX, C_SKU };

struct cond_field {
	unsigned prop;
	const char *path;
	enum cond_kind kind;
	const char *const *vals; /* C_ENUM and C_PREFIX: the values to draw from */
	unsigned nvals;
};

static const char *const country_codes[] = {"DE", "US", "GB", "FR", "NL", "AT", "CH", "ES",
                                            "IT", "PL", "JP", "SE", "BR", "CA", "AU"};
static const char *const sku_prefixes[] = {"SKU-10", "SKU-11",  "SKU-12", "SKU-13",
                                           "SKU-2",  "SKU-104", "SKU-125"};
static const char *const ref_prefixes[] = {"https://www.google.", "https://t.co/",
                                           "https://www.facebook.com/",
                                           "https://news.example.com/"};

static const struct cond_field cond_fields[] = {
    {P_COUNTRY, "properties.country", C_ENUM, country_codes, NELEM(country_codes)},
    {P_CURRENCY, "properties.currency", C_ENUM, currencies, NELEM(currencies)},
    {P_CHANNEL, "properties.channel", C_ENUM, channels, NELEM(channels)},
    {P_PLAN, "properties.plan", C_ENUM, plans, NELEM(plans)},
    {P_AMOUNT, "properties.amount", C_NUM, NULL, 0},
    {P_ITEMS, "properties.items", C_NUM, NULL, 0},
    {P_CITY, "properties.city", C_ENUM, cities, NELEM(cities)},
    {P_SKU, "properties.sku", C_SKU, sku_prefixes, NELEM(sku_prefixes)},
    {P_REFERRER, "properties.referrer", C_PREFIX, ref_prefixes, NELEM(ref_prefixes)},
};

/* Writes one leaf condition on field f. */
static void w_leaf(struct wout *w, struct rng *r, const struct cond_field *f)
{
	static const char *const num_ops[] = {"gte", "gt", "lt", "lte"};
	static const unsigned amount_min[] = {50, 75, 100, 150, 200, 250, 300, 400};
	static const unsigned amount_max[] = {10, 20, 30, 50};

	w_str(w, "{\"field\":\"");
	w_str(w, f->path);
	w_str(w, "\",\"op\":\"");
	if (f->kind == C_NUM) {
		/* Mostly lower bounds, as marketing rules are. */
		unsigned op = chance(r, 75) ? (unsigned)below(r, 2) : 2 + (unsigned)below(r, 2);

		w_str(w, num_ops[op]);
		w_str(w, "\",\"value\":");
		if (f->prop == P_AMOUNT) {
			uint64_t v = op < 2 ? amount_min[below(r, NELEM(amount_min))]
			                    : amount_max[below(r, NELEM(amount_max))];

			if (chance(r, 20))
				w_amount(w, v * 100 - 50, 0);
			else
				w_u64(w, v);
		} else {
			w_u64(w, op < 2 ? 2 + below(r, 5) : 2 + below(r, 2));
		}
	} else if (f->kind == C_SKU && chance(r, 50)) {
		/* One product, among the popular ones. */
		w_str(w, "eq\",\"value\":\"SKU-");
		w_u64(w, 10000 + below(r, 4000));
		w_chr(w, '"');
	} else if (f->kind == C_PREFIX || f->kind == C_SKU) {
		w_str(w, "starts_with\",\"value\":");
		w_jstr(w, f->vals[below(r, f->nvals)]);
	} else if (chance(r, 50)) {
		w_str(w, "eq\",\"value\":");
		w_jstr(w, f->vals[below(r, f->nvals)]);
	} else {
		/* At most half of the values, so that in stays selective. */
		unsigned n = 2 + (unsigned)below(r, 4), start = (unsigned)below(r, f->nvals);

		if (n > f->nvals / 2)
			n = f->nvals / 2 < 2 ? 2 : f->nvals / 2;
		w_str(w, "in\",\"value\":[");
		for (unsigned i = 0; i < n; i++) {
			if (i)
				w_chr(w, ',');
			w_jstr(w, f->vals[(start + i) % f->nvals]);
		}
		w_chr(w, ']');
	}
	w_chr(w, '}');
}

/* Writes the where tree of 1 to 3 native conditions on fields type t has. */
static void w_where(struct wout *w, struct rng *r, unsigned props)
{
	const struct cond_field *cand[NELEM(cond_fields)];
	unsigned ncand = 0, n, shape;

	for (unsigned i = 0; i < NELEM(cond_fields); i++)
		if (props & cond_fields[i].prop)
			cand[ncand++] = &cond_fields[i];
	n = chance(r, 20) ? 1 : chance(r, 60) ? 2 : 3;
	if (n > ncand)
		n = ncand;
	/* A partial shuffle picks n distinct fields. */
	for (unsigned i = 0; i < n; i++) {
		unsigned j = i + (unsigned)below(r, ncand - i);
		const struct cond_field *tmp = cand[i];

		cand[i] = cand[j];
		cand[j] = tmp;
	}
	shape = (unsigned)below(r, 100);
	if (n == 1 && shape < 70) {
		w_leaf(w, r, cand[0]);
		return;
	}
	if (n == 1 && shape < 90) {
		w_str(w, "{\"all\":[");
		w_leaf(w, r, cand[0]);
		w_str(w, "]}");
		return;
	}
	if (n == 1) {
		w_str(w, "{\"not\":");
		w_leaf(w, r, cand[0]);
		w_chr(w, '}');
		return;
	}
	w_str(w, shape < 90 ? "{\"all\":[" : "{\"any\":[");
	for (unsigned i = 0; i < n; i++) {
		int negate = i == n - 1 && shape >= 80 && shape < 90;

		if (i)
			w_chr(w, ',');
		if (negate)
			w_str(w, "{\"not\":");
		w_leaf(w, r, cand[i]);
		if (negate)
			w_chr(w, '}');
	}
	w_str(w, "]}");
}

/* The jq predicates: about ten shapes with a few parameters each, so that a
 * large campaign set repeats the same programs, as real ones do. */
static void w_jq(struct wout *w, struct rng *r)
{
	static const char *const tagv[] = {"promo", "sale", "vip", "gift"};
	static const char *const countryv[] = {"DE|AT|CH", "US|CA", "FR|ES|IT", "GB"};
	static const char *const refv[] = {"https://www.google.", "https://t.co/",
	                                   "https://www.facebook.com/"};
	static const char *const chanv[] = {"web", "ios", "android"};
	char tmp[256];
	unsigned p = (unsigned)below(r, 4);
	int len;

	switch (below(r, 10)) {
	case 0:
		len = snprintf(tmp, sizeof(tmp), "(.properties.items // 0) >= %u", 2 + p);
		break;
	case 1:
		len = snprintf(tmp, sizeof(tmp), "(.properties.tags // []) | index(\"%s\") != null",
		               tagv[p]);
		break;
	case 2:
		len = snprintf(tmp, sizeof(tmp), "(.properties.amount // 0) > %u",
		               p == 0 ? 50 : 100 * p);
		break;
	case 3:
		len = snprintf(tmp, sizeof(tmp), "(.properties.country // \"\") | test(\"^(%s)$\")",
		               countryv[p]);
		break;
	case 4:
		len = snprintf(tmp, sizeof(tmp),
		               "(.user_id | ltrimstr(\"u-\") | tonumber) %% %u == 0",
		               p == 3 ? 7 : 2 + p);
		break;
	case 5:
		len = snprintf(tmp, sizeof(tmp),
		               "(.properties.referrer // \"\") | startswith(\"%s\")", refv[p % 3]);
		break;
	case 6:
		len = snprintf(tmp, sizeof(tmp), "(.properties.tags // []) | length >= %u",
		               1 + p % 3);
		break;
	case 7:
		len = snprintf(tmp, sizeof(tmp), "(.occurred_at[5:7] | tonumber) >= %u", 3 + 3 * p);
		break;
	case 8:
		len = snprintf(tmp, sizeof(tmp), "(.properties.cart.lines // 0) > %u", 1 + p);
		break;
	default:
		len = snprintf(
		    tmp, sizeof(tmp),
		    ".properties.channel == \"%s\" and "
		    "([.properties.amount // 0, (.properties.items // 0) * 10] | add) > %u",
		    chanv[p % 3], 100 + 100 * p);
		break;
	}
	if (len < 0 || (size_t)len >= sizeof(tmp))
		tmp[0] = 0;
	w_jstr(w, tmp);
}

/* The traits of user u (1..N_USERS), the same in every run: what cm-gen
 * profiles writes and the profile conditions of campaigns test. */
static void w_traits(struct wout *w, uint64_t u)
{
	struct rng r;
	int first = 1;

	rng_seed(&r, u, 4);
	w_chr(w, '{');
	w_kstr(w, "plan", plans[below(&r, NELEM(plans))], &first);
	w_key(w, "tier", &first);
	w_u64(w, 1 + below(&r, 5));
	w_kstr(w, "country", countries[pick_country(&r)].code, &first);
	w_key(w, "vip", &first);
	w_str(w, chance(&r, 10) ? "true" : "false");
	w_chr(w, '}');
}

/* One condition on the user's profile. */
static void w_profile_leaf(struct wout *w, struct rng *r)
{
	switch (below(r, 4)) {
	case 0:
		w_str(w, "{\"field\":\"profile.plan\",\"op\":\"eq\",\"value\":");
		w_jstr(w, plans[below(r, NELEM(plans))]);
		break;
	case 1:
		w_str(w, "{\"field\":\"profile.plan\",\"op\":\"in\",\"value\":[");
		w_jstr(w, plans[below(r, 2)]);
		w_chr(w, ',');
		w_jstr(w, plans[2 + below(r, 3)]);
		w_chr(w, ']');
		break;
	case 2:
		w_str(w, "{\"field\":\"profile.tier\",\"op\":\"gte\",\"value\":");
		w_u64(w, 2 + below(r, 4));
		break;
	default:
		w_str(w, "{\"field\":\"profile.vip\",\"op\":\"eq\",\"value\":");
		w_str(w, chance(r, 50) ? "true" : "false");
		break;
	}
	w_chr(w, '}');
}

/* The delivery controls of a campaign: a limit always, and for every
 * other one a holdout and two or three variants. */
static void w_controls(struct wout *w, struct rng *r, uint64_t nth)
{
	static const char *const cooldowns[] = {"PT12H", "P1D", "P7D", "PT30M"};
	static const char *const holdouts[] = {"0.05", "0.1", "0.15", "0.2"};
	unsigned shape = (unsigned)below(r, 3);

	w_str(w, ",\"limit\":{");
	if (shape != 1) {
		w_str(w, "\"per_user\":");
		w_u64(w, 1 + below(r, 3));
	}
	if (shape != 0) {
		w_str(w, shape == 2 ? ",\"cooldown\":" : "\"cooldown\":");
		w_jstr(w, cooldowns[below(r, NELEM(cooldowns))]);
	}
	w_chr(w, '}');
	if (nth % 2 == 0) {
		unsigned nv = 2 + (unsigned)below(r, 2);

		w_str(w, ",\"holdout\":");
		w_str(w, holdouts[below(r, NELEM(holdouts))]);
		w_str(w, ",\"variants\":[");
		for (unsigned i = 0; i < nv; i++) {
			w_str(w, i ? ",{\"name\":\"" : "{\"name\":\"");
			w_chr(w, (char)('A' + i));
			w_str(w, "\",\"weight\":");
			w_u64(w, 1 + below(r, 3));
			w_chr(w, '}');
		}
		w_chr(w, ']');
	}
}

/* cm-gen profiles: the traits of users u-1..u-count, one object a line. */
static void gen_profiles(struct wout *w, uint64_t count)
{
	for (uint64_t u = 1; u <= count && !w->failed; u++) {
		w_str(w, "{\"user_id\":\"u-");
		w_u64(w, u);
		w_str(w, "\",\"traits\":");
		w_traits(w, u);
		w_str(w, "}\n");
	}
}

/* cm-gen campaigns: count active campaigns over the first k types; exactly
 * jq_pct percent of them (evenly spread) also carry a jq predicate, prof_pct
 * percent a condition on the user's profile and ctl_pct percent delivery
 * controls (drawn from their own streams, so that the rest is the same
 * whatever these are). */
static void gen_campaigns(struct wout *w, uint64_t count, uint64_t seed, unsigned k,
                          unsigned jq_pct, unsigned prof_pct, unsigned ctl_pct, int ndjson)
{
	struct rng r, rp, rc;
	uint64_t nctl = 0;

	rng_seed(&r, seed, 2);
	rng_seed(&rp, seed, 5);
	rng_seed(&rc, seed, 6);
	if (!ndjson)
		w_chr(w, '[');
	for (uint64_t id = 1; id <= count && !w->failed; id++) {
		unsigned t = (unsigned)below(&r, k), shape = (unsigned)below(&r, 100);

		if (!ndjson)
			w_str(w, id == 1 ? "\n" : ",\n");
		w_str(w, "{\"id\":");
		w_u64(w, id);
		w_str(w, ",\"name\":\"");
		w_str(w, types[t].name);
		w_chr(w, '-');
		w_str(w, words[below(&r, NELEM(words))]);
		w_chr(w, '-');
		w_u64(w, id);
		w_str(w, "\",\"status\":\"active\",\"starts_at\":");
		if (chance(&r, 25)) {
			uint64_t start = below(&r, 181) * 86400;
			uint64_t end = start + (30 + below(&r, 151)) * 86400;
			unsigned which = (unsigned)below(&r, 3); /* 0 both, 1 start, 2 end */

			if (which != 2) {
				w_chr(w, '"');
				w_time(w, start, -1, 0);
				w_chr(w, '"');
			} else {
				w_str(w, "null");
			}
			w_str(w, ",\"ends_at\":");
			if (which != 1) {
				w_chr(w, '"');
				w_time(w, end, -1, 0);
				w_chr(w, '"');
			} else {
				w_str(w, "null");
			}
		} else {
			w_str(w, "null,\"ends_at\":null");
		}
		w_str(w, ",\"rule\":{\"event_type\":");
		if (shape < 45) {
			w_jstr(w, types[t].name);
		} else {
			w_chr(w, '[');
			w_jstr(w, types[t].name);
			if (shape >= 90 && k > 1) {
				w_chr(w, ',');
				w_jstr(w, types[(t + 1 + below(&r, k - 1)) % k].name);
			}
			w_chr(w, ']');
		}
		w_str(w, ",\"where\":");
		if (id * prof_pct / 100 != (id - 1) * prof_pct / 100) {
			/* one more condition in the where's top-level all, or an all
			 * of the where and the condition */
			size_t at;

			w_room(w, 8192); /* no flush while the where is looked at */
			at = w->len;
			w_where(w, &r, types[t].props);
			if (w->len - at > 8 && memcmp(w->buf + at, "{\"all\":[", 8) == 0) {
				w->len -= 2; /* the closing ]} */
				w_chr(w, ',');
			} else {
				memmove(w->buf + at + 8, w->buf + at, w->len - at);
				memcpy(w->buf + at, "{\"all\":[", 8);
				w->len += 8;
				w_chr(w, ',');
			}
			w_profile_leaf(w, &rp);
			w_str(w, "]}");
		} else {
			w_where(w, &r, types[t].props);
		}
		if (id * jq_pct / 100 != (id - 1) * jq_pct / 100) {
			w_str(w, ",\"jq\":");
			w_jq(w, &r);
		}
		w_chr(w, '}');
		if (id * ctl_pct / 100 != (id - 1) * ctl_pct / 100)
			w_controls(w, &rc, nctl++);
		w_chr(w, '}');
		if (ndjson)
			w_chr(w, '\n');
	}
	if (!ndjson)
		w_str(w, count ? "\n]\n" : "]\n");
}

/* cm-gen csv: an orders export with a typed amount column and notes that
 * need RFC 4180 quoting (commas, doubled quotes, UTF-8). */
static void gen_csv(struct wout *w, uint64_t count, uint64_t seed)
{
	static const int offsets[] = {60, 120, -300, 540};
	struct rng r;

	rng_seed(&r, seed, 3);
	w_str(w, "order_id,event_type,user_id,occurred_at,amount:number,country,sku,note\n");
	for (uint64_t n = 1; n <= count && !w->failed; n++) {
		unsigned kind = (unsigned)below(&r, 100), c = pick_country(&r);
		uint64_t when = spread_time(&r, n, count);
		int ms = chance(&r, 20) ? (int)below(&r, 1000) : -1;
		unsigned note = (unsigned)below(&r, 100);

		w_str(w, "o-");
		w_u64(w, seed);
		w_chr(w, '-');
		w_u64(w, n);
		w_str(w, kind < 85   ? ",purchase,u-"
		         : kind < 95 ? ",refund,u-"
		                     : ",checkout_started,u-");
		w_u64(w, 1 + below(&r, N_USERS));
		w_chr(w, ',');
		if (chance(&r, 10) && when > 86400 && when < YEAR_SECS - 86400) {
			int off = offsets[below(&r, NELEM(offsets))];

			/* The same instant written in local time with its offset. */
			w_time(w, (uint64_t)((int64_t)when + off * 60), ms, off);
		} else {
			w_time(w, when, ms, 0);
		}
		w_chr(w, ',');
		w_amount(w, pick_cents(&r), 0);
		w_chr(w, ',');
		w_str(w, countries[c].code);
		w_str(w, ",SKU-");
		w_u64(w, pick_sku(&r));
		w_chr(w, ',');
		if (note >= 70) {
			const char *s = notes[below(&r, NELEM(notes))];

			if (strpbrk(s, ",\"\n")) {
				w_chr(w, '"');
				for (; *s; s++) {
					if (*s == '"')
						w_chr(w, '"');
					w_chr(w, *s);
				}
				w_chr(w, '"');
			} else {
				w_str(w, s);
			}
		}
		w_chr(w, '\n');
	}
}

/* The single campaign of the one-campaign bench, equal to the jq filter
 * select(.event_type=="purchase" and .properties.amount>=100). */
static void gen_one(struct wout *w)
{
	w_str(w, "[{\"id\":1,\"name\":\"bench-purchase-100\",\"status\":\"active\","
	         "\"starts_at\":null,\"ends_at\":null,\"rule\":{\"event_type\":\"purchase\","
	         "\"where\":{\"field\":\"properties.amount\",\"op\":\"gte\",\"value\":100}}}]\n");
}

/* The usage text, also printed by --help. */
static void usage(FILE *f)
{
	fputs("Usage: cm-gen events N [--seed S] [--types K]\n"
	      "       cm-gen campaigns N [--seed S] [--types K] [--jq-percent P]\n"
	      "                          [--profile-percent P] [--controls-percent P]\n"
	      "                          [--format array|ndjson]\n"
	      "       cm-gen csv N [--seed S]\n"
	      "       cm-gen profiles N\n"
	      "       cm-gen one-campaign\n"
	      "Writes deterministic test data to stdout: the same arguments give the same\n"
	      "bytes on every run and machine.\n"
	      "  events        N canonical events (NDJSON, about 200 bytes each)\n"
	      "  campaigns     N active campaigns, ids 1..N (a JSON array or NDJSON)\n"
	      "  csv           an orders CSV of N rows with a header\n"
	      "  profiles      the traits of users u-1..u-N, {\"user_id\",\"traits\"} a line\n"
	      "  one-campaign  the bench campaign: purchase with properties.amount >= 100\n"
	      "Options:\n"
	      "  -s, --seed S        PRNG seed, 0..2^63-1 (default 1)\n"
	      "  -t, --types K       use the K most common event types, 1..60 (default 24)\n"
	      "  -j, --jq-percent P  percent of campaigns with a jq predicate, 0..100 (default 1)\n"
	      "  -p, --profile-percent P\n"
	      "                      percent of campaigns with a profile condition (default 0)\n"
	      "  -c, --controls-percent P\n"
	      "                      percent of campaigns with a limit, every other of them\n"
	      "                      with a holdout and variants too (default 0)\n"
	      "  -f, --format F      campaigns as a JSON array (default) or ndjson\n"
	      "  -h, --help          this text\n"
	      "      --version       print the version\n",
	      f);
}

/* Reports a usage error and exits 2, as every tool of the project does. */
static void __attribute__((noreturn, format(printf, 1, 2))) bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("cm-gen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'cm-gen --help'.\n", stderr);
	exit(2);
}

/* Parses a whole decimal number in [min, max] or fails with a usage error. */
static int64_t num_arg(const char *what, const char *s, int64_t min, int64_t max)
{
	char *end;
	long long v;

	errno = 0;
	if (*s < '0' || *s > '9')
		bad_usage("%s: '%s' is not a number", what, s);
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		bad_usage("%s: '%s' is not a number from %lld to %lld", what, s, (long long)min,
		          (long long)max);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"seed", required_argument, NULL, 's'},
	    {"types", required_argument, NULL, 't'},
	    {"jq-percent", required_argument, NULL, 'j'},
	    {"profile-percent", required_argument, NULL, 'p'},
	    {"controls-percent", required_argument, NULL, 'c'},
	    {"format", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct wout w = {NULL, 0, 0};
	char **av = argv + 1;
	const char *cmd;
	uint64_t seed = 1, count = 0;
	unsigned k = 24, jq_pct = 1, prof_pct = 0, ctl_pct = 0;
	int ndjson = 0, seen_jq = 0, seen_format = 0, seen_types = 0, seen_camp = 0, c, rc = 0;

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "--version")) {
		puts("cm-gen " CM_VERSION);
		return 0;
	}
	if (argc < 2 || argv[1][0] == '-')
		bad_usage("expected a command: events, campaigns, csv, profiles or one-campaign");
	cmd = argv[1];
	if (strcmp(cmd, "events") && strcmp(cmd, "campaigns") && strcmp(cmd, "csv") &&
	    strcmp(cmd, "profiles") && strcmp(cmd, "one-campaign"))
		bad_usage("unknown command '%s'", cmd);
	opterr = 0;
	while ((c = getopt_long(argc - 1, av, ":s:t:j:p:c:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			seed = (uint64_t)num_arg("--seed", optarg, 0, INT64_MAX);
			break;
		case 't':
			k = (unsigned)num_arg("--types", optarg, 1, N_TYPES);
			seen_types = 1;
			break;
		case 'j':
			jq_pct = (unsigned)num_arg("--jq-percent", optarg, 0, 100);
			seen_jq = 1;
			break;
		case 'p':
			prof_pct = (unsigned)num_arg("--profile-percent", optarg, 0, 100);
			seen_camp = 1;
			break;
		case 'c':
			ctl_pct = (unsigned)num_arg("--controls-percent", optarg, 0, 100);
			seen_camp = 1;
			break;
		case 'f':
			if (!strcmp(optarg, "ndjson"))
				ndjson = 1;
			else if (strcmp(optarg, "array"))
				bad_usage("--format: expected array or ndjson, not '%s'", optarg);
			seen_format = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			puts("cm-gen " CM_VERSION);
			return 0;
		case ':':
			bad_usage("option '%s' needs a value", av[optind - 1]);
		default:
			bad_usage("unknown option '%s'", av[optind - 1]);
		}
	}
	if ((seen_jq || seen_format || seen_camp) && strcmp(cmd, "campaigns"))
		bad_usage("--jq-percent, --profile-percent, --controls-percent and --format apply "
		          "to campaigns only");
	if (seen_types &&
	    (!strcmp(cmd, "csv") || !strcmp(cmd, "one-campaign") || !strcmp(cmd, "profiles")))
		bad_usage("--types applies to events and campaigns only");
	if (!strcmp(cmd, "one-campaign")) {
		if (optind + 1 != argc)
			bad_usage("one-campaign takes no operand");
	} else {
		if (optind + 2 != argc)
			bad_usage("%s: expected one operand N, the number of records", cmd);
		count = (uint64_t)num_arg("N", argv[optind + 1], 0, MAX_N);
	}

	signal(SIGPIPE, SIG_IGN);
	w.buf = malloc(OUT_CAP);
	if (!w.buf) {
		fputs("cm-gen: out of memory\n", stderr);
		return 1;
	}
	if (!strcmp(cmd, "events"))
		gen_events(&w, count, seed, k);
	else if (!strcmp(cmd, "campaigns"))
		gen_campaigns(&w, count, seed, k, jq_pct, prof_pct, ctl_pct, ndjson);
	else if (!strcmp(cmd, "profiles"))
		gen_profiles(&w, count > N_USERS ? N_USERS : count);
	else if (!strcmp(cmd, "csv"))
		gen_csv(&w, count, seed);
	else
		gen_one(&w);
	w_flush(&w);
	/* A reader that leaves early (| head) is not an error. */
	if (w.failed && w.failed != EPIPE) {
		fprintf(stderr, "cm-gen: write error: %s\n", strerror(w.failed));
		rc = 1;
	}
	free(w.buf);
	return rc;
}
