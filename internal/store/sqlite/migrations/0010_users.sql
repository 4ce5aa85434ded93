-- Human accounts of the console and their sessions (internal/account,
-- internal/web). password_hash is a PHC-encoded argon2id hash (empty for
-- accounts that log in through OIDC); sessions keep only the SHA-256 of
-- the cookie value.
CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	role          TEXT NOT NULL,
	source        TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	created_at    INTEGER NOT NULL, -- unix nanoseconds
	updated_at    INTEGER NOT NULL,
	last_login    INTEGER NOT NULL
);
CREATE TABLE sessions (
	hash       BLOB PRIMARY KEY,
	user_name  TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	csrf       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);
CREATE INDEX sessions_expiry ON sessions (expires_at);
