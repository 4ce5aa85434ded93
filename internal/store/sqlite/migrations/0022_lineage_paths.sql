-- The lineage path dictionary (#14): one row per distinct path of the
-- lineage facts, with an integer id that the hourly, daily and all-time
-- rows carry as path_id. A whole-graph query (no path filter) reads and
-- sums (path_id, counts) through the covering indexes below, integers
-- only, and takes the paths' text from the store's cache of this table,
-- whose rows never change once written. Queries filtering on a path
-- column read the columns as before.
CREATE TABLE lineage_paths (
	id          INTEGER PRIMARY KEY,
	user        TEXT NOT NULL,
	identity    TEXT NOT NULL,
	instance    TEXT NOT NULL,
	task        TEXT NOT NULL,
	via         TEXT NOT NULL,
	target_kind TEXT NOT NULL,
	target      TEXT NOT NULL,
	tool        TEXT NOT NULL,
	credential  TEXT NOT NULL,
	approved_by TEXT NOT NULL,
	UNIQUE (user, identity, instance, task, via, target_kind, target, tool, credential, approved_by)
);
INSERT INTO lineage_paths (user, identity, instance, task, via, target_kind, target, tool, credential, approved_by)
SELECT DISTINCT user, identity, instance, task, via, target_kind, target, tool, credential, approved_by FROM lineage_facts
ORDER BY identity, target, tool, instance, task, user, via, credential, approved_by, target_kind;

-- 0 is no path: every row is given its path's id here, and by AddLineage
-- from now on.
ALTER TABLE lineage_facts ADD COLUMN path_id INTEGER NOT NULL DEFAULT 0;
UPDATE lineage_facts SET path_id = (SELECT p.id FROM lineage_paths p WHERE p.user = lineage_facts.user
	AND p.identity = lineage_facts.identity AND p.instance = lineage_facts.instance AND p.task = lineage_facts.task
	AND p.via = lineage_facts.via AND p.target_kind = lineage_facts.target_kind AND p.target = lineage_facts.target
	AND p.tool = lineage_facts.tool AND p.credential = lineage_facts.credential AND p.approved_by = lineage_facts.approved_by);
ALTER TABLE lineage_daily ADD COLUMN path_id INTEGER NOT NULL DEFAULT 0;
UPDATE lineage_daily SET path_id = (SELECT p.id FROM lineage_paths p WHERE p.user = lineage_daily.user
	AND p.identity = lineage_daily.identity AND p.instance = lineage_daily.instance AND p.task = lineage_daily.task
	AND p.via = lineage_daily.via AND p.target_kind = lineage_daily.target_kind AND p.target = lineage_daily.target
	AND p.tool = lineage_daily.tool AND p.credential = lineage_daily.credential AND p.approved_by = lineage_daily.approved_by);

-- Every whole-graph query, the all-time rollup's included (hour = -3600),
-- is a range scan of one of these. (Migration 0021's index stays: the
-- all-time queries that filter on a path column scan it.)
CREATE INDEX lineage_facts_path_sums ON lineage_facts (hour, path_id, allowed, denied, held, first_seen, last_seen);
CREATE INDEX lineage_daily_path_sums ON lineage_daily (day, path_id, allowed, denied, held, first_seen, last_seen);
