#!/usr/bin/env python3
"""promcheck.py [FILE] - checks a Prometheus text exposition (0.0.4) for what
`promtool check metrics` lets through:

- one HELP and one TYPE per family, before its samples, and a family's
  samples together (not interleaved with another family's);
- every sample belongs to a declared family (histograms: NAME_bucket,
  NAME_sum, NAME_count only);
- no two samples with the same name and label set;
- each histogram series has an le="+Inf" bucket equal to its _count, its
  buckets in increasing le order and cumulative (never decreasing), and a
  _sum;
- label values parse with the format's escapes (\\\\, \\", \\n only).

Prints one line per problem ("promcheck: LINE: message") and exits 1 if
there was any, 0 otherwise. Standard library only.
"""
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE = re.compile(r"^(" + NAME + r")(\{(.*)\})? (\S+)( -?\d+)?$")


def parse_labels(text, where, problems):
    """Parses 'a="x",b="y"' into a list of pairs, reporting bad escapes."""
    pairs = []
    i = 0
    while i < len(text):
        m = re.match(LABEL + "=\"", text[i:])
        if not m:
            problems.append((where, "bad label syntax at %r" % text[i:]))
            return pairs
        name = m.group(0)[:-2]
        i += len(m.group(0))
        value = []
        while True:
            if i >= len(text):
                problems.append((where, "unterminated label value"))
                return pairs
            c = text[i]
            if c == "\\":
                nxt = text[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    problems.append((where, "bad escape \\%s" % nxt))
                value.append({"n": "\n"}.get(nxt, nxt))
                i += 2
                continue
            if c == '"':
                i += 1
                break
            if c == "\n":
                problems.append((where, "raw newline in a label value"))
            value.append(c)
            i += 1
        pairs.append((name, "".join(value)))
        if i < len(text):
            if text[i] != ",":
                problems.append((where, "expected ',' between labels"))
                return pairs
            i += 1
    return pairs


def parse_value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    return float(s)


def check(lines):
    problems = []
    help_seen, type_of = {}, {}
    finished = set()  # families whose samples are over
    current = None
    series = set()
    hist = {}  # (family, labels without le) -> dict

    for no, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                fam = parts[2]
                table = help_seen if parts[1] == "HELP" else type_of
                if fam in table:
                    problems.append((no, "second %s for %s" % (parts[1], fam)))
                if parts[1] == "TYPE":
                    t = parts[3] if len(parts) > 3 else ""
                    if t not in ("counter", "gauge", "histogram", "summary", "untyped"):
                        problems.append((no, "unknown type %r" % t))
                    table[fam] = t
                else:
                    table[fam] = True
                if fam != current:
                    if current is not None:
                        finished.add(current)
                    if fam in finished:
                        problems.append((no, "family %s continued after another" % fam))
                    current = fam
            continue
        m = SAMPLE.match(line)
        if not m:
            problems.append((no, "not a sample line: %r" % line))
            continue
        name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
        labels = parse_labels(labels_text, no, problems)
        try:
            v = parse_value(value)
        except ValueError:
            problems.append((no, "bad value %r" % value))
            continue
        fam, suffix = name, ""
        for suf in ("_bucket", "_sum", "_count"):
            base = name[: -len(suf)]
            if name.endswith(suf) and type_of.get(base) == "histogram":
                fam, suffix = base, suf
        if fam not in type_of:
            problems.append((no, "sample %s of no declared family" % name))
            continue
        if fam not in help_seen:
            problems.append((no, "family %s has no HELP" % fam))
        if fam != current:
            problems.append((no, "sample of %s outside its family's block" % fam))
        if type_of[fam] == "histogram" and not suffix:
            problems.append((no, "histogram %s: bare sample %s" % (fam, name)))
        key = (name, tuple(sorted(labels)))
        if key in series:
            problems.append((no, "duplicate series %s{%s}" % (name, labels_text)))
        series.add(key)
        if type_of[fam] == "counter" and (v < 0 or math.isnan(v)):
            problems.append((no, "counter %s is %s" % (name, value)))
        if type_of[fam] == "histogram":
            rest = tuple(sorted((k, x) for k, x in labels if k != "le"))
            h = hist.setdefault((fam, rest), {"buckets": [], "line": no})
            if suffix == "_bucket":
                le = [x for k, x in labels if k == "le"]
                if len(le) != 1:
                    problems.append((no, "bucket without one le label"))
                    continue
                try:
                    h["buckets"].append((parse_value(le[0]), v, no))
                except ValueError:
                    problems.append((no, "bad le %r" % le[0]))
            elif suffix == "_sum":
                h["sum"] = v
            else:
                h["count"] = (v, no)

    for (fam, rest), h in hist.items():
        where = h["line"]
        b = h["buckets"]
        if not b:
            problems.append((where, "histogram %s%s has no buckets" % (fam, dict(rest))))
            continue
        les = [x[0] for x in b]
        if les != sorted(les) or len(set(les)) != len(les):
            problems.append((where, "histogram %s%s: le not increasing" % (fam, dict(rest))))
        for (_, prev, _), (le, cur, no) in zip(b, b[1:]):
            if cur < prev:
                problems.append((no, "histogram %s%s: bucket le=%s below the one before"
                                 % (fam, dict(rest), le)))
        if b[-1][0] != math.inf:
            problems.append((where, "histogram %s%s: no +Inf bucket" % (fam, dict(rest))))
        if "count" not in h:
            problems.append((where, "histogram %s%s: no _count" % (fam, dict(rest))))
        elif b[-1][0] == math.inf and b[-1][1] != h["count"][0]:
            problems.append((h["count"][1], "histogram %s%s: +Inf bucket %s != _count %s"
                             % (fam, dict(rest), b[-1][1], h["count"][0])))
        if "sum" not in h:
            problems.append((where, "histogram %s%s: no _sum" % (fam, dict(rest))))
    return problems


def main():
    f = open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin
    problems = check(f.readlines())
    for no, msg in problems:
        print("promcheck: %s: %s" % (no, msg))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
