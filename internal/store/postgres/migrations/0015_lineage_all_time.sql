-- The lineage graph's all-time rollup (#14): one row per path with
-- hour = -3600 (store.LineageAllTime), kept by the graph's builder beside
-- the hourly rows, so that a query over every hour reads one row per path
-- instead of summing one per path and hour. This fills it from the hourly
-- rows folded before it existed.
INSERT INTO lineage_facts (hour, "user", identity, instance, task, via, target_kind, target, tool, credential, approved_by,
	allowed, denied, held, first_seen, last_seen)
SELECT -3600, "user", identity, instance, task, via, target_kind, target, tool, credential, approved_by,
	sum(allowed), sum(denied), sum(held), min(first_seen), max(last_seen)
FROM lineage_facts WHERE hour <> -3600
GROUP BY "user", identity, instance, task, via, target_kind, target, tool, credential, approved_by;
