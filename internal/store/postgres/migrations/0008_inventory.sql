-- Runtime discovery: what the sensor saw on each host, first and last
-- seen. See internal/discover and store.Inventory. data is the sensor's
-- JSON record, which holds fingerprints, never secret values. Mirrors
-- store/sqlite's 0008.
CREATE TABLE inventory (
	kind       TEXT COLLATE "C" NOT NULL,
	key        TEXT COLLATE "C" NOT NULL,
	host       TEXT COLLATE "C" NOT NULL,
	name       TEXT COLLATE "C" NOT NULL,
	identity   TEXT COLLATE "C" NOT NULL,
	shadow     BOOLEAN NOT NULL,
	data       BYTEA NOT NULL,
	first_seen BIGINT NOT NULL, -- unix nanoseconds
	last_seen  BIGINT NOT NULL,
	PRIMARY KEY (kind, key)
);
CREATE INDEX inventory_last_seen ON inventory (last_seen);
