package archtest

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/writ-dev/writ/"

// layers lists, for packages of the module, the module packages they must
// never import (directly). It is the executable half of the "Layers"
// section of docs/architecture.md: change both together.
var forbidden = []struct {
	who    func(pkg string) bool
	never  []string
	reason string
}{
	{
		who: func(p string) bool {
			return !slices.Contains([]string{"cmd/writ", "internal/cli", "internal/server", "internal/servertest"}, p) &&
				!strings.HasPrefix(p, "bench/") && p != "internal/archtest"
		},
		never:  []string{"internal/server", "internal/cli"},
		reason: "only the command tree and the binary compose the server",
	},
	{
		who: func(p string) bool {
			return !slices.Contains([]string{"cmd/writ", "internal/cli", "internal/server", "internal/servertest", "internal/api"}, p) &&
				!strings.HasPrefix(p, "bench/") && p != "internal/archtest"
		},
		never:  []string{"internal/api"},
		reason: "admin handlers are composed by the server, never used by a domain package",
	},
	{
		who: func(p string) bool {
			return !slices.Contains([]string{"cmd/writ", "internal/cli", "internal/client", "internal/servertest"}, p) &&
				!strings.HasPrefix(p, "bench/") && p != "internal/archtest"
		},
		never:  []string{"internal/client"},
		reason: "the admin API client is for the CLI; the server side never calls itself over HTTP",
	},
	{
		who:    func(p string) bool { return p == "internal/client" || p == "internal/apitypes" },
		never:  []string{"internal/store", "internal/audit", "internal/auditlog", "internal/broker", "internal/server", "internal/api"},
		reason: "the client and the wire types speak only wire types",
	},
	{
		who:    func(p string) bool { return p == "internal/policy" },
		never:  []string{"internal/store", "internal/server", "internal/api", "internal/auditlog"},
		reason: "the policy engine is pure: it compiles documents and decides requests",
	},
	{
		who:    func(p string) bool { return p == "internal/audit" },
		never:  []string{"internal/auditlog", "internal/store"},
		reason: "the event vocabulary is imported by everyone and imports nothing of the log",
	},
	{
		who:    func(p string) bool { return p == "internal/access" },
		never:  []string{"internal/proxy", "internal/mcp", "internal/dbcreds", "internal/server", "internal/api"},
		reason: "the enforcement core is used by the protocol front ends, never the other way round",
	},
	{
		who:    func(p string) bool { return p == "internal/dbcreds" },
		never:  []string{"internal/proxy", "internal/mcp", "internal/task", "internal/server", "internal/api"},
		reason: "the PostgreSQL front end and role issuer sit beside the HTTP proxy over access, and read tasks through an interface",
	},
}

// TestLayers lists every package's imports with the go tool and fails on
// an import the layers forbid, and on any import cycle the go tool
// reports.
func TestLayers(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the go tool is required in CI to check the layers")
		}
		t.Skip("the go tool is not on PATH; cannot list the packages' imports")
	}
	cmd := exec.Command(goBin, "list", "-test=false", "-f", "{{.ImportPath}}:{{range .Imports}} {{.}}{{end}}", mod+"...")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	pkgs := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		path, imports, _ := strings.Cut(line, ":")
		pkg := strings.TrimPrefix(path, mod)
		pkgs++
		for _, imp := range strings.Fields(imports) {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			imp = strings.TrimPrefix(imp, mod)
			for _, f := range forbidden {
				if f.who(pkg) && slices.Contains(f.never, imp) {
					t.Errorf("%s imports %s: %s (docs/architecture.md, Layers)", pkg, imp, f.reason)
				}
			}
		}
	}
	if pkgs < 20 {
		t.Fatalf("go list found only %d packages; is the test running inside the module?\n%s", pkgs, out)
	}
}
