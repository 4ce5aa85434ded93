-- An approval can be bound to the exact call it is for (an MCP call: server,
-- tool and the digest of its canonical arguments) and is then used once.
ALTER TABLE approvals ADD COLUMN binding TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;

-- The flow labels each task has touched, with the access that touched each
-- first, so that flow rules hold across a restart.
CREATE TABLE task_flows (
	task  TEXT NOT NULL,
	label TEXT NOT NULL,
	via   TEXT NOT NULL,
	at    INTEGER NOT NULL,
	PRIMARY KEY (task, label)
) WITHOUT ROWID;
