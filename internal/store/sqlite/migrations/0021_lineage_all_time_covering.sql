-- The lineage graph's all-time rollup (#14, migration 0015) read without
-- table lookups: a partial index over the rollup's rows (hour = -3600,
-- store.LineageAllTime) holding every column a whole-graph query reads,
-- in the order it reads them, so that query is one scan of this index
-- instead of a scan of the primary key plus one table lookup per path.
CREATE INDEX lineage_facts_all_time ON lineage_facts (user, identity, instance, task, via, target_kind, target, tool, credential,
	approved_by, allowed, denied, held, first_seen, last_seen) WHERE hour = -3600;
