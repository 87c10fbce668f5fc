#!/usr/bin/env bash
# cm-import.sh - the nightly CSV import: each FILE through
#     cm-ingest --rejects FILE.rejects.ndjson FILE | cm-publish
# for cron (campaign-manager.cron beside this file).
#
#   cm-import.sh [--wait SECONDS] [--lock FILE] [--env FILE] FILE...
#
# - One import at a time: a run takes an exclusive flock on the lock file
#   (default /run/lock/campaign-manager-import.lock, or $CM_IMPORT_LOCK);
#   a second run that overlaps waits up to --wait seconds (default 0) for
#   the first to finish, then gives up with status 75 (EX_TEMPFAIL) and a
#   message, so cron mails it.
# - The records a FILE rejects are kept beside it, in FILE.rejects.ndjson
#   ({"source","line","error","raw"} per line, cm-ingest --rejects); the
#   file is removed again when nothing was rejected. The other records are
#   published, and the run ends with status 1 (cron mails its report).
# - Importing the same file again is harmless: cm-ingest derives each
#   event_id from the record when the file has none, so the events are the
#   same, and the workers' cm-store keeps each event_id once.
# - Settings (CM_REDIS_URL, ...) come from the environment file given with
#   --env (default /etc/campaign-manager/campaign-manager.env when readable).
#
# Exit status: 0 every record of every FILE published; 1 some records
# rejected (the others published); 2 usage; 75 another import holds the
# lock; otherwise the status of the cm-ingest or cm-publish that failed
# (3: Redis unreachable; the FILEs after it are not imported).
set -u -o pipefail

prog=cm-import.sh
wait_s=0
lock=${CM_IMPORT_LOCK:-/run/lock/campaign-manager-import.lock}
env_file=/etc/campaign-manager/campaign-manager.env
env_given=0

usage() {
	echo "usage: $prog [--wait SECONDS] [--lock FILE] [--env FILE] FILE..." >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--wait) [ $# -ge 2 ] || usage; wait_s=$2; shift 2 ;;
	--lock) [ $# -ge 2 ] || usage; lock=$2; shift 2 ;;
	--env) [ $# -ge 2 ] || usage; env_file=$2; env_given=1; shift 2 ;;
	--) shift; break ;;
	-*) usage ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || usage
case $wait_s in
'' | *[!0-9]*) echo "$prog: --wait: expected whole seconds, got '$wait_s'" >&2; exit 2 ;;
esac

if [ -r "$env_file" ]; then
	set -a
	# shellcheck disable=SC1090
	. "$env_file"
	set +a
elif [ $env_given -eq 1 ]; then
	echo "$prog: $env_file: cannot read the environment file" >&2
	exit 2
fi

# The lock is held on fd 9 for the whole run, and released when it ends.
if ! exec 9>>"$lock"; then
	echo "$prog: $lock: cannot open the lock file" >&2
	exit 2
fi
if ! flock -w "$wait_s" 9; then
	echo "$prog: another import holds $lock (waited ${wait_s}s); not importing $*" >&2
	exit 75
fi

status=0
for f in "$@"; do
	rejects=$f.rejects.ndjson
	cm-ingest --rejects "$rejects" -- "$f" | cm-publish
	st=("${PIPESTATUS[@]}")
	if [ ! -s "$rejects" ]; then
		rm -f "$rejects"
	fi
	if [ "${st[1]}" -ne 0 ]; then
		echo "$prog: $f: cm-publish failed (status ${st[1]}); stopping" >&2
		exit "${st[1]}"
	fi
	case ${st[0]} in
	0) ;;
	1)
		echo "$prog: $f: $(wc -l <"$rejects") records rejected, kept in $rejects" >&2
		status=1
		;;
	*)
		echo "$prog: $f: cm-ingest failed (status ${st[0]}); stopping" >&2
		exit "${st[0]}"
		;;
	esac
done
exit "$status"
