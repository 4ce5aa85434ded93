package access

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNoNetHTTP keeps the enforcement core free of HTTP: no package it
// depends on, directly or not, is net/http, so that every protocol front
// end can use it unchanged.
func TestNoNetHTTP(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the go tool is required in CI to check the imports of package access")
		}
		t.Skip("the go tool is not on PATH; cannot list the imports of package access")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}:{{range .Imports}} {{.}}{{end}}", ".").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	var seen bool
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		if pkg == "github.com/writ-dev/writ/internal/access" {
			seen = true
		}
		if pkg == "net/http" || strings.HasPrefix(pkg, "net/http/") {
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if imp == "net/http" || strings.HasPrefix(imp, "net/http/") {
				t.Errorf("package access depends on %s through %s", imp, pkg)
			}
		}
	}
	if !seen {
		t.Fatalf("go list -deps did not list package access itself:\n%s", out)
	}
}
