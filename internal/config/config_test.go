package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "writ.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadAndDefaults(t *testing.T) {
	p := write(t, "trust_domain: example.org\nca:\n  x509_svid_ttl: 30m\n")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.TrustDomain != "example.org" || c.CA.X509SVIDTTL != 30*time.Minute || c.CA.JWTSVIDTTL != 5*time.Minute ||
		c.CA.TTL != 24*time.Hour || c.Server.Listen != "127.0.0.1:8080" || c.DataDir != "./writ-data" {
		t.Errorf("config after defaults: %+v", c)
	}
	var zero Config
	zero.Defaults()
	if zero.TrustDomain != "writ.local" || zero.Workload.Socket != filepath.Join("writ-data", "workload.sock") {
		t.Errorf("zero defaults: %+v", zero)
	}
	if err := zero.Validate(); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown top key", "trust_domain: a\nbogus: 1\n", `writ.yaml:2:1: bogus: unknown field; known fields are alerts, audit, ca, console, data_dir`},
		{"unknown nested key", "ca:\n  ttl: 1h\n  x509_ttl: 1h\n", `writ.yaml:3:3: ca.x509_ttl: unknown field`},
		{"bad duration", "ca:\n  ttl: forever\n", `writ.yaml:2:8: ca.ttl: "forever" is not a duration`},
		{"wrong shape", "server: 8080\n", `writ.yaml:1:9: server: want a mapping of keys`},
		{"duplicate", "role: all\nrole: node\n", `writ.yaml:2:1: role: key appears twice`},
		{"syntax", "ca: [\n", `writ.yaml:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// The socket's mode: 0600 in the (0700) data directory, 0666 elsewhere,
// or what the file says, quoted or not.
func TestSocketMode(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       os.FileMode
	}{
		{"data dir", "data_dir: /var/lib/writ\n", 0o600},
		{"data dir, relative", "data_dir: d\nworkload: {socket: d/workload.sock}\n", 0o600},
		{"elsewhere", "data_dir: /var/lib/writ\nworkload: {socket: /run/writ/workload.sock}\n", 0o666},
		{"explicit", "workload: {socket: /run/writ/workload.sock, socket_mode: \"0660\"}\n", 0o660},
		{"explicit, unquoted", "workload: {socket_mode: 0660}\n", 0o660},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			c.Defaults()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := c.Workload.SocketFileMode(); got != tc.want {
				t.Fatalf("socket mode %04o (%q), want %04o", got, c.Workload.SocketMode, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"trust domain", func(c *Config) { c.TrustDomain = "Bad Domain" }, "trust_domain:"},
		{"role", func(c *Config) { c.Role = "agent" }, `role: "agent" is not a role`},
		{"node name", func(c *Config) { c.NodeName = "node one" }, `node_name: "node one": use at most 253 printable characters`},
		{"svid longer than CA", func(c *Config) { c.CA.X509SVIDTTL = 48 * time.Hour }, "ca.x509_svid_ttl:"},
		{"listen", func(c *Config) { c.Server.Listen = "8080" }, "server.listen:"},
		{"upstream half", func(c *Config) { c.CA.UpstreamCert = "/x.pem" }, "ca.upstream_cert:"},
		{"postgres without dsn", func(c *Config) { c.Store.Driver = "postgres"; c.Store.DSN = "" }, "store.dsn:"},
		{"decision durability", func(c *Config) { c.Proxy.DecisionDurability = "fsync" }, `proxy.decision_durability: "fsync" is not a durability; use written or synced`},
		{"socket mode", func(c *Config) { c.Workload.SocketMode = "rw-rw-rw-" }, `workload.socket_mode: "rw-rw-rw-" is not a file mode; write it in octal`},
		{"socket mode too large", func(c *Config) { c.Workload.SocketMode = "1777" }, `workload.socket_mode: "1777"`},
		{"witness with no target", func(c *Config) { c.Audit.Witnesses = []Witness{{Name: "w"}} }, `audit.witnesses[0]: set exactly one of file, url and command (0 are set)`},
		{"witness with two targets", func(c *Config) { c.Audit.Witnesses = []Witness{{File: "/x", URL: "https://w.example/"}} }, `audit.witnesses[0]: set exactly one of file, url and command (2 are set)`},
		{"witness url", func(c *Config) { c.Audit.Witnesses = []Witness{{URL: "ftp://w.example/"}} }, `audit.witnesses[0].url: "ftp://w.example/" is not an http:// or https:// URL`},
		{"witness key", func(c *Config) { c.Audit.Witnesses = []Witness{{URL: "https://w.example/", Key: "nope"}} }, `audit.witnesses[0].key: "nope" is not a signed-note verifier key`},
		{"file witness key", func(c *Config) {
			c.Audit.Witnesses = []Witness{{File: "/x", Key: "w+560e002c+AQUns7bbbuapqBaMhmcr7C2zs6n8NldrWwgYvAncBHVG"}}
		}, `audit.witnesses[0].key: a file witness cannot cosign`},
		{"witness names", func(c *Config) { c.Audit.Witnesses = []Witness{{Name: "a", File: "/x"}, {Name: "a", File: "/y"}} }, `audit.witnesses[1].name: "a" is the name of another witness`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.Defaults()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestWitnesses(t *testing.T) {
	p := write(t, `audit:
  witnesses:
    - file: /var/lib/writ-witness/checkpoints
    - name: offsite
      url: https://witness.example/add-checkpoint
      key: offsite+46821300+AcJ3K8wDgFCvPSs5be26ye+BDCxGw8acZCwktgfg4ZRS
      timeout: 3s
    - command: [/usr/local/bin/witness, --log, /srv/cp]
`)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w := c.Audit.Witnesses
	if len(w) != 3 || w[0].Name != "witness-1" || w[0].Timeout != 10*time.Second || w[1].Name != "offsite" ||
		w[1].Timeout != 3*time.Second || w[1].Key == "" || len(w[2].Command) != 3 || w[2].Name != "witness-3" {
		t.Errorf("witnesses after defaults: %+v", w)
	}
	if _, err := Load(write(t, "audit:\n  witnesses:\n    - fil: /x\n")); err == nil || !strings.Contains(err.Error(), "audit.witnesses[0].fil: unknown field") {
		t.Errorf("misspelt witness key: %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte("trust_domain: writ.local\nca:\n  ttl: 1h\n"))
	f.Add([]byte("server: {listen: ':1'}\n"))
	f.Add([]byte("a: &x 1\nb: *x\n"))
	f.Add([]byte("- 1\n- 2\n"))
	f.Add([]byte("keys:\n  x509_ca: pkcs11\n  kek: tpm\n  pkcs11: {module: /m, slot: 0, pin_file: /p}\n  tpm: {tcp: \"127.0.0.1:2321\"}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "writ.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		c.Defaults()
		_ = c.Validate()
	})
}
