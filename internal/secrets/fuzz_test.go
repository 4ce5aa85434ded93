package secrets

import (
	"bytes"
	"encoding/json"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	for _, tc := range positives() {
		f.Add([]byte(tc.text))
	}
	for _, s := range []string{
		"", "password=", "postgres://a:b@", "Bearer ", "-----BEGIN PRIVATE KEY-----",
		`{"password": "hunter2hunter2!", "list": ["ghp_` + fake("f", alnum, 36) + `"]}`,
		"api_key=" + fake("k", alnum, 30) + " api_key=" + fake("k", alnum, 30),
		"\xff\xfe password=\x00abc123456",
	} {
		f.Add([]byte(s))
	}
}

// FuzzFind checks that Find never panics and returns ordered,
// non-overlapping spans inside the input.
func FuzzFind(f *testing.F) {
	fuzzSeeds(f)
	d := testDetector(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		last := 0
		for _, fd := range d.Find(data) {
			if fd.Start < last || fd.End <= fd.Start || fd.End > len(data) {
				t.Fatalf("span [%d,%d) after %d in %d bytes", fd.Start, fd.End, last, len(data))
			}
			if fd.Line < 1 || fd.Column < 1 {
				t.Fatalf("position %d:%d", fd.Line, fd.Column)
			}
			last = fd.End
		}
	})
}

// FuzzRedact checks that redaction removes every found value (of at least
// minEchoLen bytes, shorter ones may occur as ordinary text elsewhere),
// leaves nothing to find, and is idempotent.
func FuzzRedact(f *testing.F) {
	fuzzSeeds(f)
	d := testDetector(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		out, fs := d.Redact(data)
		for _, fd := range fs {
			if v := data[fd.Start:fd.End]; len(v) >= minEchoLen && bytes.Contains(out, v) {
				t.Fatalf("Redact left the value of %s: %q in %q", fd.RuleID, v, out)
			}
		}
		if more := d.Find(out); len(more) != 0 {
			t.Fatalf("Find(Redact(x)) = %+v on %q", more, out)
		}
		again, more := d.Redact(out)
		if !bytes.Equal(again, out) || len(more) != 0 {
			t.Fatalf("Redact is not idempotent: %q -> %q", out, again)
		}
	})
}

// FuzzRedactJSON checks that redacting a JSON document returns valid JSON
// and is idempotent, and that anything not JSON is refused.
func FuzzRedactJSON(f *testing.F) {
	fuzzSeeds(f)
	f.Add([]byte(`{"a":[1,{"b":"c"}],"d":null}`))
	d := testDetector(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		out, _, err := d.RedactJSON(data)
		if err != nil {
			if json.Valid(data) {
				t.Fatalf("RedactJSON refused valid JSON %q: %v", data, err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("RedactJSON(%q) = %q, not JSON", data, out)
		}
		again, more, err := d.RedactJSON(out)
		if err != nil || !bytes.Equal(again, out) || len(more) != 0 {
			t.Fatalf("RedactJSON not idempotent: %q -> %q (%v, %+v)", out, again, err, more)
		}
	})
}
