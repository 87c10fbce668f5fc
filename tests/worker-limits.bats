#!/usr/bin/env bats
# Delivery controls (CONTRACT 1.6) through whole workers under chaos: two
# workers share events of few users with many candidates each, stages are
# killed and both servers restart, some events are published twice; the
# stored outcomes must still hold every limit exactly, justify every cap,
# leave out no candidate and give each user the bucket's group.
#
# Knobs: CM_CHAOS_LIMIT_EVENTS (default 6000 events), CM_CHAOS_USERS
# (default 30 users).

load lib/common
load lib/redis
load lib/pg
load lib/worker

N=${CM_CHAOS_LIMIT_EVENTS:-6000}
USERS=${CM_CHAOS_USERS:-30}
PY=/usr/bin/python3

# gen_limits DIR N USERS: writes DIR/campaigns.json (limited, held out,
# split into variants, unlimited, one paused), DIR/unlimited.json (the same
# without their limits: what the bucket alone decides), DIR/limits.json
# (limits.py's form), DIR/events.jsonl (N events of USERS users in random
# time order) and DIR/publish.jsonl (those with a twentieth of them again,
# shuffled in).
gen_limits() {
	"$PY" - "$@" <<-'PY'
	import json, random, sys
	d, n, users = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
	random.seed(10)
	V2 = [{"name": "A", "weight": 1}, {"name": "B", "weight": 1}]
	V3 = [{"name": "A", "weight": 1}, {"name": "B", "weight": 2}, {"name": "C", "weight": 1}]
	camps = [
	    (1, {"event_type": "purchase"}, {"limit": {"per_user": 1}}),
	    (2, {"event_type": "purchase", "where": {"field": "properties.amount", "op": "gte", "value": 50}},
	     {"limit": {"per_user": 3, "cooldown": "PT12H"}}),
	    (3, {"event_type": "view"}, {"limit": {"cooldown": "P1D"}}),
	    (4, {}, {"limit": {"per_user": 2}, "holdout": 0.2, "variants": V2}),
	    (5, {"event_type": "purchase"}, {"limit": {"cooldown": "PT6H"}, "holdout": 0.3, "variants": V3}),
	    (6, {"event_type": "view"}, {"holdout": 0.25, "variants": V2}),
	    (7, {"event_type": "purchase"}, {}),
	    (8, {"event_type": "view", "where": {"field": "properties.country", "op": "in", "value": ["DE", "AT"]}},
	     {"limit": {"per_user": 4, "cooldown": "PT2H"}, "holdout": 0.1}),
	    (9, {"event_type": "cart"}, {"limit": {"per_user": 1}, "variants": V2}),
	    (10, {"event_type": "purchase"}, {"limit": {"per_user": 1}, "status": "paused"}),
	]
	ms = {"PT12H": 12 * 3600000, "P1D": 86400000, "PT6H": 6 * 3600000, "PT2H": 2 * 3600000}
	out, plain, limits = [], [], {}
	for cid, rule, ctl in camps:
	    c = {"id": cid, "name": "c%d" % cid, "status": ctl.get("status", "active"),
	         "starts_at": None, "ends_at": None, "rule": rule}
	    for k in ("limit", "holdout", "variants"):
	        if k in ctl:
	            c[k] = ctl[k]
	    out.append(c)
	    plain.append({k: v for k, v in c.items() if k != "limit"})
	    lim = ctl.get("limit")
	    limits[str(cid)] = lim and {"per_user": lim.get("per_user"),
	                                "cooldown_ms": ms.get(lim.get("cooldown"))}
	json.dump(out, open(d + "/campaigns.json", "w"))
	json.dump(plain, open(d + "/unlimited.json", "w"))
	json.dump(limits, open(d + "/limits.json", "w"))
	evs = []
	for i in range(n):
	    t = random.choices(["purchase", "view", "cart"], [40, 45, 15])[0]
	    evs.append({"event_id": "e-%06d" % i, "event_type": t,
	                "user_id": "u-%d" % random.randrange(users),
	                "occurred_at": "2026-11-%02dT%02d:%02d:%02dZ" % (
	                    random.randint(1, 30), random.randrange(24), random.randrange(60),
	                    random.randrange(60)),
	                "properties": {"amount": random.randint(1, 100),
	                               "country": random.choice(["DE", "AT", "FR"])}})
	with open(d + "/events.jsonl", "w") as f:
	    for e in evs:
	        f.write(json.dumps(e) + "\n")
	again = evs + random.sample(evs, n // 20)
	random.shuffle(again)
	with open(d + "/publish.jsonl", "w") as f:
	    for e in again:
	        f.write(json.dumps(e) + "\n")
	PY
}

# check_buckets GOT BUCKETS OFFLINE: every stored row has the variant the
# bucket gives its user, every row not capped the bucket's outcome (BUCKETS:
# the candidates as matched without limits); a (campaign, user) of a
# campaign limited by per_user alone keeps as many as the offline run
# (OFFLINE: with limits, in input order), whatever the arrival order; and
# the run saw every group (holdouts, variants, caps) it is meant to test.
check_buckets() {
	"$PY" - "$@" <<-'PY'
	import collections, json, sys
	got = json.load(open(sys.argv[1]))
	def lines(f):
	    return [json.loads(l) for l in open(f)]
	bucket = {(m["campaign_id"], m["event_id"]): (m["outcome"], m.get("variant"))
	          for m in lines(sys.argv[2])}
	offline = lines(sys.argv[3])
	seen = collections.Counter()
	for m in got:
	    o, v = bucket[(m["c"], m["e"])]
	    assert m["v"] == v, ("variant is not the bucket's", m, v)
	    if m["o"] != "capped":
	        assert m["o"] == o, ("outcome is not the bucket's", m, o)
	    seen[(m["c"], m["o"])] += 1
	    seen[(m["c"], m["v"])] += 1
	def kept(rows, c, u, o):
	    return collections.Counter((r[c], r[u]) for r in rows if r[o] in ("matched", "holdout"))
	for cid in (1, 9):
	    a = {k: n for k, n in kept(got, "c", "u", "o").items() if k[0] == cid}
	    b = {k: n for k, n in kept(offline, "campaign_id", "user_id", "outcome").items() if k[0] == cid}
	    assert a == b, ("per_user kept differs from offline", cid)
	for want in [(c, "capped") for c in (1, 2, 3, 4, 5, 8, 9)] + \
	            [(c, "holdout") for c in (4, 5, 6, 8)] + \
	            [(4, "A"), (4, "B"), (5, "C"), (9, "A"), (6, "B")]:
	    assert seen[want] > 0, ("nothing of", want)
	assert not any(c == 10 for c, _ in seen), "a paused campaign matched"
	assert not any(o == "capped" for c, o in seen if c in (6, 7)), "an unlimited campaign capped"
	print("rows", len(got), "checked against", len(bucket), "bucket outcomes")
	PY
}

@test "worker-limits: delivery controls hold exactly through two workers under kills, restarts and redelivery" {
	gen_limits "$T" "$N" "$USERS"
	load_campaigns "$T/campaigns.json"
	# Offline: the candidates (and, in input order, their outcomes), and the
	# bucket's outcome of each without limits.
	cm-match -c "$T/campaigns.json" --emit matches "$T/events.jsonl" >"$T/offline.jsonl"
	cm-match -c "$T/unlimited.json" --emit matches "$T/events.jsonl" >"$T/bucket.jsonl"
	jq -s 'map([.campaign_id, .event_id])' "$T/offline.jsonl" >"$T/cands.json"
	[ "$(jq length "$T/cands.json")" -gt $((N * 2)) ]

	chaos_run "$T/publish.jsonl" "$N"

	pg_sql "SELECT coalesce(json_agg(json_build_object('c', campaign_id, 'e', m.event_id,
	          'u', m.user_id, 't', extract(epoch FROM m.occurred_at) * 1000, 'o', outcome,
	          'by', capped_by, 'v', variant) ORDER BY campaign_id, m.event_id), '[]')
	        FROM matches m" >"$T/got.json"
	"$PY" "$TOP/tests/lib/limits.py" "$T/got.json" "$T/limits.json" "$T/cands.json" 100
	check_buckets "$T/got.json" "$T/bucket.jsonl" "$T/offline.jsonl"
	# match_limits holds exactly the matched-or-holdout rows of limited campaigns
	[ "$(pg_sql "SELECT count(*) FROM match_limits")" = \
		"$(pg_sql "SELECT count(*) FROM matches WHERE outcome <> 'capped' AND campaign_id NOT IN (6, 7)")" ]
}
