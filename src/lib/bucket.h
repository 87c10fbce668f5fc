/* bucket.h - a user's fixed place in a campaign (CONTRACT section 1.6): the
 * bucket of (campaign id, user_id) in [0, 1), the same on every machine and
 * in every run, and the group it puts the user in (holdout or a variant).
 *
 * bucket = the first 52 bits of SHA-256(decimal campaign id ":" user_id),
 * read big-endian, divided by 2^52. An analyst recomputes it in SQL with
 *
 *   ('x' || substr(encode(sha256(convert_to(campaign_id::text || ':' || user_id,
 *     'UTF8')), 'hex'), 1, 13))::bit(52)::bigint / 4503599627370496.0
 *
 * A bucket below holdout is a holdout; the rest of [0, 1) is split among the
 * variants in proportion to their weights, in the order they are listed:
 * p = (bucket - holdout) / (1 - holdout) * (sum of weights) falls in variant
 * i when p < w0 + ... + wi (a boundary goes to the later variant). */
#ifndef CM_BUCKET_H
#define CM_BUCKET_H

#include <stddef.h>
#include <stdint.h>

/* The bucket of (campaign_id, user[0..n)), exactly k / 2^52. */
double cm_bucket(int64_t campaign_id, const char *user, size_t n);

/* The group of a bucket: -1 for a holdout (bucket < holdout), else the index
 * of the variant (0 when there are none, nweights == 0). weights are > 0. */
int cm_bucket_group(double bucket, double holdout, const double *weights, size_t nweights);

#endif
