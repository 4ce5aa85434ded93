package postgres

import (
	"strings"
	"testing"
)

// TestParseDSNNeverLeaksPassword feeds malformed connection strings that
// carry a password and checks that the error names the problem without it.
func TestParseDSNNeverLeaksPassword(t *testing.T) {
	const pw = "s3cretPW"
	for _, dsn := range []string{
		"postgres://writ:" + pw + "@127.0.0.1:notaport/writ",
		"postgres://writ:" + pw + "@[::1/writ",
		"host=127.0.0.1 password=" + pw + " port=abc",
		"host=127.0.0.1 password='" + pw + "' sslmode=bogus",
		"postgres://writ:" + pw + "@127.0.0.1/writ?sslmode=bogus",
		"postgres://writ:" + pw + "@127.0.0.1/writ?pool_max_conns=-1",
		"password=" + pw + " = =",
		"\x00postgres://u:" + pw + "@h/d",
	} {
		_, err := ParseDSN(dsn)
		if err == nil {
			t.Errorf("ParseDSN(%q) accepted it", dsn)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("ParseDSN error shows the password: %v", err)
		}
	}
	if _, err := ParseDSN("  "); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("ParseDSN of blanks: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://writ:pw@db.example:6543/writ":      "postgres://writ@db.example:6543/writ",
		"host=/run/postgresql user=u dbname=d":         "postgres://u@/run/postgresql/d",
		"postgres://u:pw@[::1]:5432/d?sslmode=disable": "postgres://u@[::1]:5432/d",
	} {
		cfg, err := ParseDSN(dsn)
		if err != nil {
			t.Fatalf("ParseDSN(%q): %v", dsn, err)
		}
		if got := Describe(&cfg.ConnConfig.Config); got != want || strings.Contains(got, "pw") {
			t.Errorf("Describe(%q) = %q, want %q", dsn, got, want)
		}
	}
}

func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{
		"postgres://writ:pw@127.0.0.1:5432/writ?sslmode=disable",
		"host=127.0.0.1 user=writ password=pw dbname=writ",
		"postgresql://u:p%40ss@h/d?search_path=s",
		"postgres://u:pw@h:99999/d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		cfg, err := ParseDSN(dsn)
		// A password long enough to be told apart, that occurs once in
		// the input, never reaches a message.
		pw := dsnPassword(dsn)
		if len(pw) < 6 || strings.Count(dsn, pw) != 1 {
			return
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Fatalf("error shows the password %q: %v", pw, err)
		}
		if err == nil && strings.Contains(Describe(&cfg.ConnConfig.Config), pw) {
			t.Fatalf("Describe shows the password: %s", Describe(&cfg.ConnConfig.Config))
		}
	})
}
