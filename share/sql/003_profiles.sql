-- 003_profiles.sql - user profiles built from identify events (CONTRACT 1.5).
--
-- Each trait keeps the value of the identify event with the latest
-- occurred_at (equal times: the greater event_id, bytewise); a trait set to
-- null is removed. profile_traits holds the winner of every (user, trait),
-- removals included (a removal must still beat an older value that arrives
-- later), so the profile does not depend on arrival order or redelivery.
-- profiles holds what readers use: one row per user, the non-null winners.
--
-- cm-store merges the identify events of a batch with cm_merge_profiles in
-- the same transaction that stores them.

CREATE TABLE profile_traits (
	user_id     text COLLATE "C" NOT NULL,
	trait       text NOT NULL,
	value       jsonb NOT NULL, -- 'null': the trait was removed
	occurred_at timestamptz NOT NULL,
	event_id    text COLLATE "C" NOT NULL,
	PRIMARY KEY (user_id, trait)
);

CREATE TABLE profiles (
	user_id    text COLLATE "C" PRIMARY KEY,
	traits     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(traits) = 'object'),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- cm_lock_keys(names) takes a transaction-scoped advisory lock for each
-- name ('p:USER' for a profile, 'l:CAMPAIGN:USER' for a campaign's limits),
-- all in one statement and in ascending key order, so that two transactions
-- locking overlapping sets never deadlock on each other. A hash collision
-- only serialises a little more.
CREATE FUNCTION cm_lock_keys(names text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	-- the locks are taken as the sorted subquery's rows come (the pattern
	-- the PostgreSQL manual gives for advisory locks over a subquery)
	PERFORM count(pg_advisory_xact_lock(s.k))
	FROM (SELECT DISTINCT hashtextextended(n, 0) AS k FROM unnest(names) AS n ORDER BY 1) AS s;
END
$$;

-- cm_merge_profiles(identify) merges identify events given as a JSON array
-- of {"user_id","occurred_at","event_id","traits":{...}} into
-- profile_traits and profiles, serialised per user; returns the number of
-- users whose profile was recomputed. Idempotent: merging the same events
-- again, in any order or split, gives the same profiles.
CREATE FUNCTION cm_merge_profiles(identify jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
BEGIN
	PERFORM cm_lock_keys(ARRAY(SELECT DISTINCT 'p:' || (e->>'user_id')
	                           FROM jsonb_array_elements(identify) AS e));
	-- the newest value of each (user, trait) in this batch, then against
	-- what is stored: only a later (occurred_at, event_id) replaces it
	INSERT INTO profile_traits AS p (user_id, trait, value, occurred_at, event_id)
	SELECT DISTINCT ON (user_id, trait) user_id, trait, value, occurred_at, event_id
	FROM (
		SELECT e->>'user_id' COLLATE "C" AS user_id, t.key AS trait, t.value,
		       (e->>'occurred_at')::timestamptz AS occurred_at,
		       e->>'event_id' COLLATE "C" AS event_id
		FROM jsonb_array_elements(identify) AS e, jsonb_each(e->'traits') AS t
	) AS s
	ORDER BY user_id, trait, occurred_at DESC, event_id DESC
	ON CONFLICT (user_id, trait) DO UPDATE
		SET value = EXCLUDED.value, occurred_at = EXCLUDED.occurred_at,
		    event_id = EXCLUDED.event_id
		WHERE (EXCLUDED.occurred_at, EXCLUDED.event_id) > (p.occurred_at, p.event_id);
	INSERT INTO profiles AS p (user_id, traits, updated_at)
	SELECT u.user_id,
	       coalesce((SELECT jsonb_object_agg(t.trait, t.value) FROM profile_traits AS t
	                 WHERE t.user_id = u.user_id AND t.value <> 'null'::jsonb), '{}'),
	       now()
	FROM (SELECT DISTINCT e->>'user_id' COLLATE "C" AS user_id
	      FROM jsonb_array_elements(identify) AS e) AS u
	ORDER BY u.user_id
	ON CONFLICT (user_id) DO UPDATE SET traits = EXCLUDED.traits, updated_at = now()
		WHERE p.traits IS DISTINCT FROM EXCLUDED.traits;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
