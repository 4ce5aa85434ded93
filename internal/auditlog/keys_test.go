package auditlog

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

// TestFrontKeys checks the fast path of DecodeKeys against a JSON decoder
// on canonical encodings with awkward strings and missing fields.
func TestFrontKeys(t *testing.T) {
	awkward := []string{"", `a"b`, `back\slash`, "tab\tnew\nline", "<&>", "\u2028", "é日本", `\"`, `\\`, "\x01", `","task":"x`}
	for i := range 400 {
		e := audit.Event{ID: "evt_" + awkward[i%len(awkward)] + "1", Time: time.Unix(int64(i), 5).UTC(), Type: audit.Type("t" + awkward[(i/3)%len(awkward)])}
		e.SpiffeID = awkward[(i/2)%len(awkward)]
		if i%5 != 0 {
			e.Instance = awkward[(i/7)%len(awkward)]
		}
		if i%3 != 0 {
			e.Task = awkward[(i/11)%len(awkward)]
		}
		e.Actor, e.Details = "x", map[string]string{"task": "not this one"}
		data, err := e.MarshalCanonical()
		if err != nil {
			t.Fatal(err)
		}
		var want Keys
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		got, ok := frontKeys(data, allKeys)
		if !ok || got != want {
			t.Fatalf("frontKeys(%s) = %+v, %v; want %+v", data, got, ok, want)
		}
		if ty, err := DecodeType(data); err != nil || ty != want.Type {
			t.Fatalf("DecodeType(%s) = %q, %v; want %q", data, ty, err, want.Type)
		}
	}
	for _, bad := range []string{``, `[]`, `{"time":"x","id":"y","type":"z"}`, `{"id":"unterminated`, `{"id":1}`} {
		if _, ok := frontKeys([]byte(bad), allKeys); ok {
			t.Errorf("frontKeys(%s) accepted a non-canonical encoding", bad)
		}
		k, kerr := DecodeKeys([]byte(bad))
		if ty, err := DecodeType([]byte(bad)); ty != k.Type || (err == nil) != (kerr == nil) {
			t.Errorf("DecodeType(%s) = %q, %v; DecodeKeys gives %q, %v", bad, ty, err, k.Type, kerr)
		}
	}
}

// FuzzDecodeKeys: on canonical encodings of events made of the fuzzed
// strings, DecodeKeys returns what encoding/json reads, and DecodeType its
// type; on the fuzzed bytes themselves neither panics, and where both
// succeed they agree. (The fast paths read the front of canonical
// encodings; checking a whole event is audit verify's job.)
func FuzzDecodeKeys(f *testing.F) {
	f.Add("evt_1", string(audit.AccessAllowed), "spiffe://x/a", "", `t"1`, []byte(`{"id":"a","time":"b","type":"c"}`))
	f.Add(`a\b`, "\u2028", "", "i", "", []byte(`{"id":"a","time":"b","type":"c\u0041","spiffe_id":"d"}`))
	f.Fuzz(func(t *testing.T, id, typ, spiffe, instance, task string, raw []byte) {
		k, err := DecodeKeys(raw)
		if ty, terr := DecodeType(raw); terr == nil && err == nil && ty != k.Type {
			t.Fatalf("DecodeType(%q) = %q; DecodeKeys gives %q", raw, ty, k.Type)
		}
		e := audit.Event{ID: id, Time: time.Unix(1, 0).UTC(), Type: audit.Type(typ), SpiffeID: spiffe, Instance: instance, Task: task,
			Details: map[string]string{"task": "not this", "type": "nor this"}}
		data, err := e.MarshalCanonical()
		if err != nil {
			return // not valid UTF-8: never in the log
		}
		var want Keys
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("canonical encoding %q does not decode: %v", data, err)
		}
		if k, err := DecodeKeys(data); err != nil || k != want {
			t.Fatalf("DecodeKeys(%q) = %+v, %v; encoding/json reads %+v", data, k, err, want)
		}
		if ty, err := DecodeType(data); err != nil || ty != want.Type {
			t.Fatalf("DecodeType(%q) = %q, %v; want %q", data, ty, err, want.Type)
		}
	})
}
