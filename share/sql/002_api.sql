-- 002_api.sql - what cm-httpd adds to the core schema: write keys, a version
-- number on campaigns and the campaign audit trail.
--
-- The version and the audit are kept by triggers, so that every change is
-- counted and recorded whichever client makes it (cm-httpd, psql, a script).
-- The API names the actor of its changes with
--   SELECT set_config('cm.actor', 'alice', true)
-- in the changing transaction; other clients are recorded as their database
-- user.

-- Write keys (cm-admin key add): only a BLAKE2b-256 hash of the key is kept.
-- Keys are 32 random bytes, so a fast hash is enough and lookups are by hash.
CREATE TABLE api_keys (
	name         text PRIMARY KEY CHECK (name <> ''),
	key_hash     bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
	created_at   timestamptz NOT NULL DEFAULT now(),
	last_used_at timestamptz
);

ALTER TABLE campaigns ADD COLUMN version integer NOT NULL DEFAULT 1;

-- A time as the API writes it: UTC with Z, milliseconds only when there are
-- any (as cm-ingest writes occurred_at).
CREATE FUNCTION cm_utc(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT to_char(t AT TIME ZONE 'UTC',
	               CASE WHEN date_trunc('second', t) = t
	                    THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
	                    ELSE 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"' END)
$$;

-- A campaign row as a JSON document with the API's time format; whatever
-- columns later migrations add come along.
CREATE FUNCTION cm_campaign_doc(c campaigns) RETURNS jsonb LANGUAGE sql STABLE AS $$
	SELECT to_jsonb(c) || jsonb_build_object(
		'starts_at', cm_utc(c.starts_at), 'ends_at', cm_utc(c.ends_at),
		'created_at', cm_utc(c.created_at), 'updated_at', cm_utc(c.updated_at))
$$;

-- True when two versions of a campaign differ in more than the columns the
-- triggers maintain.
CREATE FUNCTION cm_campaign_changed(a campaigns, b campaigns) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT (to_jsonb(a) - 'updated_at' - 'version') IS DISTINCT FROM
	       (to_jsonb(b) - 'updated_at' - 'version')
$$;

-- Bumps version on every real change; an update that changes nothing keeps
-- the version and the updated_at that campaigns_touch (which runs first:
-- triggers of one kind run in name order) has just set.
CREATE FUNCTION campaigns_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF cm_campaign_changed(NEW, OLD) THEN
		NEW.version := OLD.version + 1;
	ELSE
		NEW.version := OLD.version;
		NEW.updated_at := OLD.updated_at;
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER campaigns_version BEFORE UPDATE ON campaigns
	FOR EACH ROW EXECUTE FUNCTION campaigns_version();

-- Who changed which campaign when, with the campaign before and after (NULL
-- before a create and after a delete). No foreign key: the trail outlives a
-- deleted campaign.
CREATE TABLE campaign_audit (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	campaign_id bigint NOT NULL,
	actor       text NOT NULL,
	action      text NOT NULL
	            CHECK (action IN ('create', 'update', 'pause', 'resume', 'archive', 'delete')),
	at          timestamptz NOT NULL DEFAULT now(),
	before      jsonb,
	after       jsonb
);

CREATE INDEX campaign_audit_campaign_idx ON campaign_audit (campaign_id, id);

-- Writes the audit row in the changing transaction. The action says what the
-- change did to the status when it changed it: pause, resume (back to
-- active) or archive; any other change is an update.
CREATE FUNCTION campaigns_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	who text := coalesce(nullif(current_setting('cm.actor', true), ''), session_user);
	act text := 'update';
BEGIN
	IF TG_OP = 'INSERT' THEN
		act := 'create';
	ELSIF TG_OP = 'DELETE' THEN
		act := 'delete';
	ELSIF NOT cm_campaign_changed(NEW, OLD) THEN
		RETURN NULL;
	ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
		act := CASE NEW.status WHEN 'paused' THEN 'pause' WHEN 'archived' THEN 'archive'
		       ELSE 'resume' END;
	END IF;
	INSERT INTO campaign_audit (campaign_id, actor, action, before, after)
	VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END, who, act,
	        CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE cm_campaign_doc(OLD) END,
	        CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE cm_campaign_doc(NEW) END);
	RETURN NULL;
END
$$;

CREATE TRIGGER campaigns_audit AFTER INSERT OR UPDATE OR DELETE ON campaigns
	FOR EACH ROW EXECUTE FUNCTION campaigns_audit();

-- GET /campaigns/{id}/matches pages a campaign's matches newest first
-- (matched_at). Deliberately no index for it: the primary key (campaign_id,
-- event_id) finds a campaign's matches, and a page sorts them, which costs
-- time in proportion to the campaign's matches; an index on (campaign_id,
-- matched_at) makes a page cheap whatever the campaign's size, but cost
-- cm-store about a quarter of its throughput when measured (300,000 events,
-- 1.5 matches each: 104,000 events/s with it, 130,000-150,000 without). A
-- deployment that pages large campaigns often adds it in a later migration:
--   CREATE INDEX matches_campaign_time_idx ON matches (campaign_id, matched_at);
