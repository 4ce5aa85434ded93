-- The groups of the console's human accounts (mirrors SQLite 0018). Names
-- are compared exactly (text equality: case-sensitive).
CREATE TABLE user_groups (
	user_name  TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	group_name TEXT NOT NULL,
	PRIMARY KEY (user_name, group_name)
);
