-- Credential broker: sealed upstream credentials. See internal/broker.
-- Mirrors store/sqlite's 0004.
CREATE TABLE credentials (
	name       TEXT COLLATE "C" PRIMARY KEY,
	type       TEXT NOT NULL,
	sealed     BYTEA NOT NULL,  -- AES-256-GCM under the KEK, bound to the name
	version    BIGINT NOT NULL,
	actor      TEXT NOT NULL,
	created_at BIGINT NOT NULL, -- unix nanoseconds
	updated_at BIGINT NOT NULL
);
