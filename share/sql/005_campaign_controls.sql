-- 005_campaign_controls.sql - a campaign's delivery controls (CONTRACT 1.6)
-- as columns of campaigns: "limit" ({"per_user","cooldown"}), holdout (the
-- share of users kept as a control group) and variants ([{"name","weight"}]).
-- NULL is "not set". cm-match reads them with the rule (campdb.c) and
-- validates them as it validates a campaign file (cm_campaign_validate), so a
-- row that passes these checks but not the validator is reported and skipped;
-- the checks here keep out what no client could mean.
--
-- Existing campaigns get NULL in all three: no limit, no holdout, no variants,
-- which is what they had.

ALTER TABLE campaigns
	ADD COLUMN "limit" jsonb
		CONSTRAINT campaigns_limit_check CHECK (jsonb_typeof("limit") = 'object'),
	ADD COLUMN holdout double precision
		CONSTRAINT campaigns_holdout_check CHECK (holdout >= 0 AND holdout < 1),
	ADD COLUMN variants jsonb
		CONSTRAINT campaigns_variants_check
		CHECK (jsonb_typeof(variants) = 'array' AND jsonb_array_length(variants) > 0);
