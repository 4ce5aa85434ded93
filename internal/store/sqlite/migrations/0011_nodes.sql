-- Scale-out (#17): attested nodes, their single-use join tokens and the
-- change feed that carries state to them. See store.Nodes,
-- store.JoinTokens and store.Changes.
CREATE TABLE nodes (
	name        TEXT PRIMARY KEY,
	id          TEXT NOT NULL UNIQUE, -- attestation id, the subject serialNumber of node SVIDs
	attestor    TEXT NOT NULL,
	selectors   TEXT NOT NULL,        -- JSON array of store.Selector
	attested_at INTEGER NOT NULL,     -- unix nanoseconds
	last_seen   INTEGER NOT NULL,
	acked_seq   INTEGER NOT NULL DEFAULT 0,
	evicted_at  INTEGER NOT NULL DEFAULT 0
);
-- Only the SHA-256 of a token's secret is stored.
CREATE TABLE join_tokens (
	id         TEXT PRIMARY KEY,
	hash       BLOB NOT NULL UNIQUE,
	node       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER NOT NULL DEFAULT 0,
	used_by    TEXT NOT NULL DEFAULT ''
);
CREATE TABLE changes (
	seq  INTEGER PRIMARY KEY AUTOINCREMENT,
	kind TEXT NOT NULL,
	key  TEXT NOT NULL,
	op   TEXT NOT NULL,
	body BLOB NOT NULL,
	at   INTEGER NOT NULL
);
