-- The searchable fields of audit events move out of the store into the
-- audit search index, a second SQLite file beside it that is written in
-- parallel with the store (internal/store/sqlite/audit_index.go); only
-- the event id stays here, for lookups by id and for its uniqueness. The
-- generated columns go: SQLite computed them from the JSON on every
-- insert, the largest single cost of an append. Searches that filter on
-- unindexed fields read the JSON in the query instead.
CREATE TABLE audit_events_v2 (
	idx    INTEGER PRIMARY KEY, -- position in the Merkle tree, from 0
	data   TEXT NOT NULL,       -- canonical JSON of the event (the leaf data)
	hashes BLOB NOT NULL,       -- tlog stored hashes, 32 bytes each, leaf hash first
	id     TEXT NOT NULL        -- data ->> '$.id'; `writ audit verify` checks it
);
INSERT INTO audit_events_v2 (idx, data, hashes, id)
	SELECT idx, data, hashes, COALESCE(id, '') FROM audit_events ORDER BY idx;
DROP TABLE audit_events;
ALTER TABLE audit_events_v2 RENAME TO audit_events;
CREATE UNIQUE INDEX audit_events_id ON audit_events(id);
