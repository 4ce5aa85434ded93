package client_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsOnlyWireTypes keeps the client a client of the wire: of
// writ's own packages it imports internal/apitypes alone, never a store,
// domain or server package.
func TestImportsOnlyWireTypes(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if strings.HasPrefix(p, "github.com/writ-dev/writ/") && p != "github.com/writ-dev/writ/internal/apitypes" {
				t.Errorf("%s imports %s; the client speaks only internal/apitypes", f, p)
			}
		}
	}
}
