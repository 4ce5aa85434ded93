-- The lineage graph's daily rollup (#14). Mirrors store/sqlite's 0016: one
-- row per UTC day and path, kept by AddLineage beside the hourly rows in
-- the same transaction, so a time window is answered from whole days plus
-- the hours at its two ends. day is the unix seconds of the day's start.
CREATE TABLE lineage_daily (
	day         BIGINT NOT NULL,
	"user"      TEXT COLLATE "C" NOT NULL,
	identity    TEXT COLLATE "C" NOT NULL,
	instance    TEXT COLLATE "C" NOT NULL,
	task        TEXT COLLATE "C" NOT NULL,
	via         TEXT COLLATE "C" NOT NULL,
	target_kind TEXT COLLATE "C" NOT NULL,
	target      TEXT COLLATE "C" NOT NULL,
	tool        TEXT COLLATE "C" NOT NULL,
	credential  TEXT COLLATE "C" NOT NULL,
	approved_by TEXT COLLATE "C" NOT NULL,
	allowed     BIGINT NOT NULL,
	denied      BIGINT NOT NULL,
	held        BIGINT NOT NULL,
	first_seen  BIGINT NOT NULL, -- unix nanoseconds
	last_seen   BIGINT NOT NULL,
	PRIMARY KEY (day, "user", identity, instance, task, via, target_kind, target, tool, credential, approved_by)
);
CREATE INDEX lineage_daily_identity ON lineage_daily (identity, day);
CREATE INDEX lineage_daily_task ON lineage_daily (task) WHERE task != '';
CREATE INDEX lineage_daily_credential ON lineage_daily (credential, day) WHERE credential != '';
CREATE INDEX lineage_daily_target ON lineage_daily (target, day);

-- The backfill from the hourly rows folded before this table existed, in
-- the migration's transaction; the hourly rows are kept.
INSERT INTO lineage_daily (day, "user", identity, instance, task, via, target_kind, target, tool, credential, approved_by,
	allowed, denied, held, first_seen, last_seen)
SELECT hour - ((hour % 86400) + 86400) % 86400, "user", identity, instance, task, via, target_kind, target, tool, credential, approved_by,
	sum(allowed), sum(denied), sum(held), min(first_seen), max(last_seen)
FROM lineage_facts WHERE hour <> -3600
GROUP BY hour - ((hour % 86400) + 86400) % 86400, "user", identity, instance, task, via, target_kind, target, tool, credential, approved_by;
