-- Lineage graph, alerts and webhook deliveries (#14). Mirrors
-- store/sqlite's 0009; see internal/graph, internal/alert, store.Lineage
-- and store.Alerts.

-- How far each consumer of the audit log has read, and its carried state.
CREATE TABLE see_cursors (
	name       TEXT COLLATE "C" PRIMARY KEY,
	next_index BIGINT NOT NULL,
	state      BYTEA NOT NULL
);

-- Accesses aggregated per hour and per path ("user" is quoted: it is a
-- keyword in PostgreSQL).
CREATE TABLE lineage_facts (
	hour        BIGINT NOT NULL, -- unix seconds of the hour's start
	"user"      TEXT COLLATE "C" NOT NULL,
	identity    TEXT COLLATE "C" NOT NULL,
	instance    TEXT COLLATE "C" NOT NULL,
	task        TEXT COLLATE "C" NOT NULL,
	via         TEXT COLLATE "C" NOT NULL,
	target_kind TEXT COLLATE "C" NOT NULL, -- service | mcp_server
	target      TEXT COLLATE "C" NOT NULL,
	tool        TEXT COLLATE "C" NOT NULL,
	credential  TEXT COLLATE "C" NOT NULL,
	approved_by TEXT COLLATE "C" NOT NULL,
	allowed     BIGINT NOT NULL,
	denied      BIGINT NOT NULL,
	held        BIGINT NOT NULL,
	first_seen  BIGINT NOT NULL, -- unix nanoseconds
	last_seen   BIGINT NOT NULL,
	PRIMARY KEY (hour, "user", identity, instance, task, via, target_kind, target, tool, credential, approved_by)
);
CREATE INDEX lineage_facts_identity ON lineage_facts (identity, hour);
CREATE INDEX lineage_facts_task ON lineage_facts (task) WHERE task != '';
CREATE INDEX lineage_facts_credential ON lineage_facts (credential, hour) WHERE credential != '';
CREATE INDEX lineage_facts_target ON lineage_facts (target, hour);

-- Alerts raised by rules over the event stream. At most one alert per
-- dedup key is not resolved; later evidence adds to it.
CREATE TABLE alerts (
	id             TEXT COLLATE "C" PRIMARY KEY,
	rule           TEXT COLLATE "C" NOT NULL,
	dedup_key      TEXT COLLATE "C" NOT NULL,
	severity       TEXT COLLATE "C" NOT NULL,
	title          TEXT NOT NULL,
	subject        TEXT NOT NULL,
	evidence       BYTEA NOT NULL, -- JSON list of event ids and facts, never secret values
	count          BIGINT NOT NULL,
	state          TEXT COLLATE "C" NOT NULL, -- open | acknowledged | resolved
	first_evidence BIGINT NOT NULL, -- unix nanoseconds
	last_evidence  BIGINT NOT NULL,
	raised_at      BIGINT NOT NULL,
	acked_at       BIGINT NOT NULL, -- 0 when not acknowledged
	acked_by       TEXT NOT NULL,
	resolved_at    BIGINT NOT NULL, -- 0 when not resolved
	resolved_by    TEXT NOT NULL,
	note           TEXT NOT NULL
);
CREATE UNIQUE INDEX alerts_unresolved ON alerts (dedup_key) WHERE state != 'resolved';
CREATE INDEX alerts_raised ON alerts (raised_at);

-- The durable outbox of webhook notifications, written in the alert's
-- transaction.
CREATE TABLE webhook_outbox (
	id           BIGSERIAL PRIMARY KEY,
	webhook      TEXT NOT NULL,
	alert        TEXT COLLATE "C" NOT NULL,
	body         BYTEA NOT NULL,
	attempts     INTEGER NOT NULL,
	next_attempt BIGINT NOT NULL, -- unix nanoseconds
	created_at   BIGINT NOT NULL,
	delivered_at BIGINT NOT NULL, -- 0 while pending
	failed       BOOLEAN NOT NULL, -- true once given up
	last_error   TEXT NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt) WHERE delivered_at = 0 AND NOT failed;
CREATE INDEX webhook_outbox_alert ON webhook_outbox (alert);
