-- Tasks, revocations (the kill switch) and approval requests.
CREATE TABLE tasks (
	id           TEXT PRIMARY KEY,
	spiffe_id    TEXT NOT NULL,
	instance     TEXT NOT NULL DEFAULT '',
	purpose      TEXT NOT NULL,
	on_behalf_of TEXT NOT NULL DEFAULT '',
	audiences    TEXT NOT NULL DEFAULT '[]', -- JSON array
	scopes       TEXT NOT NULL DEFAULT '[]', -- JSON array
	state        TEXT NOT NULL,
	budget       INTEGER NOT NULL DEFAULT 0,
	calls        INTEGER NOT NULL DEFAULT 0,
	policy       TEXT NOT NULL DEFAULT '',
	rule         TEXT NOT NULL DEFAULT '',
	approval     TEXT NOT NULL DEFAULT '',
	reason       TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL, -- unix nanoseconds
	expires_at   INTEGER NOT NULL,
	closed_at    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_spiffe_id ON tasks(spiffe_id, created_at);
CREATE INDEX tasks_state_expiry ON tasks(state, expires_at);

CREATE TABLE revocations (
	kind       TEXT NOT NULL,
	value      TEXT NOT NULL,
	reason     TEXT NOT NULL DEFAULT '',
	actor      TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0, -- 0: never
	PRIMARY KEY (kind, value)
);

CREATE TABLE approvals (
	id           TEXT PRIMARY KEY,
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
	state        TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	decided_at   INTEGER NOT NULL DEFAULT 0,
	decided_by   TEXT NOT NULL DEFAULT '',
	comment      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX approvals_state ON approvals(state, created_at);
