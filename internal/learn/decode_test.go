package learn

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

// slowDecode is what the decoder must agree with: encoding/json.
func slowDecode(data []byte) (event, error) {
	var j jsonEvent
	if err := json.Unmarshal(data, &j); err != nil {
		return event{}, err
	}
	ev := event{Time: j.Time, Type: j.Type, SpiffeID: j.SpiffeID, Instance: j.Instance, Task: j.Task, OnBehalfOf: j.OnBehalfOf,
		Target: j.Target, Decision: j.Decision, Policy: j.Policy, Rule: j.Rule, Reason: j.Reason, Source: j.Source, Node: j.Node}
	for k, v := range j.Details {
		ev.D.set(k, v)
	}
	return ev, nil
}

func sameEvent(a, b event) bool {
	t1, t2 := a.Time, b.Time
	a.Time, b.Time = time.Time{}, time.Time{}
	return t1.Equal(t2) && a == b
}

func canonicalSeeds(t testing.TB) [][]byte {
	evs := []audit.Event{
		{ID: "e1", Time: time.Date(2026, 5, 1, 12, 0, 0, 500_000_000, time.UTC), Type: audit.AccessAllowed, SpiffeID: "spiffe://writ.local/a",
			Instance: "inst_1", Task: "t", Decision: "allow", Policy: "p@1", Rule: "r", Source: "127.0.0.1:1", Node: "n", LatencyUS: 42,
			Details: map[string]string{"method": "GET", "path": "/x/ü/<b>&", "service": "s", "args": `{"q":"a\"b"}`, "tool": "t"}},
		{ID: "e2", Time: time.Date(2026, 5, 1, 0, 0, 0, 1, time.UTC), Type: audit.TokenMinted, SpiffeID: "spiffe://writ.local/b",
			Target: "aud", Details: map[string]string{"scope": "a b"}},
		{ID: "e3", Time: time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC), Type: audit.TaskClosed, Reason: "line\nbreak \u2028"},
	}
	var out [][]byte
	for _, e := range evs {
		b, err := e.MarshalCanonical()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestDecoderCanonical: the decoder reads canonical events exactly as
// encoding/json does, through its fast path where there are no escapes.
func TestDecoderCanonical(t *testing.T) {
	dc := newDecoder()
	for _, data := range canonicalSeeds(t) {
		var got event
		ok, err := dc.decode(data, &got, nil)
		want, werr := slowDecode(data)
		if !ok || err != nil || werr != nil || !sameEvent(got, want) {
			t.Fatalf("%s:\n got %+v (%v %v)\nwant %+v", data, got, ok, err, want)
		}
	}
	// The fast path takes an unescaped canonical event.
	var ev event
	if ok, complete := dc.fast(canonicalSeeds(t)[1], &ev, nil); !ok || !complete || ev.D.Scope != "a b" {
		t.Fatalf("fast path refused a canonical event: %+v", ev)
	}
	// want stops at the type.
	if ok, err := dc.decode(canonicalSeeds(t)[1], &ev, isAccess); ok || err != nil {
		t.Fatalf("a token event passed isAccess: %v %v", ok, err)
	}
}

// FuzzDecoder: whatever the bytes, the decoder agrees with encoding/json
// (both refuse, or both give the same event).
func FuzzDecoder(f *testing.F) {
	for _, s := range canonicalSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte(`{"id":"x","time":"2026-02-31T00:00:00Z","type":"access.allowed"}`))
	f.Add([]byte(`{"id":"x","time":"2026-05-01T00:00:00.1234567891Z","type":"access.allowed"}`))
	f.Add([]byte(`{"ID":"x","Time":"2026-05-01T00:00:00Z","TYPE":"access.allowed","details":{"path":"/\u00e9"}}`))
	f.Add([]byte(`{"id":"x","time":"2026-05-01T00:00:00Z","type":"access.allowed","details":{"path":"/a","path":"/b"}} `))
	f.Add([]byte("{\"id\":\"x\",\"time\":\"2026-05-01T00:00:00Z\",\"type\":\"a\xff\"}"))
	f.Add([]byte(`{"id":"x","time":"2026-05-01T00:00:00+01:00","type":"t","latency_us":-3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got event
		ok, err := newDecoder().decode(data, &got, nil)
		want, werr := slowDecode(data)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decoder error %v, encoding/json %v", err, werr)
		}
		if err == nil && (!ok || !sameEvent(got, want)) {
			t.Fatalf("decoder %+v, encoding/json %+v", got, want)
		}
	})
}
