#!/usr/bin/env bats
# The documentation agrees with the tools: every long option a tool has (in
# its --help and in the option table of its source) is documented in its man
# page, every option the page lists exists, mandoc finds nothing to warn
# about, the rules shown in cm-rules(7) load, and the Debian packaging carries
# the tools' version.

load lib/common

# tools: the tools that have a built binary (src/cmd/cm-*.c) and the shell
# tools in bin/, one per line.
tools() {
	local c t
	for c in "$TOP"/src/cmd/cm-*.c; do
		[ -f "$c" ] || continue
		t=$(basename "$c" .c)
		[ -x "$CM_BIN/$t" ] && echo "$t"
	done
	scripts
}

# scripts: the shell tools of bin/ (no C source).
scripts() {
	local f t
	for f in "$TOP"/bin/cm-*; do
		t=$(basename "$f")
		[ -x "$f" ] && [ ! -f "$TOP/src/cmd/$t.c" ] && echo "$t"
	done
	return 0
}

# page TOOL: its man page, section 1 (a command) or 8 (a daemon).
page() {
	local s
	for s in 1 8; do
		[ -f "$TOP/man/$1.$s" ] && { echo "$TOP/man/$1.$s"; return 0; }
	done
	return 1
}

# bin TOOL: the program to run (the build's binary, or the script).
bin() {
	if [ -x "$CM_BIN/$1" ]; then echo "$CM_BIN/$1"; else echo "$TOP/bin/$1"; fi
}

# paged: the tools that have a man page (the first test reports the others).
paged() {
	local t
	for t in $(tools); do
		page "$t" >/dev/null && echo "$t"
	done
	return 0
}

# help_opts TOOL: the long options that TOOL --help lists, without "--": the
# first long option of each line that starts (after spaces) with an option.
help_opts() {
	"$(bin "$1")" --help | sed -nE 's/^ +(-[A-Za-z0-9], )?--([a-z][a-z0-9-]*).*/\2/p' | sort -u
}

# table_opts TOOL: the names in the struct option table of src/cmd/TOOL.c,
# including the shared options it lists by their CM_OPTION_* macro (whose
# names src/tool/tool.h defines).
table_opts() {
	local src=$TOP/src/cmd/$1.c m
	{
		grep -oE '\{ *"[a-z][a-z0-9-]*" *, *(no|required|optional)_argument' "$src" |
			sed -E 's/^\{ *"([^"]*)".*/\1/'
		for m in $(grep -oE '\bCM_OPTION_[A-Z_]+\b' "$src" | sort -u); do
			sed -nE "s/^#define $m +\\{\"([a-z0-9-]+)\".*/\\1/p" "$TOP/src/tool/tool.h"
		done
	} | sort -u
}

# page_text PAGE: the page rendered as plain text.
page_text() {
	mandoc -Tascii "$1" 2>/dev/null | sed -e 's/.\x08//g'
}

# page_opts TOOL: the long options that the OPTIONS section of its page lists
# as items (.It Fl \-name), the only place that documents an option.
page_opts() {
	sed -n '/^\.Sh OPTIONS/,/^\.Sh [^O]/p' "$(page "$1")" | grep -E '^\.It ' |
		grep -oE 'Fl \\?-[a-z][a-z0-9\\-]*' | sed -E 's/^Fl \\?-//; s/\\-/-/g' | sort -u
}

# missing_from LIST OPT...: prints each OPT not in the newline-separated LIST.
missing_from() {
	local list=$1 o
	shift
	for o in "$@"; do
		grep -qx -- "$o" <<<"$list" || echo "$o"
	done
	return 0
}

@test "some tool is built, and every tool has a man page" {
	local t n=0 missing=""
	for t in $(tools); do
		n=$((n + 1))
		page "$t" >/dev/null || missing="$missing $t"
	done
	echo "tools: $n; without a page:$missing"
	[ "$n" -gt 0 ]
	[ -n "$(scripts)" ]
	[ -z "$missing" ]
}

@test "every long option in a tool's --help is an item of its man page's OPTIONS" {
	local t bad="" miss
	for t in $(paged); do
		run help_opts "$t"
		[ "$status" -eq 0 ]
		[ -n "$output" ] || bad="$bad $t:(no long options in --help)"
		miss=$(missing_from "$(page_opts "$t")" $output)
		[ -z "$miss" ] || bad="$bad $t:$(echo $miss | tr ' ' ,)"
	done
	echo "undocumented:$bad"
	[ -z "$bad" ]
}

@test "every long option in a tool's option table is in its man page's OPTIONS and its --help" {
	local t bad="" miss
	for t in $(paged); do
		[ -f "$TOP/src/cmd/$t.c" ] || continue
		run table_opts "$t"
		[ -n "$output" ] || bad="$bad $t:(no option table found)"
		miss=$(missing_from "$(page_opts "$t")" $output)
		[ -z "$miss" ] || bad="$bad $t:page:$(echo $miss | tr ' ' ,)"
		miss=$(missing_from "$(help_opts "$t")" $output)
		[ -z "$miss" ] || bad="$bad $t:help:$(echo $miss | tr ' ' ,)"
	done
	echo "missing:$bad"
	[ -z "$bad" ]
}

@test "every option a man page lists exists in the tool (its option table, or a script's --help)" {
	local t bad="" have miss
	for t in $(paged); do
		if [ -f "$TOP/src/cmd/$t.c" ]; then have=$(table_opts "$t"); else have=$(help_opts "$t"); fi
		run page_opts "$t"
		[ -n "$output" ] || bad="$bad $t:(no options listed)"
		miss=$(missing_from "$have" $output)
		[ -z "$miss" ] || bad="$bad $t:$(echo $miss | tr ' ' ,)"
	done
	echo "listed but not in the tool:$bad"
	[ -z "$bad" ]
}

@test "a shell tool accepts every option its page lists" {
	local t o bad=""
	for t in $(scripts); do
		for o in $(page_opts "$t"); do
			run "$TOP/bin/$t" "--$o"
			[[ "$output" != *"unrecognized argument '--$o'"* ]] || bad="$bad $t:$o"
		done
	done
	echo "refused:$bad"
	[ -z "$bad" ]
}

@test "the option tests can fail: a page without one option item is caught" {
	local t=cm-ingest opts
	[ -x "$CM_BIN/$t" ]
	# the page with the --delimiter item removed (it is still in SYNOPSIS)
	mkdir -p "$T/man"
	awk '/^\.It Fl \\-delimiter/ { skip = 1; next } skip && /^\.It / { skip = 0 } !skip' \
		"$TOP/man/$t.1" >"$T/man/$t.1"
	grep -q 'delimiter' "$T/man/$t.1"
	opts=$(TOP=$T page_opts "$t")
	run missing_from "$opts" $(table_opts "$t")
	[ "$output" = "delimiter" ]
}

@test "the tool pages have the standard sections" {
	local t s bad=""
	for t in $(paged); do
		for s in NAME SYNOPSIS DESCRIPTION OPTIONS ENVIRONMENT 'EXIT STATUS' EXAMPLES 'SEE ALSO'; do
			grep -qx "\.Sh $s" "$(page "$t")" || bad="$bad $t:'$s'"
		done
	done
	echo "missing sections:$bad"
	[ -z "$bad" ]
}

@test "cm-rules(7) shows every operator of the rule language" {
	local op text bad=""
	text=$(page_text "$TOP/man/cm-rules.7")
	for op in eq ne lt lte gt gte in not_in contains starts_with exists not_exists matches; do
		grep -qE "\"op\": \"$op\"" <<<"$text" || bad="$bad $op"
	done
	echo "operators without an example:$bad"
	[ -z "$bad" ]
}

@test "mandoc -Tlint reports no warnings or errors in any man page" {
	local pages=("$TOP"/man/*.[1-8])
	[ -f "${pages[0]}" ]
	run mandoc -Tlint -Wwarning "${pages[@]}"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "groff renders every man page without a warning (lintian reports them)" {
	local page out bad=0
	for page in "$TOP"/man/*.[1-8]; do
		# as lintian runs it, at its width
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
		if [ -n "$out" ]; then
			echo "$page: $out"
			bad=1
		fi
	done
	[ "$bad" -eq 0 ]
}

# literal_blocks PAGE SECTION: the .Bd -literal blocks of SECTION in PAGE,
# unescaped, each followed by a line "--".
literal_blocks() {
	awk -v sec="$2" '
		/^\.Sh / { insec = (substr($0, 5) == sec); next }
		insec && /^\.Bd -literal/ { inblk = 1; next }
		inblk && /^\.Ed/ { inblk = 0; print "--"; next }
		inblk { gsub(/\\e/, "\\"); gsub(/\\&/, ""); print }
	' "$1"
}

# campaigns_of PAGE SECTION: every block of SECTION that starts with "{" as
# one compact campaign per line; conditions are wrapped into a campaign.
campaigns_of() {
	local blk="" line n=0
	while IFS= read -r line; do
		if [ "$line" != "--" ]; then
			blk+="$line"$'\n'
			continue
		fi
		if [ "${blk:0:1}" = "{" ]; then
			printf '%s' "$blk" | jq -c --argjson base $((n * 100)) '
				if has("id") then . else
				{id: ($base + input_line_number + 1), name: "page", status: "active",
				 rule: {where: .}} end' || echo "unparsable block: $blk" >&2
		fi
		n=$((n + 1))
		blk=""
	done < <(literal_blocks "$1" "$2")
}

@test "every campaign and condition shown in cm-rules(7) validates" {
	[ -x "$CM_BIN/cm-match" ]
	campaigns_of "$TOP/man/cm-rules.7" OPERATORS >"$T/ops.jsonl"
	campaigns_of "$TOP/man/cm-rules.7" EXAMPLES >"$T/ex.jsonl"
	campaigns_of "$TOP/man/cm-rules.7" DESCRIPTION >"$T/desc.jsonl"
	echo "conditions: $(wc -l <"$T/ops.jsonl"), campaigns: $(wc -l <"$T/ex.jsonl")"
	[ "$(wc -l <"$T/ops.jsonl")" -ge 15 ]
	[ "$(wc -l <"$T/ex.jsonl")" -ge 3 ]
	[ "$(wc -l <"$T/desc.jsonl")" -ge 1 ]
	# ids must be unique across one file: renumber the conditions
	jq -c '.id = input_line_number' "$T/ops.jsonl" >"$T/ops2.jsonl"
	run cm-match -c "$T/ops2.jsonl" --check
	echo "$output"
	[ "$status" -eq 0 ]
	run cm-match -c "$T/ex.jsonl" --check
	echo "$output"
	[ "$status" -eq 0 ]
	run cm-match -c "$T/desc.jsonl" --check
	echo "$output"
	[ "$status" -eq 0 ]
	# the predicates of JQ PREDICATES, one "jq": "..." member a line
	literal_blocks "$TOP/man/cm-rules.7" 'JQ PREDICATES' | grep '^"jq": ' |
		sed 's/^/{/; s/$/}/' |
		jq -c '{id: input_line_number, name: "jq", status: "active", rule: .}' >"$T/jq.jsonl"
	[ "$(wc -l <"$T/jq.jsonl")" -ge 3 ]
	run cm-match -c "$T/jq.jsonl" --check
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "the validation messages shown in cm-rules(7) are the ones cm-match prints" {
	[ -x "$CM_BIN/cm-match" ]
	cat >"$T/campaigns.json" <<'JSON'
[
 {"id":7,"name":"x","status":"active","rule":{"event_type":"purchase","where":{"all":[{"field":"properties.amount","op":"gte","value":100},{"field":"properties.country","op":"equals","value":"DE"}]}}},
 {"id":8,"name":"y","status":"running","rule":{"event_type":[],"where":{"field":"properties.sku","op":"matches","value":"(unclosed"},"jq":".a |"}},
 {"id":9,"name":"z","status":"active","rule":{"where":{"field":"a","op":"eq","value":null}}},
 {"id":"x","name":"w","status":"paused","rule":{}},
 {"id":10,"name":"v","status":"active","rule":{}},
 {"id":11,"name":"u","status":"active","rule":{}},
 {"id":12,"name":"t","status":"active","rule":{"where":{"field":"a","op":"exists","value":1}}}
]
JSON
	cd "$T"
	run cm-match -c campaigns.json --check
	[ "$status" -eq 2 ]
	# the page's example block, its continuation lines joined
	literal_blocks "$TOP/man/cm-rules.7" VALIDATION |
		awk '/^--$/ { next } /^cm-match:/ { if (m != "") print m; m = $0; next }
			/^    / { sub(/^    /, " "); m = m $0; next } END { if (m != "") print m }' >"$T/want"
	[ "$(wc -l <"$T/want")" -ge 5 ]
	local line bad=0
	while IFS= read -r line; do
		grep -qxF -- "$line" <<<"$output" || { echo "not printed: $line"; bad=1; }
	done <"$T/want"
	[ "$bad" -eq 0 ]
}

@test "the Debian changelog's version is the one the tools print" {
	local t want got
	want=$(sed -n '1s/^campaign-manager (\([^)]*\)).*/\1/p' "$TOP/packaging/debian/changelog")
	[ -n "$want" ]
	for t in $(tools); do
		got=$("$(bin "$t")" --version)
		echo "$t: '$got', changelog: '$want'"
		[ "$got" = "$t $want" ]
	done
	[ -n "$(tools)" ]
}
