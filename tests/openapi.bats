#!/usr/bin/env bats
# share/openapi.json: valid OpenAPI 3.1 by a real validator (Redocly CLI
# from npm, installed by `npm ci` in tests/node: test-only), and true to
# CONTRACT section 4 (routes, statuses, who may call what, schemas).

load lib/common

DOC=$TOP/share/openapi.json
REDOCLY=$TOP/tests/node/node_modules/.bin/redocly
# No telemetry, no update check: the tests need no network.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

# lint FILE: redocly lint with the project's rules (the spec ruleset and
# more), output in $output.
lint() {
	[ -x "$REDOCLY" ] || {
		echo "no $REDOCLY: run 'npm ci' in tests/node" >&2
		return 1
	}
	run "$REDOCLY" lint --config "$TOP/tests/node/redocly.yaml" --format stylish "$1"
}

@test "redocly lint (spec ruleset, examples checked) accepts share/openapi.json" {
	lint "$DOC"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"0 errors"* || $output == *"valid"* ]]
}

@test "redocly lint rejects a document with a dangling reference or a wrong example" {
	jq '.paths["/campaigns"].get.responses["200"].content["application/json"].schema.items["$ref"] = "#/components/schemas/Nope"' \
		"$DOC" >"$T/dangling.json"
	lint "$T/dangling.json"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"no-unresolved-refs"* ]]
	jq '.paths["/auth/users/me"].get.responses["200"].content["application/json"].example.role = "root"' \
		"$DOC" >"$T/example.json"
	lint "$T/example.json"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"no-invalid-media-type-examples"* ]]
}

@test "every route of CONTRACT 4 that issues 7 and 9 build is there, and no other" {
	jq -r '.paths | to_entries[] | .key as $p | .value | keys[]
		| select(. != "parameters") | ascii_upcase + " " + $p' "$DOC" | sort >"$T/routes"
	sort >"$T/want" <<-'LIST'
		POST /auth/token
		GET /auth/users/me
		POST /campaigns
		POST /campaigns/backtest
		GET /campaigns
		GET /campaigns/{id}
		PATCH /campaigns/{id}
		DELETE /campaigns/{id}
		GET /campaigns/{id}/matches
		GET /campaigns/{id}/audit
		POST /events
		GET /events/{event_id}
		GET /events/{event_id}/explain
		GET /profiles/{user_id}
		POST /v1/track
		POST /v1/identify
		POST /v1/page
		POST /v1/screen
		POST /v1/group
		POST /v1/alias
		POST /v1/batch
		GET /health
		GET /metrics
		GET /docs
		GET /openapi.json
	LIST
	diff -u "$T/want" "$T/routes"
}

@test "each operation documents the statuses CONTRACT 4 names for it" {
	check() { # METHOD PATH CODE...
		local m=$1 p=$2 c have
		shift 2
		have=$(jq -r --arg p "$p" --arg m "$m" '.paths[$p][$m].responses | keys | join(" ")' "$DOC")
		for c in "$@"; do
			[[ " $have " == *" $c "* ]] || {
				echo "$m $p: no $c (has $have)"
				return 1
			}
		done
	}
	check post /auth/token 200 401 422
	check get /auth/users/me 200 401
	check post /campaigns 201 401 403 409 413 422
	check get /campaigns 200 401 422
	check get /campaigns/{id} 200 401 404
	check patch /campaigns/{id} 200 401 403 404 409 413 422
	check delete /campaigns/{id} 200 401 403 404 409
	check get /campaigns/{id}/matches 200 401 404 422
	check get /campaigns/{id}/audit 200 401 404 422
	check post /events 202 401 413 422 503
	check get /events/{event_id} 200 401 404
	check get /events/{event_id}/explain 200 401 404
	check post /campaigns/backtest 200 401 403 422 429
	check get /profiles/{user_id} 200 401 404
	for p in track identify page screen group alias batch; do
		check post "/v1/$p" 200 400 401 503
	done
	check get /health 200 503
	check get /metrics 200
	# Every operation says what another method on its path gets.
	[ "$(jq '[.paths[][] | objects | select(.responses) | .responses | has("405")] | all' "$DOC")" = true ]
	# Error bodies are FastAPI's.
	[ "$(jq -c '.components.responses.NotFound.content["application/json"].example' "$DOC")" = '{"detail":"Not Found"}' ]
	[ "$(jq -c '.components.responses.MethodNotAllowed.content["application/json"].example' "$DOC")" = '{"detail":"Method Not Allowed"}' ]
	[ "$(jq -c '.components.responses.Unauthorized.headers | keys' "$DOC")" = '["WWW-Authenticate"]' ]
	[ "$(jq -c '.components.schemas.ValidationError.required' "$DOC")" = '["loc","msg","type"]' ]
	[ "$(jq -r '.components.responses.ValidationFailed.content["application/json"].schema["$ref"]' "$DOC")" = \
		'#/components/schemas/HTTPValidationError' ]
}

@test "public routes need no token; the others a user token; POST /events also a write key, /v1 only one" {
	public=$(jq -r '[.paths | to_entries[] | .key as $p | .value | to_entries[]
		| select(.value | type == "object" and has("security") and (.security == []))
		| (.key | ascii_upcase) + " " + $p] | sort | join(",")' "$DOC")
	[ "$public" = "GET /docs,GET /health,GET /metrics,GET /openapi.json,POST /auth/token" ]
	users=$(jq '[.paths | to_entries[] | select(.key | startswith("/v1/") | not) | .value[] | objects
		| select(.security and .security != [])
		| .security | map(keys[0]) | index("OAuth2PasswordBearer") != null and index("BearerJWT") != null] | all' "$DOC")
	[ "$users" = true ]
	[ "$(jq -c '[.paths["/events"].post.security[] | keys[0]]' "$DOC")" = '["OAuth2PasswordBearer","BearerJWT","WriteKey"]' ]
	[ "$(jq -r '.components.securitySchemes.OAuth2PasswordBearer.flows.password.tokenUrl' "$DOC")" = /auth/token ]
	[ "$(jq -r '.components.securitySchemes.BearerJWT.bearerFormat' "$DOC")" = JWT ]
	# Segment's routes: a write key as HTTP Basic (or writeKey in the body), nothing else
	[ "$(jq -c '[.paths | to_entries[] | select(.key | startswith("/v1/")) | .value.post.security] | unique' "$DOC")" = \
		'[[{"SegmentWriteKey":[]}]]' ]
	[ "$(jq -r '.components.securitySchemes.SegmentWriteKey.scheme' "$DOC")" = basic ]
	# The login form as FastAPI's OAuth2PasswordRequestForm takes it.
	[ "$(jq -c '.components.schemas.TokenRequest.required' "$DOC")" = '["username","password"]' ]
	[ "$(jq -r '.paths["/auth/token"].post.requestBody.content | keys[0]' "$DOC")" = application/x-www-form-urlencoded ]
}

@test "schemas follow CONTRACT 1: campaigns, events, matches, paging" {
	[ "$(jq -c '.components.schemas.Campaign.required' "$DOC")" = \
		'["id","name","status","starts_at","ends_at","rule","version","created_at","updated_at"]' ]
	[ "$(jq -c '.components.schemas.Campaign.properties.status.enum' "$DOC")" = '["active","paused","archived"]' ]
	[ "$(jq -c '.components.schemas.Leaf.properties.op.enum | length' "$DOC")" = 13 ]
	[ "$(jq -r '.components.schemas.Event.properties.event_type.pattern' "$DOC")" = '^[A-Za-z0-9_.:-]{1,64}$' ]
	[ "$(jq -c '.components.schemas.Match.required' "$DOC")" = \
		'["campaign_id","event_id","user_id","event_type","occurred_at"]' ]
	[ "$(jq -c '.components.schemas.AuditEntry.required' "$DOC")" = \
		'["id","campaign_id","actor","action","at","before","after"]' ]
	[ "$(jq -c '.components.schemas.EventsAccepted.required' "$DOC")" = '["accepted","event_ids"]' ]
	[ "$(jq -c '.paths["/events"].post.requestBody.content | keys' "$DOC")" = '["application/json","application/x-ndjson"]' ]
	[ "$(jq -c '[.paths["/campaigns"].get.parameters[]["$ref"]]' "$DOC")" = \
		'["#/components/parameters/status","#/components/parameters/limit","#/components/parameters/offset"]' ]
	[ "$(jq -c '.paths["/health"].get.responses["200"].content["application/json"].example' "$DOC")" = \
		'{"status":"ok","checks":{"redis":"ok","postgres":"ok"}}' ]
	[ "$(jq -r '.paths["/metrics"].get.responses["200"].content | keys[0]' "$DOC")" = text/plain ]
	# profiles (CONTRACT 1.5) and Segment's bodies and answers
	[ "$(jq -c '.components.schemas.Profile.required' "$DOC")" = '["user_id","traits","updated_at"]' ]
	# delivery controls (CONTRACT 1.6), outcomes, explain and backtest
	for s in CampaignCreate CampaignPatch Campaign; do
		[ "$(jq -c --arg s "$s" '.components.schemas[$s].properties | [has("limit"), has("holdout"), has("variants")]' "$DOC")" = '[true,true,true]' ]
	done
	[ "$(jq -c '.components.schemas.Limit.properties | keys' "$DOC")" = '["cooldown","per_user"]' ]
	[ "$(jq -c '.components.schemas.Variant.required' "$DOC")" = '["name","weight"]' ]
	[ "$(jq -c '.components.schemas.Match.properties.outcome.enum' "$DOC")" = '["matched","holdout","capped"]' ]
	[ "$(jq -c '.components.schemas.EventMatch.properties | [has("outcome"), has("variant"), has("capped_by")]' "$DOC")" = '[true,true,true]' ]
	[ "$(jq -c '[.paths["/campaigns/{id}/matches"].get.parameters[] | .name // .["$ref"]] | last' "$DOC")" = '"outcome"' ]
	[ "$(jq -c '.components.schemas.EventExplain.required' "$DOC")" = '["event_id","explain","stored"]' ]
	[ "$(jq -c '.components.schemas.Explain.required' "$DOC")" = '["event_id","campaign_id","matched","outcome","checks"]' ]
	[ "$(jq -c '.components.schemas.ExplainCheck.properties.check.enum' "$DOC")" = '["status","event_type","window","where","jq","bucket","limit"]' ]
	[ "$(jq -c '.components.schemas.BacktestRequest.properties | keys' "$DOC")" = '["campaign","max_events","since","until"]' ]
	[ "$(jq -c '.components.schemas.BacktestRequest.properties.max_events | [.default, .maximum]' "$DOC")" = '[1000000,10000000]' ]
	[ "$(jq -c '.components.schemas.BacktestResult.required' "$DOC")" = \
		'["complete","stopped","events_scanned","candidates","outcomes","distinct_users","per_day","first_matches"]' ]
	[ "$(jq -c '.components.schemas.BacktestResult.properties.stopped.enum' "$DOC")" = '["time limit","event limit",null]' ]
	[ "$(jq -c '.components.responses.BacktestBusy.headers | keys' "$DOC")" = '["Retry-After"]' ]
	[ "$(jq -c '.components.responses.SegmentSuccess.content["application/json"].example' "$DOC")" = '{"success":true}' ]
	[ "$(jq -c '.components.schemas.SegmentError.required' "$DOC")" = '["success","message"]' ]
	[ "$(jq -c '.components.responses.SegmentUnauthorized.headers | keys' "$DOC")" = '["WWW-Authenticate"]' ]
	[ "$(jq -c '.components.responses.SegmentUnavailable.headers | keys' "$DOC")" = '["Retry-After"]' ]
	[ "$(jq -c '.components.schemas.SegmentBatch.properties.batch.items["$ref"]' "$DOC")" = '"#/components/schemas/SegmentCall"' ]
	[ "$(jq -r '.paths["/v1/screen"].post.requestBody.content["application/json"].schema["$ref"]' "$DOC")" = \
		'#/components/schemas/SegmentPage' ]
	# The document's version is the program's.
	# (CM_VERSION is in version.h.)
	v=$(cat "$TOP"/src/lib/version.h | sed -n 's/^#define CM_VERSION "\(.*\)"/\1/p')
	[ -n "$v" ]
	[ "$(jq -r .info.version "$DOC")" = "$v" ]
}
