-- Dynamic PostgreSQL roles issued per task and Service (internal/dbcreds).
-- A row is written before CREATE ROLE and deleted after DROP ROLE, so a
-- crash in between leaves a row the reaper drops at the next start.
CREATE TABLE db_roles (
	role             TEXT PRIMARY KEY,
	service          TEXT NOT NULL,
	task             TEXT NOT NULL,
	spiffe_id        TEXT NOT NULL,
	instance         TEXT NOT NULL,
	upstream         TEXT NOT NULL,
	admin_credential TEXT NOT NULL,
	state            TEXT NOT NULL,
	sealed           BLOB NOT NULL,   -- the password, AES-256-GCM under the KEK, bound to the role
	valid_until      INTEGER NOT NULL, -- unix nanoseconds
	created_at       INTEGER NOT NULL,
	UNIQUE (task, service)
);
