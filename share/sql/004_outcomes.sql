-- 004_outcomes.sql - delivery controls (CONTRACT 1.6): every match has an
-- outcome (matched, holdout, capped) and, where its campaign has variants,
-- the variant; the limits of a campaign (limit.per_user, limit.cooldown) are
-- decided here, where all workers meet, serialised per (campaign, user).
--
-- Existing matches become 'matched', which is what they were.

ALTER TABLE matches
	ADD COLUMN outcome text NOT NULL DEFAULT 'matched'
		CHECK (outcome IN ('matched', 'holdout', 'capped')),
	ADD COLUMN variant text,
	-- a capped match: the event_id of the stored match it yields to
	ADD COLUMN capped_by text COLLATE "C";

-- The matched-or-holdout matches of limited campaigns, which is all that a
-- decision reads: how many a (campaign, user) has, and how close in time.
-- Unlimited campaigns never write here.
CREATE TABLE match_limits (
	campaign_id bigint NOT NULL,
	user_id     text COLLATE "C" NOT NULL,
	occurred_at timestamptz NOT NULL,
	event_id    text COLLATE "C" NOT NULL,
	PRIMARY KEY (campaign_id, user_id, occurred_at, event_id)
);

-- A candidate of a limited campaign, as cm_decide_limits reads them.
CREATE TYPE cm_candidate AS (
	i bigint, cid bigint, eid text, uid text, etype text, at timestamptz,
	bucket_outcome text, variant text, per_user bigint, cooldown interval
);

-- cm_decide_limits(candidates) stores the candidates of limited campaigns,
-- given as a JSON array in input order of {"campaign_id","event_id",
-- "user_id","event_type","occurred_at","outcome" (matched or holdout: the
-- bucket's verdict),"variant","per_user","cooldown_ms"} (per_user and
-- cooldown_ms null when not set), deciding each in turn:
--   - a (campaign_id, event_id) stored already keeps its outcome (so a
--     redelivered candidate gets the same outcome as before);
--   - per_user matched-or-holdout matches stored already: capped, yielding
--     to the latest of them;
--   - one stored closer in time than cooldown_ms (either side): capped,
--     yielding to the closest;
--   - else it gets the bucket's outcome and counts from now on.
-- Returns each candidate's outcome (and the event it yields to). Call it in
-- the transaction that stores the batch, after cm_merge_profiles (advisory
-- locks are always taken profiles first, then limits, each in ascending key
-- order, so that transactions never deadlock on them).
--
-- The common case, a (campaign, user) with one candidate in the call, is
-- decided for all such pairs at once; pairs with several are decided one
-- candidate after the other, in input order.
CREATE FUNCTION cm_decide_limits(candidates jsonb)
RETURNS TABLE (campaign_id bigint, event_id text, outcome text, capped_by text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	cands cm_candidate[];
	singles bigint[];
	c cm_candidate;
	n bigint;
	latest text;
	near text;
	decided text;
	yields text;
BEGIN
	cands := ARRAY(
		SELECT ROW(a.i, (e->>'campaign_id')::bigint, e->>'event_id', e->>'user_id',
		           e->>'event_type', (e->>'occurred_at')::timestamptz, e->>'outcome',
		           e->>'variant', (e->>'per_user')::bigint,
		           make_interval(secs => (e->>'cooldown_ms')::bigint / 1000.0))::cm_candidate
		FROM jsonb_array_elements(candidates) WITH ORDINALITY AS a(e, i));
	PERFORM cm_lock_keys(ARRAY(SELECT DISTINCT 'l:' || x.cid || ':' || x.uid FROM unnest(cands) AS x));
	-- the candidates alone in their (campaign, user) in this call, not stored yet
	singles := ARRAY(
		SELECT x.i FROM (SELECT y.*, count(*) OVER (PARTITION BY y.cid, y.uid) AS k
		                 FROM unnest(cands) AS y) AS x
		WHERE x.k = 1
		  AND NOT EXISTS (SELECT 1 FROM matches AS m
		                  WHERE m.campaign_id = x.cid AND m.event_id = x.eid COLLATE "C"));

	-- those all at once
	RETURN QUERY
	WITH d AS (
		SELECT s.*,
		       CASE WHEN s.per_user IS NOT NULL AND st.n >= s.per_user THEN 'capped'
		            WHEN nr.eid IS NOT NULL THEN 'capped'
		            ELSE s.bucket_outcome END AS decided,
		       CASE WHEN s.per_user IS NOT NULL AND st.n >= s.per_user THEN st.latest
		            ELSE nr.eid END AS yields
		FROM unnest(cands) AS s
		LEFT JOIN LATERAL (
			SELECT count(*) AS n,
			       (array_agg(l.event_id ORDER BY l.occurred_at DESC, l.event_id DESC))[1] AS latest
			FROM match_limits AS l WHERE l.campaign_id = s.cid AND l.user_id = s.uid COLLATE "C"
		) AS st ON s.per_user IS NOT NULL
		LEFT JOIN LATERAL (
			SELECT l.event_id AS eid FROM match_limits AS l
			WHERE l.campaign_id = s.cid AND l.user_id = s.uid COLLATE "C"
			  AND l.occurred_at > s.at - s.cooldown AND l.occurred_at < s.at + s.cooldown
			ORDER BY abs(extract(epoch FROM l.occurred_at - s.at)), l.event_id
			LIMIT 1
		) AS nr ON s.cooldown IS NOT NULL
		WHERE s.i = ANY (singles)
	), ins AS (
		INSERT INTO matches (campaign_id, event_id, user_id, event_type, occurred_at,
		                     outcome, variant, capped_by)
		SELECT cid, eid, uid, etype, at, decided, variant, yields FROM d
	), lim AS (
		INSERT INTO match_limits SELECT cid, uid, at, eid FROM d WHERE decided <> 'capped'
	)
	SELECT cid, eid, decided, yields FROM d;

	-- the others (stored already, or sharing their pair), one by one in input order
	FOR c IN SELECT x.* FROM unnest(cands) AS x WHERE x.i <> ALL (singles) ORDER BY x.i LOOP
		SELECT m.outcome, m.capped_by INTO decided, yields FROM matches AS m
		WHERE m.campaign_id = c.cid AND m.event_id = c.eid COLLATE "C";
		IF FOUND THEN
			campaign_id := c.cid; event_id := c.eid; outcome := decided; capped_by := yields;
			RETURN NEXT;
			CONTINUE;
		END IF;
		decided := c.bucket_outcome;
		yields := NULL;
		IF c.per_user IS NOT NULL THEN
			SELECT count(*), (array_agg(l.event_id ORDER BY l.occurred_at DESC, l.event_id DESC))[1]
			INTO n, latest FROM match_limits AS l
			WHERE l.campaign_id = c.cid AND l.user_id = c.uid COLLATE "C";
			IF n >= c.per_user THEN
				decided := 'capped';
				yields := latest;
			END IF;
		END IF;
		IF decided <> 'capped' AND c.cooldown IS NOT NULL THEN
			SELECT l.event_id INTO near FROM match_limits AS l
			WHERE l.campaign_id = c.cid AND l.user_id = c.uid COLLATE "C"
			  AND l.occurred_at > c.at - c.cooldown AND l.occurred_at < c.at + c.cooldown
			ORDER BY abs(extract(epoch FROM l.occurred_at - c.at)), l.event_id
			LIMIT 1;
			IF FOUND THEN
				decided := 'capped';
				yields := near;
			END IF;
		END IF;
		INSERT INTO matches (campaign_id, event_id, user_id, event_type, occurred_at,
		                     outcome, variant, capped_by)
		VALUES (c.cid, c.eid, c.uid, c.etype, c.at, decided, c.variant, yields);
		IF decided <> 'capped' THEN
			INSERT INTO match_limits VALUES (c.cid, c.uid, c.at, c.eid);
		END IF;
		campaign_id := c.cid; event_id := c.eid; outcome := decided; capped_by := yields;
		RETURN NEXT;
	END LOOP;
END
$$;
