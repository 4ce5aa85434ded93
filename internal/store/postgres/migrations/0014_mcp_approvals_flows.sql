-- An approval can be bound to the exact call it is for (an MCP call: server,
-- tool and the digest of its canonical arguments) and is then used once.
-- Mirrors store/sqlite's 0014.
ALTER TABLE approvals ADD COLUMN binding TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN used_at BIGINT NOT NULL DEFAULT 0;

-- The flow labels each task has touched, with the access that touched each
-- first, so that flow rules hold across a restart.
CREATE TABLE task_flows (
	task  TEXT COLLATE "C" NOT NULL,
	label TEXT COLLATE "C" NOT NULL,
	via   TEXT NOT NULL,
	at    BIGINT NOT NULL,
	PRIMARY KEY (task, label)
);
