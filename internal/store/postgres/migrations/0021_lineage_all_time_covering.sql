-- The lineage graph's all-time rollup (#14, migration 0015) read without
-- heap lookups where the visibility map allows: a partial index over the
-- rollup's rows (hour = -3600, store.LineageAllTime) in the order a
-- whole-graph query reads them, carrying the counts it returns, so that
-- query can be an index-only scan of the paths instead of a scan of the
-- primary key plus one heap fetch per path.
CREATE INDEX lineage_facts_all_time ON lineage_facts ("user", identity, instance, task, via, target_kind, target, tool, credential,
	approved_by) INCLUDE (allowed, denied, held, first_seen, last_seen) WHERE hour = -3600;
