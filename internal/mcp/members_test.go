package mcp

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"testing"
)

// member is one key and value members or the reference reading found.
type member struct {
	key string
	val string
}

// referenceMembers reads the members of the JSON object data with
// encoding/json's Decoder, token by token: what members must agree with.
func referenceMembers(data []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var out []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, ok := t.(string)
		if !ok || slices.ContainsFunc(out, func(m member) bool { return m.key == key }) {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, member{key, string(v)})
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return out, true
}

func readMembers(data []byte) ([]member, bool) {
	var out []member
	err := members(data, func(key string, val []byte) error {
		out = append(out, member{key, string(val)})
		return nil
	})
	if err != nil {
		return nil, false
	}
	return out, true
}

func TestMembers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []member
		ok   bool
	}{
		{`{}`, nil, true},
		{` { } `, nil, true},
		{`{"a":1}`, []member{{"a", "1"}}, true},
		{"{\n\t\"a\" :\r [1, {\"b\":\"]}\"}] ,\"c\":null}\n", []member{{"a", `[1, {"b":"]}"}]`}, {"c", "null"}}, true},
		{`{"a":"x\"y\\"}`, []member{{"a", `"x\"y\\"`}}, true},
		{`{"\u0069d":1}`, []member{{"id", "1"}}, true},
		{`{"a\\":1}`, []member{{`a\`, "1"}}, true},
		{`{"a":-1.5e3,"b":true,"c":false}`, []member{{"a", "-1.5e3"}, {"b", "true"}, {"c", "false"}}, true},
		{`{"a":1,"a":2}`, nil, false},
		{`{"id":1,"\u0069d":2}`, nil, false},
		{`{"a":1}{}`, nil, false},
		{`{"a":1} x`, nil, false},
		{`{"a":1,}`, nil, false},
		{`{"a" 1}`, nil, false},
		{`[{"a":1}]`, nil, false},
		{`"a"`, nil, false},
		{``, nil, false},
		{`{"a":01}`, nil, false},
		{"{\"a\":\"\x01\"}", nil, false},
		{`{"a":[1,2}`, nil, false},
	} {
		got, ok := readMembers([]byte(tc.in))
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("members(%q) = %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
		ref, refOK := referenceMembers([]byte(tc.in))
		if ok != refOK || !slices.Equal(got, ref) {
			t.Errorf("members(%q) = %v %v; encoding/json's Decoder reads %v %v", tc.in, got, ok, ref, refOK)
		}
	}
}

func TestElements(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{`[]`, nil, true},
		{` [ 1 , "a,]" , {"b":[2]} ] `, []string{"1", `"a,]"`, `{"b":[2]}`}, true},
		{`null`, nil, false},
		{`{}`, nil, false},
	} {
		var got []string
		err := elements([]byte(tc.in), func(v []byte) error {
			got = append(got, string(v))
			return nil
		})
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("elements(%q) = %q %v, want %q %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzMembers: members reads every input exactly as encoding/json's
// Decoder does, token by token: the same keys, the same values, and the
// same refusals.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":"writ-1","result":{"content":[{"type":"text","text":"hi"}]}}`,
		`{"a":1,"a":2}`,
		`{"\u0069d":"x","b":[{"c":"\"}"}]}`,
		"{\"a\xff\":1}",
		`{"a":1} {}`,
		` {"a" : [ ] , "b" : { } } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := readMembers(data)
		ref, refOK := referenceMembers(data)
		if ok != refOK || ok && !slices.Equal(got, ref) {
			t.Fatalf("members(%q) = %q %v; encoding/json's Decoder reads %q %v", data, got, ok, ref, refOK)
		}
		for _, m := range got {
			if !json.Valid([]byte(m.val)) {
				t.Fatalf("members(%q) gave the value %q, which is not JSON", data, m.val)
			}
			if m.val[0] == '[' {
				var want []json.RawMessage
				if err := json.Unmarshal([]byte(m.val), &want); err != nil {
					t.Fatal(err)
				}
				var els []string
				if err := elements([]byte(m.val), func(v []byte) error {
					els = append(els, string(v))
					return nil
				}); err != nil {
					t.Fatalf("elements(%q): %v", m.val, err)
				}
				if len(els) != len(want) {
					t.Fatalf("elements(%q) = %q; encoding/json reads %d elements", m.val, els, len(want))
				}
				for i := range els {
					if !bytes.Equal(bytes.TrimSpace(want[i]), []byte(els[i])) {
						t.Fatalf("elements(%q)[%d] = %q; encoding/json reads %q", m.val, i, els[i], want[i])
					}
				}
			}
		}
	})
}
