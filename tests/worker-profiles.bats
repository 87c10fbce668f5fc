#!/usr/bin/env bats
# Profiles (CONTRACT 1.5) through whole workers under chaos: identify events
# published among others, in no particular time order, some twice, through
# two workers while stages are killed and both servers restart. The stored
# profiles must be exactly what the file says (latest occurred_at wins, ties
# the greater event_id, null removes), and once they are stored, events that
# come after the documented staleness bound (cm-match --profile-ttl, 1 s by
# default, plus one batch) match on them as offline.
#
# Knobs: CM_CHAOS_PROFILE_EVENTS (default 6000 events, half of them
# identify), CM_CHAOS_PROFILE_USERS (default 200 users).

load lib/common
load lib/redis
load lib/pg
load lib/worker

N=${CM_CHAOS_PROFILE_EVENTS:-6000}
USERS=${CM_CHAOS_PROFILE_USERS:-200}
PY=/usr/bin/python3

# gen_profiles DIR N USERS: writes DIR/campaigns.json (campaigns on profile
# traits, in where leaves and jq, and one without), DIR/events.jsonl (N
# events of USERS users, half identify, in random time order, times often
# equal), DIR/publish.jsonl (those with a twentieth again, shuffled in),
# DIR/after.jsonl (two purchases per user, for after the profiles are
# stored), and the offline answer: DIR/want.json (the profiles, user_id
# order) and DIR/want.ndjson (the same as cm-match --profiles reads them).
gen_profiles() {
	"$PY" - "$@" <<-'PY'
	import json, random, sys
	d, n, users = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
	random.seed(9)
	def leaf(f, op, v):
	    return {"field": f, "op": op, "value": v}
	camps = [
	    {"event_type": "purchase", "where": leaf("profile.plan", "eq", "pro")},
	    {"event_type": "purchase", "where": leaf("profile.address.city", "eq", "Berlin")},
	    {"event_type": "purchase", "jq": "(.profile.seats // 0) >= 5"},
	    {"event_type": "purchase", "where": {"all": [
	        {"field": "profile.plan", "op": "not_exists"}, leaf("profile.beta", "eq", True)]}},
	    {"event_type": "purchase", "where": leaf("properties.amount", "gte", 50)},
	]
	json.dump([{"id": i + 1, "name": "p%d" % (i + 1), "status": "active", "starts_at": None,
	            "ends_at": None, "rule": r} for i, r in enumerate(camps)],
	          open(d + "/campaigns.json", "w"))
	def when():
	    ms = random.choice(["", "", "", ".250", ".5"])
	    return "2026-11-%02dT%02d:%02d:00%sZ" % (random.randint(1, 3), random.randrange(24),
	                                             random.choice([0, 30]), ms)
	def trait():
	    k = random.choice(["plan", "plan", "seats", "address", "beta", "score"])
	    if random.random() < 0.1:
	        return k, None
	    return k, {"plan": lambda: random.choice(["free", "pro", "enterprise"]),
	               "seats": lambda: random.randint(1, 10),
	               "address": lambda: {"city": random.choice(["Berlin", "Paris", "Rome"]),
	                                   "zip": "%05d" % random.randrange(100000)},
	               "beta": lambda: random.choice([True, False]),
	               "score": lambda: random.randrange(20) / 4}[k]()
	evs = []
	for i in range(n):
	    u = "u-%d" % random.randrange(users)
	    if i % 2 == 0:
	        # mixed case so that bytewise order is not alphabetical order
	        eid = "%s-%06d" % (random.choice("aBcD"), i)
	        evs.append({"event_id": eid, "event_type": "identify", "user_id": u,
	                    "occurred_at": when(), "properties": dict(trait() for _ in range(random.randint(1, 3)))})
	    else:
	        evs.append({"event_id": "p-%06d" % i, "event_type": "purchase", "user_id": u,
	                    "occurred_at": when(), "properties": {"amount": random.randint(1, 100)}})
	with open(d + "/events.jsonl", "w") as f:
	    for e in evs:
	        f.write(json.dumps(e) + "\n")
	again = evs + random.sample(evs, n // 20)
	random.shuffle(again)
	with open(d + "/publish.jsonl", "w") as f:
	    for e in again:
	        f.write(json.dumps(e) + "\n")
	# The offline answer: per (user, trait) the value of the greatest
	# (occurred_at, event_id); a null winner removes the trait.
	def ms(t):
	    base, frac = t[:19], t[19:-1]
	    return (base, float("0" + frac) if frac else 0.0)
	win = {}
	for e in evs:
	    if e["event_type"] != "identify":
	        continue
	    for k, v in e["properties"].items():
	        key, rank = (e["user_id"], k), (ms(e["occurred_at"]), e["event_id"].encode())
	        if key not in win or rank > win[key][0]:
	            win[key] = (rank, v)
	prof = {}
	for (u, k), (_, v) in win.items():
	    t = prof.setdefault(u, {})
	    if v is not None:
	        t[k] = v
	want = [{"user_id": u, "traits": prof[u]} for u in sorted(prof, key=lambda s: s.encode())]
	json.dump(want, open(d + "/want.json", "w"))
	with open(d + "/want.ndjson", "w") as f:
	    for p in want:
	        f.write(json.dumps(p) + "\n")
	with open(d + "/after.jsonl", "w") as f:
	    for i in range(2 * users):
	        f.write(json.dumps({"event_id": "q-%06d" % i, "event_type": "purchase",
	                            "user_id": "u-%d" % (i % users), "occurred_at": when(),
	                            "properties": {"amount": random.randint(1, 100)}}) + "\n")
	PY
}

# same_json A B: A and B hold the same JSON value.
same_json() {
	"$PY" -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); sys.exit(a != b)' "$1" "$2" ||
		{ diff <(jq -S . "$1") <(jq -S . "$2") | head -20; return 1; }
}

@test "worker-profiles: identify events through two workers under chaos give the file's profiles, and later events match on them" {
	gen_profiles "$T" "$N" "$USERS"
	load_campaigns "$T/campaigns.json"

	chaos_run "$T/publish.jsonl" "$N"

	# The profiles are the file's, whatever the order and the redeliveries.
	pg_sql "SELECT coalesce(json_agg(json_build_object('user_id', user_id, 'traits', traits)
	        ORDER BY user_id), '[]') FROM profiles" >"$T/got.json"
	[ "$(jq length "$T/want.json")" -eq "$USERS" ]
	same_json "$T/want.json" "$T/got.json"
	# cm-export --profiles gives the same, in the form cm-match --profiles reads
	cm-export --profiles | jq -s . >"$T/export.json"
	same_json "$T/want.json" "$T/export.json"
	# Events matched while the identify events were arriving saw some state
	# of the profile: plan "pro" only for users that had it at some time.
	jq -r 'select(.event_type == "identify" and .properties.plan == "pro") | .user_id' \
		"$T/events.jsonl" | sort -u >"$T/ever.pro"
	pg_sql "SELECT DISTINCT user_id FROM matches WHERE campaign_id = 1" | sort >"$T/matched.pro"
	[ -s "$T/matched.pro" ]
	comm -13 "$T/ever.pro" "$T/matched.pro" >"$T/never.pro"
	[ ! -s "$T/never.pro" ]

	# After the staleness bound, events match on the stored profiles exactly
	# as offline (and some of them on each campaign reading the profile).
	sleep 2
	cm-publish "$T/after.jsonl"
	wait_drained $((N + 2 * USERS))
	cm-match -c "$T/campaigns.json" --profiles "$T/want.ndjson" --emit matches "$T/after.jsonl" |
		jq -r '"\(.campaign_id)|\(.event_id)"' | sort >"$T/after.want"
	pg_sql "SELECT campaign_id || '|' || event_id FROM matches WHERE event_id LIKE 'q-%'" |
		sort >"$T/after.got"
	diff "$T/after.want" "$T/after.got"
	for c in 1 2 3 4 5; do
		grep -q "^$c|" "$T/after.want"
	done
}
