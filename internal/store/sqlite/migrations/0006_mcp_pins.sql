-- MCP gateway: the trusted descriptor of each tool of each MCP server.
-- See internal/mcp (pinning) and store.Pins.
CREATE TABLE mcp_pins (
	server     TEXT NOT NULL,
	tool       TEXT NOT NULL,
	digest     TEXT NOT NULL,  -- trusted descriptor digest; '' if never trusted
	observed   TEXT NOT NULL,  -- digest last announced by the upstream
	shape      TEXT NOT NULL,  -- digest without the name, to recognise renames
	state      TEXT NOT NULL,  -- pinned | quarantined | approved
	reason     TEXT NOT NULL,
	actor      TEXT NOT NULL,
	revision   INTEGER NOT NULL,
	first_seen INTEGER NOT NULL, -- unix nanoseconds
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (server, tool)
);
