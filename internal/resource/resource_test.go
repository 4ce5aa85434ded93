package resource

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	src := `apiVersion: writ.dev/v1
kind: Identity
metadata:
  name: drafter
spec:
  spiffe_id: spiffe://writ.local/agent/drafter
---
# empty documents are skipped
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: p1}
spec:
  rules: []
`
	docs, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Ref() != "Identity/drafter" || docs[1].Ref() != "AccessPolicy/p1" || docs[1].Line != 10 {
		t.Fatalf("docs = %+v", docs)
	}
	var spec struct {
		SpiffeID string `yaml:"spiffe_id"`
	}
	if err := docs[0].DecodeSpec(&spec); err != nil || spec.SpiffeID != "spiffe://writ.local/agent/drafter" {
		t.Fatalf("DecodeSpec = %+v, %v", spec, err)
	}
	var wrong struct {
		Other string `yaml:"other"`
	}
	err = docs[0].DecodeSpec(&wrong)
	if err == nil || !strings.Contains(err.Error(), "x.yaml:6:3: spec.spiffe_id: unknown field") {
		t.Fatalf("strict spec error = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"no apiVersion", "kind: Identity\nmetadata: {name: a}\nspec: {}\n", "x.yaml:1:1: apiVersion: missing"},
		{"bad apiVersion", "apiVersion: v2\nkind: Identity\nmetadata: {name: a}\n", `x.yaml:1:13: apiVersion: "v2" is not supported`},
		{"bad kind", "apiVersion: writ.dev/v1\nkind: Policy\nmetadata: {name: a}\n", `x.yaml:2:7: kind: "Policy" is not a kind`},
		{"bad name", "apiVersion: writ.dev/v1\nkind: Identity\nmetadata: {name: A B}\n", `x.yaml:3:18: metadata.name: "A B" is not a valid name`},
		{"unknown envelope key", "apiVersion: writ.dev/v1\nkind: Identity\nmetdata: {name: a}\n", "x.yaml:3:1: metdata: unknown field"},
		{"duplicate", "apiVersion: writ.dev/v1\nkind: Identity\nmetadata: {name: a}\n---\napiVersion: writ.dev/v1\nkind: Identity\nmetadata: {name: a}\n", "defined twice"},
		{"syntax", "apiVersion: [\n", "x.yaml:1: invalid YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("apiVersion: writ.dev/v1\nkind: Identity\nmetadata: {name: a}\nspec: {x: 1}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Parse("f.yaml", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, d := range docs {
			if d.Kind == "" || d.Name == "" {
				t.Fatalf("accepted document without kind or name: %+v", d)
			}
			var any map[string]any
			_ = d.DecodeSpec(&any)
		}
	})
}
