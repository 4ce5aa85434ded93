-- Runtime discovery: what the sensor saw on each host, first and last
-- seen. See internal/discover and store.Inventory. data is the sensor's
-- JSON record, which holds fingerprints, never secret values.
CREATE TABLE inventory (
	kind       TEXT NOT NULL,
	key        TEXT NOT NULL,
	host       TEXT NOT NULL,
	name       TEXT NOT NULL,
	identity   TEXT NOT NULL,
	shadow     INTEGER NOT NULL,
	data       BLOB NOT NULL,
	first_seen INTEGER NOT NULL, -- unix nanoseconds
	last_seen  INTEGER NOT NULL,
	PRIMARY KEY (kind, key)
);
CREATE INDEX inventory_last_seen ON inventory (last_seen);
