#!/usr/bin/env bats
# The packaging, checked without installing anything: the dependency lists,
# the bash completions against each tool's --help, the systemd units
# (systemd-analyze verify and security), the environment file, the
# Dockerfile (dockerfile-utils, shellcheck of every RUN), the container
# health check, the compose file (the compose-spec schema, with ajv), the
# Kubernetes manifests (the Kubernetes schemas of kubernetes-models), the
# Prometheus alerts (promtool check and test rules) and the Grafana
# dashboard. The npm validators are in tests/node-pkg (make test runs npm ci
# there first). Tests marked "needs cm-httpd" run the real cm-httpd.

load lib/common
load lib/redis
load lib/pg

NODE=$TOP/tests/node-pkg
CHECK=$NODE/check.js
UNITS=$TOP/packaging/systemd
K8S=$TOP/packaging/k8s

setup_file() {
	if [ ! -d "$TOP/tests/node-pkg/node_modules/ajv" ]; then
		echo "tests/node-pkg/node_modules is missing: make test runs npm ci there" >&2
		return 1
	fi
}

# Servers a test started, stopped also when it fails.
teardown() {
	local p
	for p in ${HTTPD_PID:-} ${WORKER_PID:-}; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	HTTPD_PID='' WORKER_PID=''
	redis_cleanup
	pg_stop
}

# start_servers: a Redis and a PostgreSQL with the schema.
start_servers() {
	redis_start
	pg_start
	CM_SQL_DIR=$TOP/share/sql cm-admin migrate >/dev/null
}

# start_httpd: cm-httpd on a free port (HTTPD_PORT, HTTPD_PID) with a fresh
# JWT secret, once it answers /health with 200.
start_httpd() {
	local i
	command -v cm-httpd >/dev/null || {
		echo "this test needs cm-httpd, which is not built" >&2
		return 1
	}
	HTTPD_PORT=$(free_port)
	CM_JWT_SECRET=$(head -c 32 /dev/urandom | base64) \
		cm-httpd --listen "127.0.0.1:$HTTPD_PORT" >"$T/httpd.log" 2>&1 3>&- &
	HTTPD_PID=$!
	for ((i = 0; i < 100; i++)); do
		CM_LISTEN=127.0.0.1:$HTTPD_PORT "$TOP/packaging/docker/cm-healthcheck" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "cm-httpd did not answer /health with 200:" >&2
	cat "$T/httpd.log" >&2
	return 1
}

# documented_metrics: the metric names of the README's Monitoring table.
documented_metrics() {
	sed -n '/^## Monitoring/,/^## [^M]/p' "$TOP/README.md" |
		grep -oE '^\| `cm_[a-z_]+' | sed 's/^| `//' | sort -u
}

# used_metrics FILE...: the cm_ metric names FILEs mention, without the
# _bucket/_sum/_count suffixes of histograms.
used_metrics() {
	grep -ohE '\bcm_[a-z_]+' "$@" | sed -E 's/_(bucket|sum|count)$//' | sort -u
}

# retry_for: cm-store's default --retry-for, in seconds, from its --help.
retry_for() {
	cm-store --help | tr '\n' ' ' | grep -oE -- '--retry-for SECONDS[^(]*\(default [0-9]+\)' |
		grep -oE '[0-9]+\)$' | tr -d ')'
}

# complete_words TOOL WORD...: what TOOL's generated completion offers for
# the command line "TOOL WORD..." (the last WORD is the one completed).
complete_words() {
	local tool=$1
	shift
	bash -c '
		file=$1 tool=$2
		shift 2
		. "$file"
		COMP_WORDS=("$tool" "$@")
		COMP_CWORD=$#
		fn=$(complete -p "$tool" | sed "s/.*-F \([^ ]*\).*/\1/")
		"$fn"
		printf "%s\n" "${COMPREPLY[@]}"
	' _ "$T/completions/$tool" "$tool" "$@" | sort
}

# free_port: an odd TCP port in 40000-49999 nothing listens on.
free_port() {
	local p try
	for ((try = 0; try < 50; try++)); do
		p=$((40001 + (RANDOM % 5000) * 2))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

@test "deps.sh: every group lists packages, an unknown group is refused, nothing is missing here" {
	local g
	for g in build unit runtime test lint pkg demo all; do
		run "$TOP/packaging/deps.sh" --list "$g"
		[ "$status" -eq 0 ]
		[ -n "$output" ]
	done
	run "$TOP/packaging/deps.sh" --list nonsense
	[ "$status" -eq 2 ]
	grep -q "unknown group 'nonsense'" <<<"$output"
	# make test ran deps.sh build test before the suites
	run "$TOP/packaging/deps.sh" --check build test
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "deps.sh: the Debian Build-Depends are in the build group" {
	local p bad="" build
	build=$("$TOP/packaging/deps.sh" --list build)
	for p in $(sed -n '/^Build-Depends:/,/^[A-Z]/p' "$TOP/packaging/debian/control" |
		sed 's/^Build-Depends://; s/([^)]*)//g' | tr ',' '\n' | grep -oE '^[[:space:]]*[a-z0-9][a-z0-9.+-]+' | tr -d ' \t'); do
		[ "$p" = debhelper-compat ] && continue
		grep -qx "$p" <<<"$build" || bad="$bad $p"
	done
	echo "not in the build group:$bad"
	[ -z "$bad" ]
}

@test "deps.sh: the runtime group has the package of every library the tools link" {
	local lib real pkg bad="" runtime closure n=0 t direct pkgs
	runtime=$("$TOP/packaging/deps.sh" --list runtime)
	mapfile -t pkgs <<<"$runtime"
	# what the runtime packages bring with them
	closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances "${pkgs[@]}" | grep -v '^ ' | sort -u)
	for t in "$TOP"/bin/cm-*; do
		file "$t" | grep -q ELF || continue
		n=$((n + 1))
		direct=$(objdump -p "$t" | awk '$1 == "NEEDED" { print $2 }')
		while read -r lib real; do
			real=$(readlink -f "$real")
			pkg=$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null) || pkg=
			pkg=${pkg%%:*}
			case $pkg in libc6 | libgcc-s1 | '') continue ;; esac
			if grep -qx "$lib" <<<"$direct"; then
				# linked directly: named in the group itself
				grep -qx "$pkg" <<<"$runtime" || bad="$bad $(basename "$t"):$lib:$pkg"
			else
				grep -qx "$pkg" <<<"$closure" || bad="$bad $(basename "$t"):$lib:$pkg(indirect)"
			fi
		done < <(ldd "$t" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
	done
	echo "tools: $n; libraries the runtime group does not bring:$bad"
	[ "$n" -ge 6 ]
	[ -z "$bad" ]
}

@test "every tool's bash completion offers exactly the options of its --help" {
	local t name n=0 want got
	mkdir -p "$T/completions"
	for t in "$CM_BIN"/cm-*; do
		name=$(basename "$t")
		"$TOP/packaging/completion.sh" "$t" >"$T/completions/$name"
		n=$((n + 1))
		# the long options that start a line of --help
		want=$("$t" --help | grep -oE '^[[:space:]]+(-[A-Za-z0-9], )?--[a-z][a-z0-9-]*' |
			grep -oE -- '--[a-z][a-z0-9-]*$' | sort -u)
		got=$(complete_words "$name" --)
		[ -n "$want" ]
		if [ "$want" != "$got" ]; then
			echo "$name: --help has"
			echo "$want"
			echo "the completion offers"
			echo "$got"
			return 1
		fi
		bash -n "$T/completions/$name"
	done
	[ "$n" -ge 7 ]
}

@test "completions complete values, commands and files" {
	local t
	mkdir -p "$T/completions"
	for t in cm-match cm-admin cm-ingest cm-consume; do
		"$TOP/packaging/completion.sh" "$CM_BIN/$t" >"$T/completions/$t"
	done
	[ "$(complete_words cm-match --emit '' | tr '\n' ' ')" = "events matches " ]
	[ "$(complete_words cm-match --emit=m)" = matches ]
	[ "$(complete_words cm-admin '' | tr '\n' ' ')" = "key migrate user " ]
	[ "$(complete_words cm-admin key '' | tr '\n' ' ')" = "add del list " ]
	[ "$(complete_words cm-admin --db x user '' | tr '\n' ' ')" = "add del list passwd " ]
	[ "$(complete_words cm-admin user add alice --role '' | tr '\n' ' ')" = "admin user " ]
	# a URL or a number completes to nothing
	[ -z "$(complete_words cm-consume --redis '')" ]
	# files: FILE operands and FILE values
	touch "$T/orders-a.csv" "$T/orders-b.csv"
	[ "$(complete_words cm-ingest "$T/orders-" | wc -l)" -eq 2 ]
	[ "$(complete_words cm-ingest --rejects "$T/orders-a")" = "$T/orders-a.csv" ]
	[ "$(complete_words cm-match -c "$T/orders-b")" = "$T/orders-b.csv" ]
}

@test "the units: sandboxed, as the service user, restarted on failure; the worker drains" {
	local u s bad=""
	for u in "$UNITS/cm-httpd.service" "$UNITS/cm-worker@.service"; do
		for s in User=campaign-manager Group=campaign-manager Restart=on-failure \
			EnvironmentFile=/etc/campaign-manager/campaign-manager.env \
			NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes ProtectHome=yes \
			PrivateDevices=yes ProtectKernelTunables=yes ProtectKernelModules=yes \
			ProtectKernelLogs=yes ProtectControlGroups=yes \
			'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' SystemCallFilter=@system-service \
			CapabilityBoundingSet= MemoryDenyWriteExecute=yes LockPersonality=yes \
			RestrictNamespaces=yes; do
			grep -qxF "$s" "$u" || bad="$bad $(basename "$u"):$s"
		done
	done
	# %i is the worker id, so the consumer name; the stop gives the drain time
	grep -qxF 'Environment=CM_WORKER_ID=%i' "$UNITS/cm-worker@.service" || bad="$bad worker:CM_WORKER_ID"
	grep -qxF 'KillMode=mixed' "$UNITS/cm-worker@.service" || bad="$bad worker:KillMode"
	local stop retry
	stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$UNITS/cm-worker@.service")
	retry=$(retry_for)
	echo "worker TimeoutStopSec=$stop, cm-store --retry-for default $retry"
	[ -n "$retry" ]
	[ "${stop:-0}" -gt "$retry" ] || bad="$bad worker:TimeoutStopSec"
	# the JWT secret as a credential, not readable by the service itself
	grep -qxF 'LoadCredential=jwt-secret:/etc/campaign-manager/jwt-secret' "$UNITS/cm-httpd.service" ||
		bad="$bad httpd:LoadCredential"
	# %d: the credentials directory
	grep -qxF -- 'ExecStart=/usr/bin/cm-httpd --jwt-secret-file %d/jwt-secret' "$UNITS/cm-httpd.service" ||
		bad="$bad httpd:--jwt-secret-file"
	echo "missing:$bad"
	[ -z "$bad" ]
}

@test "the unit shown in cm-worker(1) is the packaged one" {
	local line n=0
	while IFS= read -r line; do
		n=$((n + 1))
		grep -qxF -- "$line" "$UNITS/cm-worker@.service" || { echo "not in the unit: $line"; return 1; }
	done < <(sed -n '/^\[Service\]$/,/^\.Ed$/p' "$TOP/man/cm-worker.1" | grep -v '^\.Ed$')
	[ "$n" -ge 6 ]
}

@test "systemd-analyze security rates both units OK, with the exposure the README states" {
	local u score
	for u in cm-httpd.service cm-worker@.service; do
		run systemd-analyze security --offline=true --threshold=15 "$UNITS/$u"
		[ "$status" -eq 0 ]
		score=$(grep -oE 'Overall exposure level for [^:]*: [0-9.]+' <<<"$output" | grep -oE '[0-9.]+$')
		echo "$u: $score"
		[ -n "$score" ]
		grep -qF "\`$u\`: exposure $score" "$TOP/README.md"
	done
}

# verify_unit UNIT: systemd-analyze verify on a copy of UNIT whose programs
# and files are the build's and this test's.
verify_unit() {
	local u=$1 name=${2:-$1}
	mkdir -p "$T/units"
	sed -e "s|/usr/bin/|$CM_BIN/|g" -e "s|/etc/campaign-manager/|$T/|g" \
		"$UNITS/$u" >"$T/units/$name"
	cp "$TOP/packaging/campaign-manager.env" "$T/campaign-manager.env"
	head -c 32 /dev/urandom | base64 >"$T/jwt-secret"
	systemd-analyze verify --man=no "$T/units/$name"
}

@test "systemd-analyze verify accepts cm-worker@.service (as the instance cm-worker@1)" {
	run verify_unit cm-worker@.service cm-worker@1.service
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

# needs cm-httpd: verify checks that ExecStart's program exists.
@test "systemd-analyze verify accepts cm-httpd.service" {
	run verify_unit cm-httpd.service
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "the environment file: each setting explained, read alike by systemd and the shell" {
	local env=$TOP/packaging/campaign-manager.env line prev="" bad=""
	while IFS= read -r line; do
		case $line in
		'' | '#'*) ;;
		*)
			# VAR=word or VAR="words": no expansion, no escapes, no other quoting
			# shellcheck disable=SC2016
			grep -qE '^[A-Z][A-Z0-9_]*=([^"'\''$`\\ ]*|"[^"$`\\]*")$' <<<"$line" || bad="$bad syntax:${line%%=*}"
			# a comment block right above it
			case $prev in '#'*) ;; *) bad="$bad uncommented:${line%%=*}" ;; esac
			;;
		esac
		prev=$line
	done <"$env"
	# the shell reads the values the file shows, quotes removed
	run env -i sh -c "set -a; . '$env'; env" 
	[ "$status" -eq 0 ]
	grep -qx 'CM_DATABASE_URL=host=/var/run/postgresql dbname=campaign_manager user=campaign-manager' <<<"$output"
	echo "problems:$bad"
	[ -z "$bad" ]
}

# needs cm-httpd: CM_LISTEN and CM_JWT_SECRET_FILE are documented in cm-httpd(8).
@test "every variable the environment file sets is one a man page documents" {
	local v bad=""
	for v in $(grep -oE '^[A-Z][A-Z0-9_]*=' "$TOP/packaging/campaign-manager.env" | tr -d =); do
		grep -qlF "$v" "$TOP"/man/*.[1-8] || bad="$bad $v"
	done
	echo "undocumented:$bad"
	[ -z "$bad" ]
}

@test "Dockerfile: dockerfile-utils finds nothing; two stages, tests in the first, non-root with a health check" {
	local df=$TOP/Dockerfile
	run node "$CHECK" dockerfile "$df"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -cE '^FROM ' "$df")" -eq 2 ]
	grep -qxE 'FROM debian:bookworm AS build' "$df"
	[ "$(grep -E '^FROM ' "$df" | tail -1)" = "FROM debian:bookworm-slim" ]
	# the unit tests run in the build stage, before the install
	sed -n '/^FROM debian:bookworm AS build/,/^FROM /p' "$df" | grep -q 'make unit-check'
	# the last USER is numeric and not root; the health check is the probe
	[ "$(grep -E '^USER ' "$df" | tail -1)" = "USER 10001:10001" ]
	grep -qE '^HEALTHCHECK .*' "$df"
	grep -A1 '^HEALTHCHECK' "$df" | grep -qF 'CMD ["cm-healthcheck", "--if-httpd"]'
	# every COPY source exists in the build context
	local src
	while read -r src; do
		[ -e "$TOP/$src" ] || { echo "COPY source missing: $src"; return 1; }
	done < <(grep -E '^COPY [^-]' "$df" | awk '{ print $2 }')
}

@test "Dockerfile: every RUN passes shellcheck, and apt lists are removed where installed" {
	local n=0 f
	# RUN instructions with their continuation lines joined, one a file
	awk -v dir="$T" '
		/^RUN / { run = 1; n++; cmd = substr($0, 5) }
		!/^RUN / && run { cmd = cmd "\n" $0 }
		run && !/\\$/ { run = 0; print cmd > (dir "/run" n ".sh"); close(dir "/run" n ".sh") }
	' "$TOP/Dockerfile"
	for f in "$T"/run*.sh; do
		n=$((n + 1))
		run shellcheck -s sh "$f"
		echo "$output"
		[ "$status" -eq 0 ]
		if grep -q 'deps.sh\|apt-get install' "$f"; then
			grep -q 'rm -rf /var/lib/apt/lists/\*' "$f"
		fi
	done
	[ "$n" -ge 3 ]
}

@test "cm-healthcheck: --worker names a missing stage, --if-httpd passes without cm-httpd, nothing listening fails" {
	local hc=$TOP/packaging/docker/cm-healthcheck port
	# in a PID namespace of its own, as in a container: the machine's other
	# processes (a cm-httpd of another test) are not seen
	run unshare -pf --mount-proc "$hc" --worker
	[ "$status" -eq 1 ]
	grep -qx 'cm-healthcheck: cm-consume is not running' <<<"$output"
	run unshare -pf --mount-proc "$hc" --if-httpd
	[ "$status" -eq 0 ]
	port=$(free_port)
	CM_LISTEN=0.0.0.0:$port run "$hc"
	[ "$status" -eq 1 ]
	[ "$output" = "cm-healthcheck: cannot connect to 127.0.0.1 port $port" ]
	run "$hc" --bogus
	[ "$status" -eq 2 ]
}

@test "cm-healthcheck --worker is healthy while a worker's three stages run" {
	start_servers
	cm-worker --db "$CM_DATABASE_URL" >"$T/w.log" 2>&1 3>&- &
	WORKER_PID=$!
	local i ok=1
	for ((i = 0; i < 100; i++)); do
		if "$TOP/packaging/docker/cm-healthcheck" --worker 2>/dev/null; then
			ok=0
			break
		fi
		sleep 0.1
	done
	cat "$T/w.log"
	[ "$ok" -eq 0 ]
}

# needs cm-httpd
@test "cm-healthcheck against cm-httpd: healthy on 200, unhealthy once PostgreSQL is down" {
	start_servers
	start_httpd
	local hc=$TOP/packaging/docker/cm-healthcheck i down=1
	# --if-httpd finds the cm-httpd process and probes it
	CM_LISTEN=127.0.0.1:$HTTPD_PORT "$hc" --if-httpd
	pg_stop_server
	for ((i = 0; i < 100; i++)); do
		if ! CM_LISTEN=127.0.0.1:$HTTPD_PORT "$hc" 2>"$T/hc.err"; then
			down=0
			break
		fi
		sleep 0.1
	done
	cat "$T/hc.err"
	[ "$down" -eq 0 ]
	grep -q 'GET /health: HTTP/1.[01] 503' "$T/hc.err"
}

@test "compose.yaml is valid against the compose-spec schema; a broken one is refused" {
	run node "$CHECK" compose "$TOP/packaging/compose.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	sed 's/condition: service_completed_successfully/condition: done/' \
		"$TOP/packaging/compose.yaml" >"$T/broken.yaml"
	run node "$CHECK" compose "$T/broken.yaml"
	echo "$output"
	[ "$status" -eq 1 ]
	grep -q 'depends_on/migrate/condition: must be equal to one of the allowed values' <<<"$output"
}

@test "compose.yaml: Redis with AOF, PostgreSQL, the migration, cm-httpd and two workers, in order" {
	local c retry grace
	c=$(node "$CHECK" tojson "$TOP/packaging/compose.yaml")
	# AOF on, health checks on both servers
	jq -e '.services.redis.command | index("--appendonly") as $i | .[$i + 1] == "yes"' <<<"$c"
	jq -e '.services.redis.healthcheck.test and .services.postgres.healthcheck.test' <<<"$c"
	# the migration: cm-admin migrate once PostgreSQL is healthy, never restarted
	jq -e '.services.migrate.command == ["cm-admin", "migrate"] and .services.migrate.restart == "no"
		and .services.migrate.depends_on.postgres.condition == "service_healthy"' <<<"$c"
	# the API and the workers start after a completed migration and a healthy Redis
	jq -e '[.services | to_entries[] | select(.key == "httpd" or (.key | startswith("worker")))
		| .value.depends_on.migrate.condition == "service_completed_successfully"
		  and .value.depends_on.redis.condition == "service_healthy"] | length == 3 and all' <<<"$c"
	jq -e '.services.httpd.healthcheck.test == ["CMD", "cm-healthcheck"]' <<<"$c"
	# two workers with their own consumer names, a stop that lets them drain
	jq -e '[.services | to_entries[] | select(.key | startswith("worker")) | .value.command[2]]
		| length == 2 and (unique | length) == 2' <<<"$c"
	retry=$(retry_for)
	for grace in $(jq -r '.services | to_entries[] | select(.key | startswith("worker")) | .value.stop_grace_period' <<<"$c"); do
		[ "${grace%s}" -gt "$retry" ]
	done
	# one image for every service of ours
	[ "$(jq -r '[.services[] | select(.build) | .image] | unique | length' <<<"$c")" -eq 1 ]
}

@test "every Kubernetes manifest is valid against the Kubernetes schemas; a broken one is refused" {
	run node "$CHECK" k8s "$K8S"/*.yaml
	echo "$output"
	[ "$status" -eq 0 ]
	local kinds
	kinds=$(grep -oE 'valid [^ ]+ [A-Za-z]+$' <<<"$output" | awk '{ print $3 }' | sort -u | tr '\n' ' ')
	[ "$kinds" = "ConfigMap Deployment HorizontalPodAutoscaler Job PodDisruptionBudget Secret Service " ]
	sed 's/containerPort: 8000/containerPort: "eight thousand"/; s/replicas: 2/replicas: two/' \
		"$K8S/httpd.yaml" >"$T/broken.yaml"
	run node "$CHECK" k8s "$T/broken.yaml"
	echo "$output"
	[ "$status" -eq 1 ]
	grep -q 'Deployment/cm-httpd: /spec/replicas: must be integer' <<<"$output"
	grep -q 'containerPort: must be integer' <<<"$output"
}

@test "Kubernetes: probes and resources everywhere, selectors that match, the worker's drain fits its grace period" {
	local m retry
	m=$(node "$CHECK" tojson "$K8S"/*.yaml | jq -s .)
	# every container of the Deployments has both probes, requests and limits
	jq -e '[.[] | select(.kind == "Deployment") | .spec.template.spec.containers[]
		| .livenessProbe and .readinessProbe and .resources.requests.cpu and .resources.requests.memory
		  and .resources.limits.cpu and .resources.limits.memory] | length == 2 and all' <<<"$m"
	# readiness is /health; the API's liveness does not depend on Redis or PostgreSQL
	jq -e '.[] | select(.kind == "Deployment" and .metadata.name == "cm-httpd") | .spec.template.spec.containers[0]
		| .readinessProbe.httpGet.path == "/health" and .livenessProbe.tcpSocket' <<<"$m"
	# selectors of the Service, the PDBs and the Deployments match their pods
	jq -e '[.[] | select(.kind == "Deployment") | .spec.selector.matchLabels as $s
		| .spec.template.metadata.labels | contains($s)] | all' <<<"$m"
	jq -e '(.[] | select(.kind == "Service") | .spec.selector) as $s
		| [.[] | select(.kind == "Deployment" and .metadata.name == "cm-httpd") | .spec.template.metadata.labels | contains($s)] | all' <<<"$m"
	jq -e '[.[] | select(.kind == "PodDisruptionBudget")] | length == 2' <<<"$m"
	jq -e '. as $all | [.[] | select(.kind == "PodDisruptionBudget") | .spec.selector.matchLabels as $s
		| [$all[] | select(.kind == "Deployment" and (.spec.template.metadata.labels | contains($s)))] | length == 1] | all' <<<"$m"
	# the HPA scales the worker Deployment
	jq -e '.[] | select(.kind == "HorizontalPodAutoscaler") | .spec.scaleTargetRef
		| .kind == "Deployment" and .name == "cm-worker"' <<<"$m"
	# the worker's grace period covers cm-store's --retry-for
	retry=$(retry_for)
	jq -e --argjson r "$retry" '.[] | select(.kind == "Deployment" and .metadata.name == "cm-worker")
		| .spec.template.spec.terminationGracePeriodSeconds > $r' <<<"$m"
	# pods run as the image's user, never as root
	jq -e '[.[] | .spec.template.spec.securityContext? // empty | .runAsNonRoot and .runAsUser == 10001] | length == 3 and all' <<<"$m"
	# every key taken from the Secret is one the template has
	jq -e '(.[] | select(.kind == "Secret") | .stringData | keys) as $k
		| [.. | objects | .secretKeyRef? // empty | .key] + [.. | objects | .items? // empty | .[] | .key? // empty]
		| all(. as $x | $k | index($x))' <<<"$m"
}

@test "promtool accepts the alert rules, and their unit tests pass" {
	run promtool check rules "$TOP/packaging/prometheus/alerts.yml"
	echo "$output"
	[ "$status" -eq 0 ]
	run promtool test rules "$TOP/packaging/prometheus/alerts_test.yml"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q SUCCESS <<<"$output"
}

@test "every alert has a unit test in which it fires" {
	local a bad="" alerts tested
	alerts=$(grep -oE '^ *- alert: [A-Za-z0-9]+' "$TOP/packaging/prometheus/alerts.yml" | awk '{ print $3 }')
	[ "$(wc -l <<<"$alerts")" -ge 6 ]
	# alertnames followed by a non-empty exp_alerts
	tested=$(awk '/alertname:/ { a = $2 } /exp_labels:/ && a { print a }' \
		"$TOP/packaging/prometheus/alerts_test.yml" | sort -u)
	for a in $alerts; do
		grep -qx "$a" <<<"$tested" || bad="$bad $a"
	done
	echo "never seen firing:$bad"
	[ -z "$bad" ]
}

@test "the alerts and the dashboard use only the metrics the README documents" {
	local doc m bad=""
	doc=$(documented_metrics)
	[ "$(wc -l <<<"$doc")" -ge 20 ]
	for m in $(used_metrics "$TOP/packaging/prometheus/alerts.yml" "$TOP/packaging/grafana/campaign-manager.json"); do
		grep -qx "$m" <<<"$doc" || bad="$bad $m"
	done
	echo "undocumented:$bad"
	[ -z "$bad" ]
}

@test "the dashboard: a Prometheus datasource variable, unique ids, panels on the grid without overlap" {
	local d=$TOP/packaging/grafana/campaign-manager.json
	jq -e '.templating.list[] | select(.name == "datasource") | .type == "datasource" and .query == "prometheus"' "$d"
	jq -e '.title and .uid and .schemaVersion >= 36' "$d"
	jq -e '[.panels[].id] | length == (unique | length)' "$d"
	# every query panel and target reads the chosen datasource
	jq -e '[.panels[] | select(.type != "row") | .datasource.uid == "${datasource}"
		and (.targets | length > 0) and all(.targets[]; .datasource.uid == "${datasource}" and (.expr | length > 0))] | all' "$d"
	# inside the 24 columns, and no two panels share a cell
	jq -e '[.panels[].gridPos | .x >= 0 and .w > 0 and .x + .w <= 24 and .h > 0] | all' "$d"
	jq -e '[.panels[].gridPos as $g | range($g.x; $g.x + $g.w) as $x | range($g.y; $g.y + $g.h) as $y | [$x, $y]]
		| length == (unique | length)' "$d"
}

@test "the dashboard: every query is valid PromQL (promtool), and each required view is there" {
	local d=$TOP/packaging/grafana/campaign-manager.json
	# the queries as recording rules, with Grafana's variables filled in
	jq -r '"groups:\n  - name: dashboard\n    rules:",
		([.panels[] | select(.type != "row") | .targets[].expr] | to_entries[]
		 | "      - record: dashboard:query_\(.key)\n        expr: \(.value | gsub("\\$__rate_interval|\\$__range"; "5m")
		   | gsub("\\$(stream|group|consumer)"; "x") | tojson)")' "$d" >"$T/queries.yml"
	run promtool check rules "$T/queries.yml"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'record:' "$T/queries.yml")" -ge 25 ]
	local m exprs
	exprs=$(jq -r '.panels[] | .targets[]? | .expr' "$d")
	# throughput, latency, queue depth and lag, dead letters, errors, per campaign
	for m in cm_http_requests_total cm_http_request_duration_seconds_bucket cm_events_accepted_total \
		cm_worker_stored_total cm_stream_length cm_stream_pending cm_stream_lag cm_dead_letter_length \
		cm_worker_errors_total 'status=~"5.."' cm_worker_publish_to_commit_seconds_bucket \
		'sum by (campaign_id)' cm_worker_up; do
		grep -qF "$m" <<<"$exprs" || { echo "no query uses $m"; return 1; }
	done
}

@test "the dashboard's layout picture is what layout.jq draws from it" {
	run jq -r -f "$TOP/packaging/grafana/layout.jq" "$TOP/packaging/grafana/campaign-manager.json"
	[ "$status" -eq 0 ]
	diff <(echo "$output") "$TOP/packaging/grafana/campaign-manager.svg"
	grep -c '<rect x=' "$TOP/packaging/grafana/campaign-manager.svg" |
		grep -qx "$(jq '[.panels[] | select(.type != "row")] | length' "$TOP/packaging/grafana/campaign-manager.json")"
}

# get PATH: the body of GET PATH from the test's cm-httpd (HTTP/1.0).
get() {
	exec 4<>"/dev/tcp/127.0.0.1/$HTTPD_PORT"
	printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" >&4
	sed '1,/^\r\{0,1\}$/d' <&4
	exec 4>&-
}

# needs cm-httpd
@test "cm-httpd's /metrics serves documented metrics only, and the dashboard's basics" {
	start_servers
	start_httpd
	local families m bad=""
	# a request first, so that the request counters have a sample
	get /health >/dev/null
	get /metrics >"$T/metrics"
	families=$(grep -oE '^# TYPE cm_[a-z_]+' "$T/metrics" | awk '{ print $3 }' | sort -u)
	echo "families: $families"
	[ -n "$families" ]
	for m in $families; do
		grep -qx "$m" <<<"$(documented_metrics)" || bad="$bad $m"
	done
	echo "served but not documented:$bad"
	[ -z "$bad" ]
	grep -qE '^cm_build_info\{version="[^"]+"\} 1$' "$T/metrics"
	grep -q '^cm_http_requests_total{' "$T/metrics"
	grep -q '^cm_stream_length{' "$T/metrics"
}
