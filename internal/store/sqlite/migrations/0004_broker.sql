-- Credential broker: sealed upstream credentials. See internal/broker.
CREATE TABLE credentials (
	name       TEXT PRIMARY KEY,
	type       TEXT NOT NULL,
	sealed     BLOB NOT NULL,  -- AES-256-GCM under the KEK, bound to the name
	version    INTEGER NOT NULL,
	actor      TEXT NOT NULL,
	created_at INTEGER NOT NULL, -- unix nanoseconds
	updated_at INTEGER NOT NULL
);
