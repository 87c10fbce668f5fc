#!/usr/bin/env bats
# The schema's own logic (share/sql), against a throwaway PostgreSQL: the
# profile merge of 003_profiles.sql and the limit decisions of
# 004_outcomes.sql hold exactly whatever the order, the split into
# transactions, redelivery, and two sessions working at once.

load lib/common
load lib/pg

setup_file() {
	pg_start
	cm-admin migrate --dir "$TOP/share/sql" >/dev/null
}

teardown_file() {
	pg_stop
}

setup() {
	pg_sql "SELECT 1" >/dev/null 2>&1 || pg_start_server
	pg_sql "TRUNCATE events, matches, match_limits, profiles, profile_traits" >/dev/null
}

PY=/usr/bin/python3

# submit FUNC FILE: calls FUNC('<json array>') for each line of FILE, one
# transaction per line.
submit() {
	local f=$1 line
	while IFS= read -r line; do
		printf "SELECT count(*) FROM %s('%s');\n" "$f" "${line//\'/\'\'}"
	done <"$2" | psql -q -X -v ON_ERROR_STOP=1 "$CM_DATABASE_URL" >/dev/null
}

@test "migrations 003 to 005 bring a database of 001 up to date, keeping its rows, and again as a no-op" {
	pg_newdb
	mkdir "$T/old"
	cp "$TOP"/share/sql/001_*.sql "$T/old/"
	cm-admin migrate --dir "$T/old" >/dev/null
	pg_sql "INSERT INTO campaigns (id, name, status, rule) VALUES (1, 'old', 'active', '{\"event_type\":\"purchase\"}')" \
		"INSERT INTO events (event_id, event_type, user_id, occurred_at, properties) VALUES ('e1', 'purchase', 'u1', now(), '{}')" \
		"INSERT INTO matches (campaign_id, event_id, user_id, event_type, occurred_at) SELECT 1, event_id, user_id, event_type, occurred_at FROM events"
	run cm-admin migrate --dir "$TOP/share/sql"
	[ "$status" -eq 0 ]
	[ "$(pg_sql "SELECT count(*) FROM schema_migrations WHERE version IN ('003', '004', '005')")" -eq 3 ]
	[ "$(pg_sql "SELECT column_default FROM information_schema.columns WHERE table_name = 'matches' AND column_name = 'outcome'")" = "'matched'::text" ]
	# the old rows: a match that was matched, a campaign without controls
	[ "$(pg_sql "SELECT outcome FROM matches")" = matched ]
	[ "$(pg_sql "SELECT name, \"limit\" IS NULL, holdout IS NULL, variants IS NULL FROM campaigns")" = "old|t|t|t" ]
	run cm-admin migrate --dir "$TOP/share/sql"
	[ "$status" -eq 0 ]
	[ "$(pg_sql "SELECT count(*) FROM schema_migrations")" -eq "$(ls "$TOP"/share/sql/*.sql | wc -l)" ]
}

@test "campaigns' delivery controls (005): what no client could mean is refused by the table" {
	pg_sql "DELETE FROM campaigns"
	pg_sql "INSERT INTO campaigns (id, name, status, rule, \"limit\", holdout, variants) VALUES (1, 'c', 'active', '{}',
	  '{\"per_user\": 1, \"cooldown\": \"P7D\"}', 0.1, '[{\"name\":\"A\",\"weight\":1}]')"
	for bad in '"limit" = '"'[1]'" 'holdout = 1' 'holdout = -0.1' "variants = '[]'" "variants = '{}'"; do
		run pg_sql "UPDATE campaigns SET $bad WHERE id = 1"
		[ "$status" -ne 0 ]
		[[ "$output" == *"violates check constraint \"campaigns_"* ]]
	done
	[ "$(pg_sql "SELECT holdout FROM campaigns")" = 0.1 ]
}

@test "profiles: the latest identify wins per trait, null removes, ties go to the greater event_id" {
	cat >"$T/b1" <<'EOF'
[{"user_id":"u1","occurred_at":"2026-11-01T00:00:00Z","event_id":"e1","traits":{"plan":"pro","country":"DE"}},{"user_id":"u1","occurred_at":"2026-10-01T00:00:00Z","event_id":"e0","traits":{"plan":"free","seats":1}}]
[{"user_id":"u1","occurred_at":"2026-11-02T00:00:00Z","event_id":"e2","traits":{"country":null}}]
[{"user_id":"u1","occurred_at":"2026-11-01T00:00:00Z","event_id":"e1b","traits":{"plan":"team"}},{"user_id":"u1","occurred_at":"2026-09-01T00:00:00Z","event_id":"e9","traits":{"country":"FR"}}]
EOF
	submit cm_merge_profiles "$T/b1"
	[ "$(pg_sql "SELECT traits FROM profiles WHERE user_id = 'u1'")" = '{"plan": "team", "seats": 1}' ]
	# again, and in reverse order: the same
	tac "$T/b1" >"$T/b2"
	submit cm_merge_profiles "$T/b2"
	[ "$(pg_sql "SELECT traits FROM profiles WHERE user_id = 'u1'")" = '{"plan": "team", "seats": 1}' ]
	[ "$(pg_sql "SELECT event_id FROM profile_traits WHERE trait = 'country'")" = "e2" ]
}

@test "profiles: random identify events, split and repeated over two concurrent sessions, equal the offline answer" {
	"$PY" - "$T" <<'PY'
import json, random, sys
random.seed(7)
t = sys.argv[1]
evs = []
for i in range(3000):
    u = "u%d" % random.randrange(6)
    traits = {}
    for k in random.sample(["plan", "country", "seats", "tags", "é"], random.randint(1, 3)):
        traits[k] = random.choice([None, "a", "b", 3, [1, 2], {"x": i}])
    # few distinct times, so that ties on occurred_at are common
    ts = "2026-11-%02dT%02d:00:00Z" % (random.randint(1, 3), random.randint(0, 2))
    evs.append({"user_id": u, "occurred_at": ts, "event_id": "e%04d" % random.randrange(5000), "traits": traits})
# the offline answer: per (user, trait) the max (time, event_id); null removes
best = {}
for e in evs:
    for k, v in e["traits"].items():
        key = (e["user_id"], k)
        cand = (e["occurred_at"], e["event_id"].encode())
        if key not in best or cand > best[key][0]:
            best[key] = (cand, v)
prof = {}
for (u, k), (_, v) in best.items():
    prof.setdefault(u, {})
    if v is not None:
        prof[u][k] = v
json.dump(prof, open(t + "/want.json", "w"), sort_keys=True)
for s in ("a", "b"):
    order = evs[:] + random.sample(evs, 500)   # every event, some twice
    random.shuffle(order)
    with open(t + "/batches." + s, "w") as f:
        i = 0
        while i < len(order):
            n = random.randint(1, 40)
            f.write(json.dumps(order[i:i + n]) + "\n")
            i += n
PY
	submit cm_merge_profiles "$T/batches.a" &
	local a=$!
	submit cm_merge_profiles "$T/batches.b" &
	local b=$!
	wait "$a"
	wait "$b"
	pg_sql "SELECT coalesce(jsonb_object_agg(user_id, traits), '{}') FROM profiles" >"$T/got.json"
	"$PY" -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); assert a == b, (a, b)' \
		"$T/want.json" "$T/got.json"
}

@test "limits: per_user, cooldown either side, holdouts count, a redelivery keeps its outcome" {
	cat >"$T/c" <<'EOF'
[{"campaign_id":7,"event_id":"a","user_id":"u1","event_type":"p","occurred_at":"2026-11-05T00:00:00Z","outcome":"matched","variant":"A","per_user":2,"cooldown_ms":86400000},{"campaign_id":7,"event_id":"b","user_id":"u1","event_type":"p","occurred_at":"2026-11-04T12:00:00Z","outcome":"matched","variant":"A","per_user":2,"cooldown_ms":86400000}]
[{"campaign_id":7,"event_id":"c","user_id":"u1","event_type":"p","occurred_at":"2026-11-01T00:00:00Z","outcome":"holdout","variant":null,"per_user":2,"cooldown_ms":86400000},{"campaign_id":7,"event_id":"d","user_id":"u1","event_type":"p","occurred_at":"2026-11-20T00:00:00Z","outcome":"matched","variant":"B","per_user":2,"cooldown_ms":86400000},{"campaign_id":7,"event_id":"a","user_id":"u1","event_type":"p","occurred_at":"2026-11-05T00:00:00Z","outcome":"matched","variant":"A","per_user":2,"cooldown_ms":86400000}]
[{"campaign_id":8,"event_id":"a","user_id":"u1","event_type":"p","occurred_at":"2026-11-05T00:00:00Z","outcome":"matched","variant":null,"per_user":null,"cooldown_ms":1000},{"campaign_id":8,"event_id":"e","user_id":"u1","event_type":"p","occurred_at":"2026-11-05T00:00:01Z","outcome":"matched","variant":null,"per_user":null,"cooldown_ms":1000}]
EOF
	submit cm_decide_limits "$T/c"
	run pg_sql "SELECT campaign_id || ' ' || event_id || ' ' || outcome || ' ' || coalesce(variant, '-') || ' ' || coalesce(capped_by, '-') FROM matches ORDER BY 1"
	echo "$output"
	[ "${lines[0]}" = "7 a matched A -" ]
	[ "${lines[1]}" = "7 b capped A a" ]
	[ "${lines[2]}" = "7 c holdout - -" ]
	[ "${lines[3]}" = "7 d capped B a" ]
	# exactly cooldown apart is not closer than cooldown
	[ "${lines[4]}" = "8 a matched - -" ]
	[ "${lines[5]}" = "8 e matched - -" ]
	[ "${#lines[@]}" -eq 6 ]
	[ "$(pg_sql "SELECT count(*) FROM match_limits")" -eq 4 ]
}

@test "limits: many candidates per user over two concurrent sessions, with redelivery, hold exactly" {
	"$PY" - "$T" <<'PY'
import json, random, sys
random.seed(11)
t = sys.argv[1]
camps = {1: (1, None), 2: (3, 6 * 3600000), 3: (None, 24 * 3600000), 4: (2, None)}
cands = []
for i in range(4000):
    c = random.choice(list(camps))
    pu, cd = camps[c]
    u = "u%d" % random.randrange(25)
    ts = "2026-11-%02dT%02d:%02d:00Z" % (random.randint(1, 20), random.randint(0, 23), random.choice([0, 30]))
    cands.append({"campaign_id": c, "event_id": "e%05d" % i, "user_id": u, "event_type": "p", "occurred_at": ts,
                  "outcome": random.choice(["matched", "matched", "holdout"]), "variant": None,
                  "per_user": pu, "cooldown_ms": cd})
json.dump(cands, open(t + "/cands.json", "w"))
for s in ("a", "b"):
    order = cands[:] + random.sample(cands, 800)
    random.shuffle(order)
    with open(t + "/batches." + s, "w") as f:
        i = 0
        while i < len(order):
            n = random.randint(1, 60)
            f.write(json.dumps(order[i:i + n]) + "\n")
            i += n
PY
	submit cm_decide_limits "$T/batches.a" &
	local a=$!
	submit cm_decide_limits "$T/batches.b" &
	local b=$!
	wait "$a"
	wait "$b"
	pg_matches_json >"$T/got.json"
	# a redelivery of everything changes nothing
	"$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$T/cands.json" >"$T/all"
	submit cm_decide_limits "$T/all"
	pg_matches_json >"$T/again.json"
	cmp "$T/got.json" "$T/again.json"
	"$PY" - "$T" <<'PY'
import json, sys
t = sys.argv[1]
cands = json.load(open(t + "/cands.json"))
json.dump({str(c["campaign_id"]): {"per_user": c["per_user"], "cooldown_ms": c["cooldown_ms"]}
           for c in cands}, open(t + "/limits.json", "w"))
json.dump([[c["campaign_id"], c["event_id"]] for c in cands], open(t + "/pairs.json", "w"))
PY
	"$PY" "$TOP/tests/lib/limits.py" "$T/got.json" "$T/limits.json" "$T/pairs.json"
}
