"""Checks stored matches against the delivery limits (CONTRACT 1.6).

    /usr/bin/python3 tests/lib/limits.py GOT LIMITS CANDS [MIN_CAPPED]

GOT is a JSON array of the stored matches, each {"c": campaign_id,
"e": event_id, "u": user_id, "t": occurred_at in ms, "o": outcome,
"by": capped_by}; LIMITS maps each campaign id (a string) to
{"per_user": N or null, "cooldown_ms": N or null}, or null for a campaign
without a limit; CANDS is a JSON array of the [campaign_id, event_id] of
every candidate. It checks that every candidate has a row and no row lacks
one, that no (campaign, user) has more than per_user matched-or-holdout
matches or two of them closer than cooldown, that every capped match names
a stored matched-or-holdout match of the same campaign and user that is in
its way (at the cap, or too close), that a campaign without a limit caps
nothing, and that at least MIN_CAPPED (default 1) were capped. Prints the
counts; exits non-zero with the first violation.
"""
import json
import sys


def main(got_file, limits_file, cands_file, min_capped="1"):
    got = json.load(open(got_file))
    limits = json.load(open(limits_file))
    cands = {tuple(c) for c in json.load(open(cands_file))}
    rows = {(m["c"], m["e"]): m for m in got}
    assert set(rows) == cands, ("rows and candidates differ", len(rows), len(cands))
    groups = {}
    for m in got:
        groups.setdefault((m["c"], m["u"]), []).append(m)
    ncapped = 0
    for (c, u), g in groups.items():
        lim = limits[str(c)]
        if lim is None:
            assert all(m["o"] != "capped" and m["by"] is None for m in g), (c, u)
            continue
        pu, cd = lim.get("per_user"), lim.get("cooldown_ms")
        kept = [m for m in g if m["o"] in ("matched", "holdout")]
        if pu is not None:
            assert len(kept) <= pu, ("per_user exceeded", c, u, len(kept))
        if cd is not None:
            ts = sorted(float(m["t"]) for m in kept)
            assert all(b - a >= cd for a, b in zip(ts, ts[1:])), ("cooldown broken", c, u)
        by_e = {m["e"]: m for m in kept}
        for m in g:
            if m["o"] != "capped":
                assert m["by"] is None, m
                continue
            ncapped += 1
            y = by_e.get(m["by"])
            assert y is not None, ("capped by a match that is not stored", m)
            at_cap = pu is not None and len(kept) >= pu
            close = cd is not None and abs(float(y["t"]) - float(m["t"])) < cd
            assert at_cap or close, ("capped without cause", m)
    assert ncapped >= int(min_capped), ("too few capped", ncapped)
    print("rows", len(got), "capped", ncapped)


if __name__ == "__main__":
    main(*sys.argv[1:])
