-- Tasks, revocations (the kill switch) and approval requests. Mirrors
-- store/sqlite's 0003 and 0007 (bind_instance).
CREATE TABLE tasks (
	id            TEXT COLLATE "C" PRIMARY KEY,
	spiffe_id     TEXT COLLATE "C" NOT NULL,
	instance      TEXT COLLATE "C" NOT NULL DEFAULT '',
	purpose       TEXT NOT NULL,
	on_behalf_of  TEXT NOT NULL DEFAULT '',
	audiences     TEXT NOT NULL DEFAULT '[]', -- JSON array
	scopes        TEXT NOT NULL DEFAULT '[]', -- JSON array
	state         TEXT COLLATE "C" NOT NULL,
	budget        BIGINT NOT NULL DEFAULT 0,
	calls         BIGINT NOT NULL DEFAULT 0,
	policy        TEXT NOT NULL DEFAULT '',
	rule          TEXT NOT NULL DEFAULT '',
	approval      TEXT NOT NULL DEFAULT '',
	reason        TEXT NOT NULL DEFAULT '',
	created_at    BIGINT NOT NULL, -- unix nanoseconds
	expires_at    BIGINT NOT NULL,
	closed_at     BIGINT NOT NULL DEFAULT 0,
	bind_instance BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX tasks_spiffe_id ON tasks(spiffe_id, created_at);
CREATE INDEX tasks_state_expiry ON tasks(state, expires_at);
CREATE INDEX tasks_created ON tasks(created_at, id);

CREATE TABLE revocations (
	kind       TEXT COLLATE "C" NOT NULL,
	value      TEXT COLLATE "C" NOT NULL,
	reason     TEXT NOT NULL DEFAULT '',
	actor      TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL DEFAULT 0, -- 0: never
	PRIMARY KEY (kind, value)
);

CREATE TABLE approvals (
	id           TEXT COLLATE "C" PRIMARY KEY,
	kind         TEXT NOT NULL,
	spiffe_id    TEXT NOT NULL,
	instance     TEXT NOT NULL DEFAULT '',
	task         TEXT NOT NULL DEFAULT '',
	on_behalf_of TEXT NOT NULL DEFAULT '',
	target       TEXT NOT NULL,
	reason       TEXT NOT NULL DEFAULT '',
	policy       TEXT NOT NULL DEFAULT '',
	rule         TEXT NOT NULL DEFAULT '',
	approvers    TEXT NOT NULL DEFAULT '[]',
	state        TEXT COLLATE "C" NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	decided_at   BIGINT NOT NULL DEFAULT 0,
	decided_by   TEXT NOT NULL DEFAULT '',
	comment      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX approvals_state ON approvals(state, created_at);
