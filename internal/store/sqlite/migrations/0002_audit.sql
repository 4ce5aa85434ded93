-- Audit log (internal/audit, docs/audit.md): events in Merkle-tree order
-- with their stored tlog hashes, and signed checkpoints.
--
-- data is the event's canonical JSON, the exact bytes hashed into the tree.
-- The searchable columns are generated from it, so they cannot disagree
-- with the hashed event; editing data changes the event's hash.
CREATE TABLE audit_events (
	idx       INTEGER PRIMARY KEY, -- position in the Merkle tree, from 0
	data      TEXT NOT NULL,       -- canonical JSON of the event (the leaf data)
	hashes    BLOB NOT NULL,       -- tlog stored hashes, 32 bytes each, leaf hash first
	id        TEXT GENERATED ALWAYS AS (data ->> '$.id') VIRTUAL,
	time_ms   INTEGER GENERATED ALWAYS AS (CAST(round(unixepoch(data ->> '$.time', 'subsec') * 1000) AS INTEGER)) VIRTUAL,
	type      TEXT GENERATED ALWAYS AS (data ->> '$.type') VIRTUAL,
	spiffe_id TEXT GENERATED ALWAYS AS (data ->> '$.spiffe_id') VIRTUAL,
	instance  TEXT GENERATED ALWAYS AS (data ->> '$.instance') VIRTUAL,
	task      TEXT GENERATED ALWAYS AS (data ->> '$.task') VIRTUAL,
	decision  TEXT GENERATED ALWAYS AS (data ->> '$.decision') VIRTUAL
);
CREATE UNIQUE INDEX audit_events_id ON audit_events(id);
-- The search indexes lead with the event's block of 4096 indexes
-- (idx >> 12). New entries then land in the few pages of the current
-- block instead of all over the index, which keeps a group commit's
-- dirty pages (and so its write volume) small; searches probe the blocks
-- one by one. Time needs no index: event times follow the index order
-- closely enough to binary-search it (see AuditStore.SearchRecords).
CREATE INDEX audit_events_type ON audit_events(idx >> 12, type);
CREATE INDEX audit_events_spiffe_id ON audit_events(idx >> 12, spiffe_id) WHERE spiffe_id IS NOT NULL;
CREATE INDEX audit_events_instance ON audit_events(idx >> 12, instance) WHERE instance IS NOT NULL;
CREATE INDEX audit_events_task ON audit_events(idx >> 12, task) WHERE task IS NOT NULL;

CREATE TABLE audit_checkpoints (
	size       INTEGER PRIMARY KEY, -- tree size the checkpoint signs
	note       BLOB NOT NULL,       -- signed note text
	created_at INTEGER NOT NULL     -- unix nanoseconds
);
