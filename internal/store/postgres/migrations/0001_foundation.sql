-- Foundation: identities, signing keys, instances, admin tokens, resources,
-- and the leases by which several servers elect one owner of a job.
--
-- Mirrors store/sqlite's 0001. Times are unix nanoseconds (BIGINT), as in
-- SQLite; text that is ordered or compared by range uses the "C" collation,
-- so that ORDER BY and range conditions follow byte order exactly as
-- SQLite's BINARY collation does, whatever the database's default.
CREATE TABLE identities (
	name       TEXT COLLATE "C" PRIMARY KEY,
	spiffe_id  TEXT COLLATE "C" NOT NULL,
	selectors  TEXT NOT NULL, -- JSON array of {type,value}
	x509_ttl   BIGINT NOT NULL DEFAULT 0, -- nanoseconds
	jwt_ttl    BIGINT NOT NULL DEFAULT 0,
	labels     TEXT NOT NULL DEFAULT '{}',
	revision   BIGINT NOT NULL,
	created_at BIGINT NOT NULL, -- unix nanoseconds
	updated_at BIGINT NOT NULL
);
CREATE INDEX identities_spiffe_id ON identities(spiffe_id);

CREATE TABLE keys (
	id         TEXT COLLATE "C" PRIMARY KEY,
	kind       TEXT COLLATE "C" NOT NULL,
	state      TEXT NOT NULL,
	sealed     BYTEA NOT NULL,
	public     BYTEA NOT NULL,
	cert       BYTEA,
	not_before BIGINT NOT NULL,
	not_after  BIGINT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX keys_kind ON keys(kind, created_at);

CREATE TABLE instances (
	id          TEXT COLLATE "C" PRIMARY KEY,
	boot_id     TEXT COLLATE "C" NOT NULL,
	pid         BIGINT NOT NULL,
	start_ticks BIGINT NOT NULL,
	uid         BIGINT NOT NULL,
	exe         TEXT NOT NULL,
	first_seen  BIGINT NOT NULL,
	last_seen   BIGINT NOT NULL,
	UNIQUE (boot_id, pid, start_ticks)
);

CREATE TABLE admin_tokens (
	id         TEXT COLLATE "C" PRIMARY KEY,
	hash       BYTEA NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE resources (
	kind       TEXT COLLATE "C" NOT NULL,
	name       TEXT COLLATE "C" NOT NULL,
	version    BIGINT NOT NULL,
	spec       BYTEA NOT NULL,
	actor      TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	deleted    BOOLEAN NOT NULL DEFAULT false,
	PRIMARY KEY (kind, name, version)
);

-- A lease names the one server that runs a job (CA rotation, pruning) until
-- expires_at; see store.Leases. Only PostgreSQL needs it: a SQLite store
-- belongs to one process.
CREATE TABLE leases (
	name       TEXT COLLATE "C" PRIMARY KEY,
	holder     TEXT NOT NULL,
	token      BIGINT NOT NULL, -- grows with every new holder (a fencing token)
	expires_at BIGINT NOT NULL  -- unix nanoseconds
);
