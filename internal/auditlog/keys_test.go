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
		got, ok := frontKeys(data)
		if !ok || got != want {
			t.Fatalf("frontKeys(%s) = %+v, %v; want %+v", data, got, ok, want)
		}
	}
	for _, bad := range []string{``, `[]`, `{"time":"x","id":"y","type":"z"}`, `{"id":"unterminated`, `{"id":1}`} {
		if _, ok := frontKeys([]byte(bad)); ok {
			t.Errorf("frontKeys(%s) accepted a non-canonical encoding", bad)
		}
	}
}
