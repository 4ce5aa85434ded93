-- Scale-out (#17): attested nodes, their single-use join tokens and the
-- change feed that carries state to them. See store.Nodes,
-- store.JoinTokens and store.Changes. Mirrors store/sqlite's 0011.
CREATE TABLE nodes (
	name        TEXT COLLATE "C" PRIMARY KEY,
	id          TEXT COLLATE "C" NOT NULL UNIQUE, -- attestation id, the subject serialNumber of node SVIDs
	attestor    TEXT NOT NULL,
	selectors   TEXT NOT NULL,        -- JSON array of store.Selector
	attested_at BIGINT NOT NULL,      -- unix nanoseconds
	last_seen   BIGINT NOT NULL,
	acked_seq   BIGINT NOT NULL DEFAULT 0,
	evicted_at  BIGINT NOT NULL DEFAULT 0
);
-- Only the SHA-256 of a token's secret is stored.
CREATE TABLE join_tokens (
	id         TEXT COLLATE "C" PRIMARY KEY,
	hash       BYTEA NOT NULL UNIQUE,
	node       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT NOT NULL DEFAULT 0,
	used_by    TEXT NOT NULL DEFAULT ''
);
CREATE TABLE changes (
	seq  BIGINT PRIMARY KEY,
	kind TEXT NOT NULL,
	key  TEXT NOT NULL,
	op   TEXT NOT NULL,
	body BYTEA NOT NULL,
	at   BIGINT NOT NULL
);
-- The feed's last sequence number. An append locks this row, so that
-- sequence numbers are given out in commit order across every server
-- (a reader that saw N never later finds a smaller one appear), and it
-- keeps the highest number after the feed is pruned.
CREATE TABLE changes_head (
	one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
	seq BIGINT NOT NULL
);
INSERT INTO changes_head (one, seq) VALUES (true, 0);
