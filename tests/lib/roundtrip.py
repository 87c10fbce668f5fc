#!/usr/bin/python3
"""Helper of tests/roundtrip.bats (Debian's /usr/bin/python3, standard library only).

  roundtrip.py gen
      writes the awkward events that are too big for a fixture file: every
      field at its maximum length in multi-byte UTF-8, nesting 64 deep, numbers
      at the edges of what PostgreSQL's numeric holds, and one line of exactly
      1 MiB (1048576 bytes without its newline, the default --max-line).
  roundtrip.py compare EVENTS STORED MATCHES CAMPAIGN
      EVENTS: canonical events as cm-ingest wrote them; STORED: one JSON object
      per row of the events table (event_id, event_type, user_id, occurred_at
      as YYYY-MM-DDTHH:MM:SS.mmm in UTC, properties), each line the hex of its
      UTF-8; MATCHES: the same for the matches table (campaign_id, event_id,
      user_id, event_type, occurred_at).
      Checks that every event came back equal, exactly: strings and keys as
      decoded text, numbers by value (decimal, never through a double),
      objects as maps (duplicate keys: the last wins, as in jsonb), "_" keys
      not stored; and that campaign CAMPAIGN matched each event once, with
      the event's own fields. Exit status 1 and a message naming the event
      and the path of the first difference.
"""
import json
import sys
from decimal import Decimal

LINE = 1 << 20


def canonical(event_id, event_type, user_id, occurred_at, props_text):
    """The compact canonical line cm-ingest writes for these parts."""
    return (
        '{"event_id":%s,"event_type":"%s","user_id":%s,"occurred_at":"%s","properties":%s}'
        % (
            json.dumps(event_id, ensure_ascii=False),
            event_type,
            json.dumps(user_id, ensure_ascii=False),
            occurred_at,
            props_text,
        )
    )


def gen():
    out = []
    t = "2026-11-27T10:15:00Z"
    # every field at its maximum length, in bytes of UTF-8
    out.append(canonical("\U0001F600" * 32, "A" * 64, "é" * 64, t, '{"max":"fields"}'))
    out.append(canonical("€" * 42 + "xy", "a.B:c-d_9" * 7 + "z", "ü" * 63 + "u", t, "{}"))
    # 128 bytes once decoded, 768 as written (\u00e9 twice per character)
    esc = "\\u00e9" * 64
    out.append(
        '{"event_id":"%s","event_type":"esc","user_id":"%s","occurred_at":"%s","properties":{}}'
        % (esc, esc, t)
    )
    # nesting 64 deep: the event is level 1, properties level 2
    deep = "1"
    for i in range(62):
        deep = '{"o":%s}' % deep if i % 2 else "[%s]" % deep
    out.append(canonical("rt-deep-64", "deep", "u-1", t, '{"d":%s}' % deep))
    # numbers at the edges of numeric, and long digit strings
    nums = [
        "1e131071",
        "-9.999999e131071",
        "1e-16383",
        "-1e-16383",
        "0e-16383",
        "0.0e131072",
        "0." + "0" * 16382 + "1",
        "1" + "0" * 131071,
        "-" + "7" * 5000 + "." + "3" * 5000,
        "12345678901234567890e-16363",
    ]
    props = "{%s}" % ",".join('"n%d":%s' % (i, n) for i, n in enumerate(nums))
    out.append(canonical("rt-numeric-edges", "num", "u-1", t, props))
    # one line of exactly 1 MiB, its pad mixing escapes and multi-byte text
    head = canonical("rt-1mib", "big", "u-big", t, '{"pad":"')[: -len("}")]
    unit = "abc \\\"\\\\\\n é€\U0001F600 \\u00e9\\ud83d\\ude00 "
    tail = '"}}'
    room = LINE - len(head.encode()) - len(tail)
    pad = unit * (room // len(unit.encode()))
    pad += "x" * (room - len(pad.encode()))
    line = head + pad + tail
    assert len(line.encode()) == LINE, len(line.encode())
    out.append(line)
    for line in out:
        print(line)


def load(text):
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def same(a, b, path):
    """The path of the first difference between a and b, or None."""
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        if not (isinstance(a, Decimal) and isinstance(b, Decimal)) or a != b:
            return path
        return None
    if type(a) is not type(b):
        return path
    if isinstance(a, dict):
        if set(a) != set(b):
            return "%s (keys %s)" % (path, sorted(set(a) ^ set(b)))
        for k in a:
            d = same(a[k], b[k], "%s.%s" % (path, k))
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return "%s (length %d, stored %d)" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None
    return None if a == b else path


def dig(v, path):
    """The value at path (as same() writes it) below v, for a message."""
    for part in path.split(" (")[0].replace("[", ".[").split(".")[1:]:
        try:
            v = v[int(part[1:-1])] if part.startswith("[") else v[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return v
    return v


def utc_ms(t):
    """A canonical time (...:SSZ or ...:SS.mmmZ) as PostgreSQL's to_char writes it."""
    assert t.endswith("Z"), t
    t = t[:-1]
    return t if "." in t else t + ".000"


def compare(events_path, stored_path, matches_path, campaign):
    want = {}
    with open(events_path, encoding="utf-8") as f:
        for line in f:
            e = load(line)
            e = {k: v for k, v in e.items() if not k.startswith("_")}
            e["occurred_at"] = utc_ms(e["occurred_at"])
            want[e["event_id"]] = e
    got = {}
    with open(stored_path, encoding="ascii") as f:
        for line in f:
            e = load(bytes.fromhex(line).decode("utf-8"))
            got[e["event_id"]] = e
    bad = 0
    for k in sorted(set(want) | set(got)):
        if k not in got or k not in want:
            print("event %r: %s" % (k[:60], "not stored" if k in want else "stored, not sent"))
            bad += 1
            continue
        d = same(want[k], got[k], "")
        if d:
            print("event %r differs at %s" % (k[:60], d.lstrip(".") or "the top"))
            print("  sent:   %.200r\n  stored: %.200r" % (dig(want[k], d), dig(got[k], d)))
            bad += 1
    seen = set()
    with open(matches_path, encoding="ascii") as f:
        for line in f:
            line = bytes.fromhex(line).decode("utf-8")
            m = load(line)
            k = m["event_id"]
            if m["campaign_id"] != Decimal(campaign) or k not in want or k in seen:
                print("unexpected match %r" % line[:100])
                bad += 1
                continue
            seen.add(k)
            e = want[k]
            for field in ("user_id", "event_type", "occurred_at"):
                if m[field] != e[field]:
                    print("match of %r: %s differs" % (k[:60], field))
                    bad += 1
    for k in sorted(set(want) - seen):
        print("event %r: no match stored" % k[:60])
        bad += 1
    print("%d events, %d stored, %d matches, %d differences" % (len(want), len(got), len(seen), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["gen"]:
        gen()
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 6:
        sys.exit(compare(*sys.argv[2:]))
    else:
        sys.exit(__doc__)
