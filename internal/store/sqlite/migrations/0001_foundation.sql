-- Foundation: identities, signing keys, instances, admin tokens, resources.
CREATE TABLE identities (
	name       TEXT PRIMARY KEY,
	spiffe_id  TEXT NOT NULL,
	selectors  TEXT NOT NULL, -- JSON array of {type,value}
	x509_ttl   INTEGER NOT NULL DEFAULT 0, -- nanoseconds
	jwt_ttl    INTEGER NOT NULL DEFAULT 0,
	labels     TEXT NOT NULL DEFAULT '{}',
	revision   INTEGER NOT NULL,
	created_at INTEGER NOT NULL, -- unix nanoseconds
	updated_at INTEGER NOT NULL
);
CREATE INDEX identities_spiffe_id ON identities(spiffe_id);

CREATE TABLE keys (
	id         TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,
	state      TEXT NOT NULL,
	sealed     BLOB NOT NULL,
	public     BLOB NOT NULL,
	cert       BLOB,
	not_before INTEGER NOT NULL,
	not_after  INTEGER NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX keys_kind ON keys(kind, created_at);

CREATE TABLE instances (
	id          TEXT PRIMARY KEY,
	boot_id     TEXT NOT NULL,
	pid         INTEGER NOT NULL,
	start_ticks INTEGER NOT NULL,
	uid         INTEGER NOT NULL,
	exe         TEXT NOT NULL,
	first_seen  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL,
	UNIQUE (boot_id, pid, start_ticks)
);

CREATE TABLE admin_tokens (
	id         TEXT PRIMARY KEY,
	hash       BLOB NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE resources (
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	version    INTEGER NOT NULL,
	spec       BLOB NOT NULL,
	actor      TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	deleted    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (kind, name, version)
);
