#!/usr/bin/env bash
# The generator prints shell code: its single quotes are meant literally.
# shellcheck disable=SC2016
#
# completion.sh - writes the bash completion of one tool, generated from the
# tool's own --help, so that the completion cannot drift from the options.
#
#   packaging/completion.sh PATH/TO/cm-TOOL >cm-TOOL
#
# From --help it takes: every option that starts a line ("  -c, --campaigns
# FILE|CONNINFO", "      --raw"), whether it takes a value and what kind (a
# FILE or DIR completes file or directory names, "a|b" the words a and b;
# anything else, such as URL or N, nothing), the choices that the Usage lines
# show ("--role admin|user"), the commands of the Usage lines ("cm-admin
# [--db CONNINFO] user add NAME": user, then add), and whether the tool takes
# FILE operands. tests/packaging.bats checks the result against --help.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
	echo "usage: $0 PATH/TO/cm-TOOL" >&2
	exit 2
fi
tool=$(basename "$1")
help=$("$1" --help)
fn=_$(tr -c 'a-zA-Z0-9\n' _ <<<"$tool")

# One record per line: "opt LONG SHORT KIND [WORDS]", "cmd PATH...",
# "files".
spec=$(awk -v tool="$tool" '
	# value_kind META: what a value named META completes to.
	function value_kind(m) {
		if (m == "") return "none"
		if (m ~ /^[a-z][a-z0-9_-]*(\|[a-z][a-z0-9_-]*)+$/) return "words " m
		if (m ~ /FILE/) return "file"
		if (m ~ /DIR/) return "dir"
		return "value"
	}
	# The Usage block: the "Usage:" line and the indented lines that go on
	# with the tool name (another form) or with "[" (a continuation).
	/^Usage:/ { usage = 1 }
	usage && !/^Usage:/ && !($1 == tool || $1 ~ /^\[/) { usage = 0 }
	usage {
		line = $0
		sub(/^Usage:/, "", line)
		n = split(line, w, /[ \t]+/)
		start = 0
		for (i = 1; i <= n; i++) if (w[i] == tool) { start = i; break }
		# choices of the usage line: --role admin|user
		for (i = start + 1; i < n; i++)
			if (w[i] ~ /^--[a-z]/ && w[i + 1] ~ /^[a-z][a-z0-9_-]*(\|[a-z][a-z0-9_-]*)+$/)
				choice[substr(w[i], 3)] = w[i + 1]
		if (!start) next
		# commands: the bare lowercase words after the tool and its [..] groups
		path = ""
		depth = 0
		for (i = start + 1; i <= n; i++) {
			t = w[i]
			if (t == "") continue
			o = gsub(/\[/, "[", t); c = gsub(/\]/, "]", t)
			if (depth > 0 || o > 0) { depth += o - c; continue }
			if (t ~ /^[a-z][a-z0-9-]*$/) { path = path " " t; continue }
			if (t ~ /^\[?FILE/) files = 1
			break
		}
		if (path != "") print "cmd" path
		for (i = start + 1; i <= n; i++) if (w[i] ~ /FILE\]?\.\.\./) files = 1
		next
	}
	/^[ \t]+(-[A-Za-z0-9], )?--[a-z][a-z0-9-]*/ {
		line = $0
		sub(/^[ \t]+/, "", line)
		short = "-"
		if (line ~ /^-[A-Za-z0-9], /) { short = substr(line, 1, 2); line = substr(line, 5) }
		match(line, /^--[a-z][a-z0-9-]*/)
		long = substr(line, 3, RLENGTH - 2)
		rest = substr(line, RLENGTH + 1)
		meta = ""
		if (rest ~ /^=[^ ]/ || rest ~ /^ [^ ]/) {
			meta = substr(rest, 2)
			sub(/[ \t].*/, "", meta)
		}
		order[++nopt] = long
		shortof[long] = short
		metaof[long] = meta
	}
	END {
		for (i = 1; i <= nopt; i++) {
			l = order[i]
			k = value_kind(metaof[l])
			if (l in choice && k != "none") k = "words " choice[l]
			print "opt", l, shortof[l], k
		}
		if (files) print "files"
	}
' <<<"$help")

grep -q '^opt ' <<<"$spec" || {
	echo "$0: no options found in '$tool --help'" >&2
	exit 1
}

longs=$(awk '$1 == "opt" { printf "%s--%s", sep, $2; sep = " " }' <<<"$spec")
# case patterns per kind: "--campaigns|-c"
pattern() {
	awk -v kind="$1" '$1 == "opt" && $4 == kind {
		p = "--" $2; if ($3 != "-") p = p "|" $3
		printf "%s%s", sep, p; sep = "|" }' <<<"$spec"
}
file_opts=$(pattern file)
dir_opts=$(pattern dir)
value_opts=$(pattern value)
files=$(grep -c '^files$' <<<"$spec" || true)

{
	printf '# bash completion for %s -*- shell-script -*-\n' "$tool"
	printf '# Generated from "%s --help" by packaging/completion.sh; do not edit.\n\n' "$tool"
	printf '%s()\n{\n' "$fn"
	if grep -q '^cmd ' <<<"$spec"; then
		printf '\tlocal cur prev i w cmd=""\n'
	else
		printf '\tlocal cur prev\n'
	fi
	printf '\tcur=${COMP_WORDS[COMP_CWORD]}\n'
	printf '\tprev=${COMP_WORDS[COMP_CWORD - 1]}\n'
	printf '\tCOMPREPLY=()\n'
	printf '\tif [[ $cur == --*=* ]]; then\n\t\tprev=${cur%%%%=*}\n\t\tcur=${cur#*=}\n\tfi\n'
	printf '\tcase $prev in\n'
	[ -z "$file_opts" ] || printf '\t%s)\n\t\tcompopt -o filenames 2>/dev/null\n\t\tmapfile -t COMPREPLY < <(compgen -f -- "$cur")\n\t\treturn\n\t\t;;\n' "$file_opts"
	[ -z "$dir_opts" ] || printf '\t%s)\n\t\tcompopt -o filenames 2>/dev/null\n\t\tmapfile -t COMPREPLY < <(compgen -d -- "$cur")\n\t\treturn\n\t\t;;\n' "$dir_opts"
	awk '$1 == "opt" && $4 == "words" {
		p = "--" $2; if ($3 != "-") p = p "|" $3
		w = $5; gsub(/\|/, " ", w)
		printf "\t%s)\n\t\tmapfile -t COMPREPLY < <(compgen -W \"%s\" -- \"$cur\")\n\t\treturn\n\t\t;;\n", p, w
	}' <<<"$spec"
	[ -z "$value_opts" ] || printf '\t%s)\n\t\treturn\n\t\t;;\n' "$value_opts"
	printf '\tesac\n'
	printf '\tif [[ $cur == -* ]]; then\n'
	printf '\t\tmapfile -t COMPREPLY < <(compgen -W "%s" -- "$cur")\n' "$longs"
	printf '\t\treturn\n\tfi\n'
	if grep -q '^cmd ' <<<"$spec"; then
		# The words so far that are not options or option values: the command path.
		printf '\tfor ((i = 1; i < COMP_CWORD; i++)); do\n'
		printf '\t\tw=${COMP_WORDS[i]}\n'
		printf '\t\tcase $w in\n'
		[ -z "$file_opts$dir_opts$value_opts" ] ||
			printf '\t\t%s) ((i++)) ;;\n' "$(tr -s '|' <<<"${file_opts}|${dir_opts}|${value_opts}" | sed 's/^|//; s/|$//')"
		awk '$1 == "opt" && $4 == "words" { p = "--" $2; if ($3 != "-") p = p "|" $3; printf "\t\t%s) ((i++)) ;;\n", p }' <<<"$spec"
		printf '\t\t-*) ;;\n'
		printf '\t\t*) cmd="$cmd $w" ;;\n'
		printf '\t\tesac\n\tdone\n'
		printf '\tcase "$cmd" in\n'
		# commands in the order the Usage lines show them
		awk '$1 == "cmd" {
			if (!($2 in seen)) { seen[$2] = 1; top[++ntop] = $2 }
			if (NF >= 3 && !(($2 " " $3) in seen)) {
				seen[$2 " " $3] = 1
				subs[$2] = subs[$2] (nsub[$2]++ ? " " : "") $3
			}
		}
		END {
			t = ""
			for (i = 1; i <= ntop; i++) t = t (i > 1 ? " " : "") top[i]
			printf "\t\"\")\n\t\tmapfile -t COMPREPLY < <(compgen -W \"%s\" -- \"$cur\")\n\t\t;;\n", t
			for (i = 1; i <= ntop; i++) if (top[i] in subs)
				printf "\t\" %s\")\n\t\tmapfile -t COMPREPLY < <(compgen -W \"%s\" -- \"$cur\")\n\t\t;;\n", top[i], subs[top[i]]
		}' <<<"$spec"
		printf '\tesac\n'
	elif [ "$files" -gt 0 ]; then
		printf '\tcompopt -o filenames 2>/dev/null\n'
		printf '\tmapfile -t COMPREPLY < <(compgen -f -- "$cur")\n'
	fi
	printf '} &&\n\tcomplete -F %s %s\n' "$fn" "$tool"
}
