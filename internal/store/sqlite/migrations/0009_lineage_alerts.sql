-- Lineage graph, alerts and webhook deliveries (#14). See internal/graph,
-- internal/alert, store.Lineage and store.Alerts.

-- How far each consumer of the audit log has read: the index of the next
-- event to fold in, and the consumer's own carried state (JSON; the alert
-- engine's sliding windows). One row per consumer ("lineage", "alerts").
CREATE TABLE see_cursors (
	name       TEXT PRIMARY KEY,
	next_index INTEGER NOT NULL,
	state      BLOB NOT NULL
);

-- Accesses aggregated per hour and per path: who (on behalf of whom, as
-- which identity and instance, in which task, authenticated how) reached
-- which service or MCP server (and tool) with which injected credential,
-- approved by whom. The graph's edges are sums over these rows.
CREATE TABLE lineage_facts (
	hour        INTEGER NOT NULL, -- unix seconds of the hour's start
	user        TEXT NOT NULL,
	identity    TEXT NOT NULL,
	instance    TEXT NOT NULL,
	task        TEXT NOT NULL,
	via         TEXT NOT NULL,
	target_kind TEXT NOT NULL, -- service | mcp_server
	target      TEXT NOT NULL,
	tool        TEXT NOT NULL,
	credential  TEXT NOT NULL,
	approved_by TEXT NOT NULL,
	allowed     INTEGER NOT NULL,
	denied      INTEGER NOT NULL,
	held        INTEGER NOT NULL,
	first_seen  INTEGER NOT NULL, -- unix nanoseconds
	last_seen   INTEGER NOT NULL,
	PRIMARY KEY (hour, user, identity, instance, task, via, target_kind, target, tool, credential, approved_by)
);
CREATE INDEX lineage_facts_identity ON lineage_facts (identity, hour);
CREATE INDEX lineage_facts_task ON lineage_facts (task) WHERE task != '';
CREATE INDEX lineage_facts_credential ON lineage_facts (credential, hour) WHERE credential != '';
CREATE INDEX lineage_facts_target ON lineage_facts (target, hour);

-- Alerts raised by rules over the event stream. At most one alert per
-- dedup key is not resolved; later evidence adds to it.
CREATE TABLE alerts (
	id             TEXT PRIMARY KEY,
	rule           TEXT NOT NULL,
	dedup_key      TEXT NOT NULL,
	severity       TEXT NOT NULL,
	title          TEXT NOT NULL,
	subject        TEXT NOT NULL,
	evidence       BLOB NOT NULL, -- JSON list of event ids and facts, never secret values
	count          INTEGER NOT NULL,
	state          TEXT NOT NULL, -- open | acknowledged | resolved
	first_evidence INTEGER NOT NULL, -- unix nanoseconds
	last_evidence  INTEGER NOT NULL,
	raised_at      INTEGER NOT NULL,
	acked_at       INTEGER NOT NULL, -- 0 when not acknowledged
	acked_by       TEXT NOT NULL,
	resolved_at    INTEGER NOT NULL, -- 0 when not resolved
	resolved_by    TEXT NOT NULL,
	note           TEXT NOT NULL
);
CREATE UNIQUE INDEX alerts_unresolved ON alerts (dedup_key) WHERE state != 'resolved';
CREATE INDEX alerts_raised ON alerts (raised_at);

-- The durable outbox of webhook notifications: written in the same
-- transaction as the alert, deleted once delivered (or kept as failed
-- after the last attempt), so nothing is lost across a restart.
CREATE TABLE webhook_outbox (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	webhook      TEXT NOT NULL,
	alert        TEXT NOT NULL,
	body         BLOB NOT NULL,
	attempts     INTEGER NOT NULL,
	next_attempt INTEGER NOT NULL, -- unix nanoseconds
	created_at   INTEGER NOT NULL,
	delivered_at INTEGER NOT NULL, -- 0 while pending
	failed       INTEGER NOT NULL, -- 1 once given up
	last_error   TEXT NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt) WHERE delivered_at = 0 AND failed = 0;
