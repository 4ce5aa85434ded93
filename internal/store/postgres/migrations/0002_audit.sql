-- Audit log (internal/auditlog): events in Merkle-tree order with their
-- stored tlog hashes and searchable keys, signed checkpoints, and the head
-- row whose lock serialises appends from every server sharing the database.
--
-- Mirrors store/sqlite's 0002 and 0005; the keys SQLite keeps in a second
-- file (its audit search index) are columns here, written in the same
-- transaction as the event. `writ audit verify` checks them against data.
CREATE TABLE audit_events (
	idx       BIGINT PRIMARY KEY,            -- position in the Merkle tree, from 0
	data      BYTEA NOT NULL,                -- canonical JSON of the event (the leaf data)
	hashes    BYTEA NOT NULL,                -- tlog stored hashes, 32 bytes each, leaf hash first
	id        TEXT COLLATE "C" NOT NULL,     -- the event's keys (auditlog.Keys)
	type      TEXT COLLATE "C" NOT NULL,
	spiffe_id TEXT COLLATE "C" NOT NULL DEFAULT '',
	instance  TEXT COLLATE "C" NOT NULL DEFAULT '',
	task      TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX audit_events_id ON audit_events(id);
-- Each search index ends with idx, so that a search reads the newest (or
-- oldest) matches of one key in order without sorting.
CREATE INDEX audit_events_type ON audit_events(type, idx);
CREATE INDEX audit_events_spiffe_id ON audit_events(spiffe_id, idx) WHERE spiffe_id <> '';
CREATE INDEX audit_events_instance ON audit_events(instance, idx) WHERE instance <> '';
CREATE INDEX audit_events_task ON audit_events(task, idx) WHERE task <> '';

-- One row: the log's size. Every append locks it (SELECT ... FOR UPDATE),
-- checks that it continues the log, inserts and moves it, in one
-- transaction, so the order and the tree are the same whichever server
-- appends.
CREATE TABLE audit_head (
	one  BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
	size BIGINT NOT NULL
);
INSERT INTO audit_head (one, size) VALUES (true, 0);

CREATE TABLE audit_checkpoints (
	size       BIGINT PRIMARY KEY, -- tree size the checkpoint signs
	note       BYTEA NOT NULL,     -- signed note text
	created_at BIGINT NOT NULL     -- unix nanoseconds
);
