package scan

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzParseIgnore(f *testing.F) {
	f.Add([]byte("# c\nignored/\n*.pem\nfingerprint:" + strings.Repeat("ab", 32) + "\nrule:github-pat\n"))
	f.Add([]byte("[\n"))
	f.Add([]byte("fingerprint:zz\n"))
	f.Add([]byte("rule:\n/\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		ig, err := ParseIgnore("f", src)
		if err != nil {
			return
		}
		for _, p := range []string{"a", "a/b/c.txt", "ignored/x", ".env", ""} {
			ig.IgnoresPath(p)
		}
		ig.Ignores(Finding{RuleID: "github-pat", Fingerprint: strings.Repeat("ab", 32)})
	})
}

func FuzzParseBaseline(f *testing.F) {
	f.Add([]byte(`{"target": ".", "findings": [{"rule_id": "github-pat", "fingerprint": "ab"}]}`))
	f.Add([]byte(`{"findings": null}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, src []byte) {
		b, err := ParseBaseline("f", src)
		if err != nil {
			return
		}
		fs := []Finding{{RuleID: "github-pat", Fingerprint: "ab"}}
		if n := b.Mark(fs); n < 0 || n > 1 {
			t.Fatalf("Mark = %d", n)
		}
	})
}

func FuzzSecretData(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Secret\ndata:\n  password: aHVudGVyMg==\n"))
	f.Add([]byte("kind: Secret\ndata: [1, 2]\n---\nkind: Secret\ndata:\n  a: !!binary aGk=\n"))
	f.Add([]byte("a: &a [*a, *a]\nkind: Secret\n"))
	f.Add([]byte("kind: Secret\ndata:\n  k: \"not base64!\"\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		lines := bytes.Count(src, []byte("\n")) + 1
		for _, v := range SecretData(src) {
			if v.Line < 1 || v.Line > lines || len(v.Value) == 0 {
				t.Fatalf("value %q at line %d of %d", v.Key, v.Line, lines)
			}
		}
	})
}

func FuzzReadHistory(f *testing.F) {
	hash := strings.Repeat("a", 40)
	blob := strings.Repeat("b", 40)
	f.Add([]byte("\x01" + hash + "\x00Ada <a@b>\x002026-01-01T00:00:00Z\x00\x00\n:000000 100644 " + strings.Repeat("0", 40) + " " + blob + " A\x00a.txt\x00"))
	f.Add([]byte("\x01" + hash + "\x00x\x00y\x00\x00\n:1 2 3\x00"))
	f.Add([]byte("\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, src []byte) {
		h, err := readHistory(bytes.NewReader(src))
		if err != nil {
			return
		}
		for _, b := range h.blobs {
			if b.first < 0 || b.last < b.first || b.last >= len(h.commits) || len(b.paths) == 0 {
				t.Fatalf("blob %+v with %d commits", b, len(h.commits))
			}
		}
	})
}
