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
CREATE FUNCTION cm_decide_limits(candidates jsonb)
RETURNS TABLE (campaign_id bigint, event_id text, outcome text, capped_by text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	c record;
	n bigint;
	latest text;
	near text;
	decided text;
	yields text;
BEGIN
	PERFORM cm_lock_keys(ARRAY(SELECT DISTINCT 'l:' || (e->>'campaign_id') || ':' || (e->>'user_id')
	                           FROM jsonb_array_elements(candidates) AS e));
	FOR c IN
		SELECT (e->>'campaign_id')::bigint AS cid, e->>'event_id' COLLATE "C" AS eid,
		       e->>'user_id' COLLATE "C" AS uid, e->>'event_type' AS etype,
		       (e->>'occurred_at')::timestamptz AS at, e->>'outcome' AS bucket_outcome,
		       e->>'variant' AS variant, (e->>'per_user')::bigint AS per_user,
		       make_interval(secs => (e->>'cooldown_ms')::bigint / 1000.0) AS cooldown
		FROM jsonb_array_elements(candidates) WITH ORDINALITY AS a(e, i)
		ORDER BY i
	LOOP
		SELECT m.outcome, m.capped_by INTO decided, yields FROM matches AS m
		WHERE m.campaign_id = c.cid AND m.event_id = c.eid;
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
			WHERE l.campaign_id = c.cid AND l.user_id = c.uid;
			IF n >= c.per_user THEN
				decided := 'capped';
				yields := latest;
			END IF;
		END IF;
		IF decided <> 'capped' AND c.cooldown IS NOT NULL THEN
			SELECT l.event_id INTO near FROM match_limits AS l
			WHERE l.campaign_id = c.cid AND l.user_id = c.uid
			  AND l.occurred_at > c.at - c.cooldown AND l.occurred_at < c.at + c.cooldown
			ORDER BY abs(extract(epoch FROM l.occurred_at - c.at)), l.event_id
			LIMIT 1;
			IF FOUND THEN
				decided := 'capped';
				yields := near;
			END IF;
		END IF;
		INSERT INTO matches AS m (campaign_id, event_id, user_id, event_type, occurred_at,
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
