package config

import (
	"strings"
	"testing"
)

// TestPostgresDSN checks store.dsn for the postgres driver: good strings
// pass, hostile or malformed ones are refused with a message that names
// the key and never repeats the string (it may hold a password).
func TestPostgresDSN(t *testing.T) {
	const pw = "hunter2secret"
	for _, tc := range []struct {
		dsn  string
		want string // "" means valid
	}{
		{"postgres://writ@127.0.0.1:5432/writ", ""},
		{"postgresql://writ:" + pw + "@db.internal/writ?sslmode=verify-full", ""},
		{"host=/run/postgresql dbname=writ user=writ password=" + pw, ""},
		{"", "required for the postgres driver"},
		{"   ", "required for the postgres driver"},
		{"mysql://writ:" + pw + "@db/writ", `a URL with scheme "mysql"`},
		{"postgres://writ:" + pw + "@db/writ\nextra: 1", "control character"},
		{"postgres://writ:" + pw + "@db/\x00writ", "control character"},
		{"postgres://writ:" + pw + "@db/writ\x7f", "control character"},
		{"postgres://writ:" + pw + "@db/wr\xffit", "not valid UTF-8"},
		{"postgres://writ:" + pw + "@[::1/writ", "not a valid URL"},
		{"just-a-name-" + pw, "neither a postgres:// URL nor key=value pairs"},
		{"writ:" + pw + "@db://x", "not a postgres:// URL"},
		{"postgres://u:" + pw + "@h/" + strings.Repeat("a", 5000), "over the limit of 4096"},
	} {
		var c Config
		c.Store.Driver = "postgres"
		c.Defaults()
		c.Store.DSN = tc.dsn
		err := c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("Validate(dsn %q) = %v, want valid", tc.dsn, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "store.dsn: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(dsn %q) = %v, want store.dsn: ...%s", tc.dsn, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("Validate error repeats the DSN's password: %v", err)
		}
	}
}

func TestStoreDriver(t *testing.T) {
	var c Config
	c.Store.Driver = "mongodb"
	c.Defaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `store.driver: "mongodb" is not a driver; use sqlite or postgres`) {
		t.Errorf("Validate = %v", err)
	}
	// The sqlite default is a file in the data directory; postgres has
	// no default DSN.
	c = Config{}
	c.Defaults()
	if c.Store.Driver != "sqlite" || !strings.HasSuffix(c.Store.DSN, "writ.db") {
		t.Errorf("defaults: store %+v", c.Store)
	}
	c = Config{}
	c.Store.Driver = "postgres"
	c.Defaults()
	if c.Store.DSN != "" {
		t.Errorf("postgres got a default DSN %q", c.Store.DSN)
	}
}

func FuzzPostgresDSN(f *testing.F) {
	for _, s := range []string{"postgres://u:pw@h:5432/d", "host=h password=pw", "", "mysql://x", "postgres://u:p\n@h/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		problem := checkPostgresDSN(dsn)
		// The message is fixed text plus at most a URL scheme: it never
		// carries the part after "://".
		scheme, rest, ok := strings.Cut(dsn, "://")
		if ok && len(rest) >= 4 && strings.Contains(problem, rest) {
			t.Fatalf("message repeats the DSN: %q", problem)
		}
		if ok && strings.ContainsAny(scheme, ":@") && strings.Contains(problem, scheme) {
			t.Fatalf("message repeats what may be credentials: %q", problem)
		}
	})
}
