-- The groups of the console's human accounts (#19): a rule whose approvers
-- name group:G may be decided by a member of G. Local accounts' groups are
-- set by `writ user add --group` and `writ user groups`; an OIDC account's
-- are replaced by its groups claim at every login. Names are compared
-- exactly (BINARY collation: case-sensitive).
CREATE TABLE user_groups (
	user_name  TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	group_name TEXT NOT NULL,
	PRIMARY KEY (user_name, group_name)
);
