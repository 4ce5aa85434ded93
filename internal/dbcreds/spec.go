// Package dbcreds issues dynamic PostgreSQL credentials: a login role that
// exists for one task's access to one Service and no longer.
//
// A Service with a `postgres:` block ([Spec]) names a PostgreSQL database
// (its upstream, postgres://HOST:PORT/DB), the broker credential writ logs
// in with to manage roles (Admin), and the privileges a task's role gets
// (Grants, MemberOf). On a task's first access the [Issuer] records the
// role in the store (migration 0012), then creates it in one transaction:
// CREATE ROLE with a random name, a random password (sent only as a
// SCRAM-SHA-256 verifier) and VALID UNTIL the task's end, and the grants,
// every identifier quoted by pgx (no user input is concatenated into
// SQL). The role is dropped — its sessions terminated first — when the
// task closes, expires or is revoked; roles a crash left behind are
// dropped by the sweep at the next start. Every create and drop is an
// audit event (dbcreds.role_created, dbcreds.role_dropped).
//
// The agent never sees the password: it connects to the [Proxy], a
// PostgreSQL wire-protocol proxy, which identifies it (the local process,
// or a writ access token sent as the password), has the access decided
// by the enforcement core (package access; the connection is an http
// call with method CONNECT and path / to the Service), logs in upstream
// as the task's role and relays the session.
package dbcreds

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/access"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
)

// Spec is the `postgres:` block of a Service document.
type Spec struct {
	// Admin names the broker credential (type basic, "USER:PASSWORD")
	// writ logs in with to create and drop roles. That user needs
	// CREATEROLE and must hold the privileges it grants (with grant
	// option, or own the objects).
	Admin string `yaml:"admin" json:"admin"`
	// Grants are the privileges each task's role gets.
	Grants []Grant `yaml:"grants,omitempty" json:"grants,omitempty"`
	// MemberOf names existing roles the task's role becomes a member of
	// (GRANT GROUP TO ROLE), to reuse privileges kept there.
	MemberOf []string `yaml:"member_of,omitempty" json:"member_of,omitempty"`
	// ConnectionLimit caps the role's concurrent sessions (default 10).
	ConnectionLimit int `yaml:"connection_limit,omitempty" json:"connection_limit,omitempty"`
}

// Grant is one GRANT: privileges on exactly one kind of object.
type Grant struct {
	// Privileges are SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES,
	// TRIGGER or ALL for tables; USAGE, CREATE or ALL for schemas.
	Privileges []string `yaml:"privileges" json:"privileges"`
	// Tables are "schema.table" or "table" (quoted exactly as written:
	// write unquoted names in lower case).
	Tables []string `yaml:"tables,omitempty" json:"tables,omitempty"`
	// AllTablesInSchema grants on every table that exists in the schemas
	// when the role is created.
	AllTablesInSchema []string `yaml:"all_tables_in_schema,omitempty" json:"all_tables_in_schema,omitempty"`
	// Schemas grants on schemas themselves (USAGE, CREATE).
	Schemas []string `yaml:"schemas,omitempty" json:"schemas,omitempty"`
}

var (
	tablePrivileges  = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "ALL"}
	schemaPrivileges = []string{"USAGE", "CREATE", "ALL"}
)

// upstreamParams are the connection parameters an upstream URL may carry.
var upstreamParams = []string{"sslmode", "sslrootcert", "connect_timeout", "sslcert", "sslkey"}

// DefaultConnectionLimit is a role's session cap when the Spec sets none.
const DefaultConnectionLimit = 10

// Service is a compiled Service of kind postgres.
type Service struct {
	Name string
	// Upstream is the database URL, without user information.
	Upstream string
	// Database is the upstream database name.
	Database string
	Spec     Spec
	// statements grant the Spec's privileges to the role named by the
	// argument, built once at compile time.
	grants []func(role pgx.Identifier) string
	target access.Target
}

// Target is the Service as the enforcement core sees it.
func (s *Service) Target() *access.Target { return &s.target }

// BadFunc reports an invalid field of a Service's spec (field relative to
// spec, e.g. "postgres.grants.0.tables.1"), naming where it is.
type BadFunc func(field, format string, args ...any) error

// Compile checks the postgres block of Service name with upstream and
// returns the compiled Service. audience and labels are the Service's.
func Compile(name, upstream, audience string, labels []string, spec Spec, bad BadFunc) (*Service, error) {
	u, err := url.Parse(upstream)
	switch {
	case err != nil:
		return nil, bad("upstream", "%q is not a URL: %v", upstream, err)
	case u.Scheme != "postgres" && u.Scheme != "postgresql":
		return nil, bad("upstream", "%q: a Service with postgres: has a postgres://HOST:PORT/DATABASE upstream", upstream)
	case u.User != nil:
		return nil, bad("upstream", "the URL holds user information; writ logs in with the credential named by postgres.admin and gives each task a role of its own")
	case u.Host == "":
		return nil, bad("upstream", "%q has no host", upstream)
	case u.Fragment != "":
		return nil, bad("upstream", "%q: no fragment", upstream)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, bad("upstream", "%q names no database; write postgres://HOST:PORT/DATABASE", upstream)
	}
	for k := range u.Query() {
		if !slices.Contains(upstreamParams, k) {
			return nil, bad("upstream", "parameter %q is not allowed; use %s", k, strings.Join(upstreamParams, ", "))
		}
	}
	if !resource.ValidName(spec.Admin) {
		return nil, bad("postgres.admin", "%q is not a credential name; put the admin login with `writ credential put NAME --type basic` (USER:PASSWORD) and name it here", spec.Admin)
	}
	if spec.ConnectionLimit < 0 || spec.ConnectionLimit > 1000 {
		return nil, bad("postgres.connection_limit", "%d: write 1 to 1000 (default %d)", spec.ConnectionLimit, DefaultConnectionLimit)
	}
	if spec.ConnectionLimit == 0 {
		spec.ConnectionLimit = DefaultConnectionLimit
	}
	s := &Service{Name: name, Upstream: upstream, Database: db, Spec: spec}
	if len(spec.Grants) == 0 && len(spec.MemberOf) == 0 {
		return nil, bad("postgres.grants", "missing; name the privileges a task's role gets (grants or member_of), e.g. {privileges: [SELECT], tables: [public.orders]}")
	}
	for i, g := range spec.Grants {
		f, err := compileGrant(g, func(field, format string, args ...any) error {
			return bad(fmt.Sprintf("postgres.grants.%d", i)+field, format, args...)
		})
		if err != nil {
			return nil, err
		}
		s.grants = append(s.grants, f)
	}
	for i, m := range spec.MemberOf {
		id, err := parseName(m, 1)
		if err != nil {
			return nil, bad(fmt.Sprintf("postgres.member_of.%d", i), "%v", err)
		}
		s.grants = append(s.grants, func(role pgx.Identifier) string {
			return "GRANT " + id.Sanitize() + " TO " + role.Sanitize()
		})
	}
	s.target = access.Target{Kind: policy.KindHTTP, Name: name, Ref: resource.KindService + "/" + name, Labels: labels, Audience: audience}
	return s, nil
}

func compileGrant(g Grant, bad BadFunc) (func(pgx.Identifier) string, error) {
	kinds := 0
	for _, l := range [][]string{g.Tables, g.AllTablesInSchema, g.Schemas} {
		if len(l) > 0 {
			kinds++
		}
	}
	if kinds != 1 {
		return nil, bad("", "name exactly one of tables, all_tables_in_schema or schemas")
	}
	allowed, on, objs, parts, field := tablePrivileges, "TABLE ", g.Tables, 2, ".tables"
	switch {
	case len(g.AllTablesInSchema) > 0:
		on, objs, parts, field = "ALL TABLES IN SCHEMA ", g.AllTablesInSchema, 1, ".all_tables_in_schema"
	case len(g.Schemas) > 0:
		allowed, on, objs, parts, field = schemaPrivileges, "SCHEMA ", g.Schemas, 1, ".schemas"
	}
	if len(g.Privileges) == 0 {
		return nil, bad(".privileges", "missing; one or more of %s", strings.Join(allowed, ", "))
	}
	var privs []string
	for i, p := range g.Privileges {
		up := strings.ToUpper(p)
		if !slices.Contains(allowed, up) {
			return nil, bad(fmt.Sprintf(".privileges.%d", i), "%q is not one of %s", p, strings.Join(allowed, ", "))
		}
		if !slices.Contains(privs, up) {
			privs = append(privs, up)
		}
	}
	var names []string
	for i, o := range objs {
		id, err := parseName(o, parts)
		if err != nil {
			return nil, bad(fmt.Sprintf("%s.%d", field, i), "%v", err)
		}
		names = append(names, id.Sanitize())
	}
	// Privilege words come from the fixed lists above and names are
	// quoted identifiers: nothing of the document reaches the statement
	// unquoted.
	stmt := "GRANT " + strings.Join(privs, ", ") + " ON " + on + strings.Join(names, ", ") + " TO "
	return func(role pgx.Identifier) string { return stmt + role.Sanitize() }, nil
}

// maxIdent is PostgreSQL's identifier length (NAMEDATALEN-1).
const maxIdent = 63

// parseName splits "a.b" into at most parts identifiers, each 1-63 bytes
// of printable characters.
func parseName(s string, parts int) (pgx.Identifier, error) {
	id := pgx.Identifier(strings.Split(s, "."))
	if len(id) > parts {
		if parts == 1 {
			return nil, fmt.Errorf("%q: write a plain name, without '.'", s)
		}
		return nil, fmt.Errorf("%q: write schema.name or name", s)
	}
	for _, p := range id {
		if p == "" || len(p) > maxIdent {
			return nil, fmt.Errorf("%q: each part of a name is 1 to %d bytes", s, maxIdent)
		}
		for _, c := range p {
			if c < 0x20 || c == 0x7f || c == '"' {
				return nil, fmt.Errorf("%q: a name holds no control characters or double quotes", s)
			}
		}
	}
	return id, nil
}
