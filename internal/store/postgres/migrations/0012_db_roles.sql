-- Dynamic PostgreSQL roles issued per task and Service (internal/dbcreds).
-- A row is written before CREATE ROLE and deleted after DROP ROLE, so a
-- crash in between leaves a row the reaper drops at the next start.
-- Mirrors store/sqlite's 0012.
CREATE TABLE db_roles (
	role             TEXT COLLATE "C" PRIMARY KEY,
	service          TEXT COLLATE "C" NOT NULL,
	task             TEXT COLLATE "C" NOT NULL,
	spiffe_id        TEXT NOT NULL,
	instance         TEXT NOT NULL,
	upstream         TEXT NOT NULL,
	admin_credential TEXT NOT NULL,
	state            TEXT NOT NULL,
	sealed           BYTEA NOT NULL,   -- the password, AES-256-GCM under the KEK, bound to the role
	valid_until      BIGINT NOT NULL,  -- unix nanoseconds
	created_at       BIGINT NOT NULL,
	UNIQUE (task, service)
);
