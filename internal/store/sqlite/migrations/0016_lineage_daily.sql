-- The lineage graph's daily rollup (#14): one row per UTC day and path,
-- kept by AddLineage beside the hourly rows in the same transaction, so a
-- time window is answered from whole days plus the hours at its two ends
-- instead of summing every hour (store.LineageFilter). day is the unix
-- seconds of the day's start; the other columns are lineage_facts' own.
CREATE TABLE lineage_daily (
	day         INTEGER NOT NULL,
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
	allowed     INTEGER NOT NULL,
	denied      INTEGER NOT NULL,
	held        INTEGER NOT NULL,
	first_seen  INTEGER NOT NULL, -- unix nanoseconds
	last_seen   INTEGER NOT NULL,
	PRIMARY KEY (day, user, identity, instance, task, via, target_kind, target, tool, credential, approved_by)
);
CREATE INDEX lineage_daily_identity ON lineage_daily (identity, day);
CREATE INDEX lineage_daily_task ON lineage_daily (task) WHERE task != '';
CREATE INDEX lineage_daily_credential ON lineage_daily (credential, day) WHERE credential != '';
CREATE INDEX lineage_daily_target ON lineage_daily (target, day);

-- The backfill: the days of the hourly rows folded before this table
-- existed, in this migration's transaction (a crash leaves neither the
-- table nor the record of the migration, and the next start runs it
-- again). The hourly rows are kept as they are.
INSERT INTO lineage_daily (day, user, identity, instance, task, via, target_kind, target, tool, credential, approved_by,
	allowed, denied, held, first_seen, last_seen)
SELECT hour - ((hour % 86400) + 86400) % 86400, user, identity, instance, task, via, target_kind, target, tool, credential, approved_by,
	sum(allowed), sum(denied), sum(held), min(first_seen), max(last_seen)
FROM lineage_facts WHERE hour <> -3600
GROUP BY hour - ((hour % 86400) + 86400) % 86400, user, identity, instance, task, via, target_kind, target, tool, credential, approved_by;
