package mcp

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"b":1, "a":[true,false,null], "c":{"y":"x","x":"y"}}`, `{"a":[true,false,null],"b":1,"c":{"x":"y","y":"x"}}`},
		{`1.0`, `1`},
		{`-0.0`, `0`},
		{`1e21`, `1e+21`},
		{`123456789012345678901`, `123456789012345680000`},
		{`0.000001`, `0.000001`},
		{`0.0000001`, `1e-7`},
		{`1E3`, `1000`},
		{`"a\u0041\/\u00e9\n\u0001<>&"`, `"aA/é\n\u0001<>&"`},
		// Keys sort by UTF-16 code units: U+FF61 after U+1F600 (a surrogate pair).
		{`{"\uff61":1,"😀":2,"a":3}`, `{"a":3,"😀":2,"｡":1}`},
	} {
		got, err := Canonical([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("Canonical(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `[1] 2`, `{`, "\"\xff\"", `1e400`, strings.Repeat("[", 100) + strings.Repeat("]", 100)} {
		if _, err := Canonical([]byte(bad)); err == nil {
			t.Errorf("Canonical(%q) accepted", bad)
		}
	}
}

func TestDigestsIgnoreFormatting(t *testing.T) {
	a := Descriptor{Name: "t", Description: "d", InputSchema: json.RawMessage(`{"type":"object","properties":{"p":{"type":"string"}}}`)}
	b := Descriptor{Name: "t", Description: "d", InputSchema: json.RawMessage("{ \"properties\" : {\"p\": {\"type\":\"string\"}},\n \"type\":\"object\"}"),
		Annotations: json.RawMessage("null")}
	da, sa, err := a.Digests()
	if err != nil {
		t.Fatal(err)
	}
	db, sb, _ := b.Digests()
	if da != db || sa != sb {
		t.Errorf("formatting changed the digest: %s %s", da, db)
	}
	for name, c := range map[string]Descriptor{
		"description":  {Name: "t", Description: "d!", InputSchema: a.InputSchema},
		"title":        {Name: "t", Title: "T", Description: "d", InputSchema: a.InputSchema},
		"schema":       {Name: "t", Description: "d", InputSchema: json.RawMessage(`{"type":"object"}`)},
		"outputSchema": {Name: "t", Description: "d", InputSchema: a.InputSchema, OutputSchema: json.RawMessage(`{"type":"object"}`)},
		"annotations":  {Name: "t", Description: "d", InputSchema: a.InputSchema, Annotations: json.RawMessage(`{"readOnlyHint":true}`)},
	} {
		if dc, _, _ := c.Digests(); dc == da {
			t.Errorf("a change of %s kept the digest", name)
		}
	}
	renamed := a
	renamed.Name = "u"
	dr, sr, _ := renamed.Digests()
	if dr == da || sr != sa {
		t.Errorf("rename: digest %s (was %s), shape %s (was %s); want a new digest and the same shape", dr, da, sr, sa)
	}
}

func TestParseToolsList(t *testing.T) {
	for _, src := range []string{
		`{"tools":[{"name":"a","inputSchema":{"type":"object"}}]}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}`,
		`[{"name":"a","description":"x"}]`,
	} {
		tools, err := ParseToolsList([]byte(src))
		if err != nil || len(tools) != 1 || tools[0].Name != "a" {
			t.Errorf("ParseToolsList(%s) = %+v, %v", src, tools, err)
		}
	}
	for src, want := range map[string]string{
		`{"result":{}}`:                  `no "tools" array`,
		`[{"name":"a"},{"name":"a"}]`:    `"a" is listed twice`,
		`[{"description":"x"}]`:          "tool 0 has no name",
		`{"tools":[{"name":1}]}`:         "cannot unmarshal",
		strings.Repeat(" ", 17<<20) + "": "more than",
	} {
		if _, err := ParseToolsList([]byte(src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseToolsList(%.40q) = %v, want %q", src, err, want)
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1.5e300,-0,"\u2028"]}`, `"\ud800"`, `[[[]]]`, `{"a":{"b":{}}}`, `0.1`, `1e-7`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Canonical(raw)
		if err != nil {
			return
		}
		// The canonical form is valid JSON, equal in meaning, and a fixed point.
		if !json.Valid(c) {
			t.Fatalf("Canonical(%q) = %q is not JSON", raw, c)
		}
		again, err := Canonical(c)
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("not a fixed point: %q -> %q (%v)", c, again, err)
		}
	})
}

func FuzzParseToolsList(f *testing.F) {
	f.Add([]byte(`{"tools":[{"name":"a","inputSchema":{"type":"object"},"annotations":{"x":1}}]}`))
	f.Add([]byte(`[{"name":"a"}]`))
	f.Add([]byte(`{"result":{"tools":null}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tools, err := ParseToolsList(raw)
		if err != nil {
			return
		}
		for _, d := range tools {
			if d.Name == "" {
				t.Fatal("accepted a tool without a name")
			}
			_, _, _ = d.Digests()
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":"writ-mcp-manifest/v1","tools":[{"name":"a","digest":"sha256:` + strings.Repeat("0", 64) + `"}],"signature":"AAAA"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseManifest(raw)
		if err != nil {
			return
		}
		if m.Format != ManifestFormat || m.Signature == "" {
			t.Fatalf("accepted %+v", m)
		}
		_ = m.Verify(make([]byte, 32))
	})
}
