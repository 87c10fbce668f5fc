/* bucket.c - buckets and groups of CONTRACT section 1.6. */
#include "bucket.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

/* libsodium wants its init before use; SHA-256 works the same either way,
 * so the result does not matter. */
static void sodium_start(void)
{
	if (sodium_init() < 0)
		return;
}

/* Hashes the decimal id, a colon and the user id, as the SQL formula does. */
double cm_bucket(int64_t campaign_id, const char *user, size_t n)
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];
	char id[24];
	int idn = snprintf(id, sizeof(id), "%lld:", (long long)campaign_id);
	uint64_t v = 0;

	pthread_once(&sodium_once, sodium_start);
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)id, (unsigned long long)idn);
	crypto_hash_sha256_update(&st, (const unsigned char *)user, n);
	crypto_hash_sha256_final(&st, h);
	for (int i = 0; i < 7; i++)
		v = (v << 8) | h[i];
	return (double)(v >> 4) / 4503599627370496.0; /* 56 bits, keep 52 */
}

/* Walks the cumulative weights; the last variant takes what rounding leaves. */
int cm_bucket_group(double bucket, double holdout, const double *weights, size_t nweights)
{
	double total = 0, p, cum = 0;

	if (bucket < holdout)
		return -1;
	if (nweights <= 1)
		return 0;
	for (size_t i = 0; i < nweights; i++)
		total += weights[i];
	p = (bucket - holdout) / (1 - holdout) * total;
	for (size_t i = 0; i + 1 < nweights; i++) {
		cum += weights[i];
		if (p < cum)
			return (int)i;
	}
	return (int)nweights - 1;
}
