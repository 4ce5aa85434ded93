-- MCP gateway: the trusted descriptor of each tool of each MCP server.
-- See internal/mcp (pinning) and store.Pins. Mirrors store/sqlite's 0006.
CREATE TABLE mcp_pins (
	server     TEXT COLLATE "C" NOT NULL,
	tool       TEXT COLLATE "C" NOT NULL,
	digest     TEXT NOT NULL,  -- trusted descriptor digest; '' if never trusted
	observed   TEXT NOT NULL,  -- digest last announced by the upstream
	shape      TEXT NOT NULL,  -- digest without the name, to recognise renames
	state      TEXT NOT NULL,  -- pinned | quarantined | approved
	reason     TEXT NOT NULL,
	actor      TEXT NOT NULL,
	revision   BIGINT NOT NULL,
	first_seen BIGINT NOT NULL, -- unix nanoseconds
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (server, tool)
);
