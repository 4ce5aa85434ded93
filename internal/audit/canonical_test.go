package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// jsonCanonical is the canonical encoding as first defined: what
// encoding/json writes for the Event type, with the time in UTC.
func jsonCanonical(t *testing.T, e Event) []byte {
	t.Helper()
	e.Time = e.Time.UTC()
	b, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// randomText returns valid UTF-8 heavy in the characters JSON escapes.
func randomText(r *rand.Rand) string {
	alphabet := []rune{'a', 'Z', '0', ' ', '"', '\\', '/', '<', '>', '&', '\b', '\f', '\n', '\r', '\t', 0, 1, 0x1f, 0x7f,
		'é', '日', '\u2028', '\u2029', '\ufffd', 0x10ffff, 0xfeff}
	n := r.IntN(12)
	var b []rune
	for range n {
		b = append(b, alphabet[r.IntN(len(alphabet))])
	}
	return string(b)
}

// TestCanonicalMatchesJSON holds the hand-written encoder to
// encoding/json's output byte for byte, so that events logged before it
// (and any verifier that re-encodes with encoding/json) agree.
func TestCanonicalMatchesJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		e := Event{ID: randomText(r), Type: Type(randomText(r)),
			Time: time.Unix(r.Int64N(1<<34)-1<<33, r.Int64N(1e9)).In(time.FixedZone("x", 3600*(r.IntN(25)-12)))}
		fields := textFields(&e)
		for _, p := range fields[2:] {
			if r.IntN(2) == 0 {
				*p = randomText(r)
			}
		}
		if r.IntN(3) == 0 {
			e.LatencyUS = r.Int64N(1<<40) - 1<<20
		}
		if r.IntN(2) == 0 {
			e.Details = map[string]string{}
			for range r.IntN(5) {
				e.Details[randomText(r)] = randomText(r)
			}
		}
		for _, p := range textFields(&e) {
			if !utf8.ValidString(*p) {
				t.Fatalf("generator made invalid UTF-8")
			}
		}
		got, err := e.MarshalCanonical()
		if err != nil {
			if y := e.Time.UTC().Year(); y >= 0 && y <= 9999 {
				t.Fatalf("MarshalCanonical(%+v): %v", e, err)
			}
			continue
		}
		if want := jsonCanonical(t, e); !bytes.Equal(got, want) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got, want)
		}
		// AppendCanonical appends the same bytes after what b holds.
		prefix := []byte("prefix")
		if app, err := e.AppendCanonical(prefix); err != nil || !bytes.Equal(app, append([]byte("prefix"), got...)) {
			t.Fatalf("AppendCanonical(%q) = %q, %v; want the prefix and %s", "prefix", app, err, got)
		}
		if _, err := DecodeEvent(got); err != nil {
			t.Fatalf("DecodeEvent(%s): %v", got, err)
		}
	}
}

// TestAppendCanonicalError: a refused event leaves the buffer as it was.
func TestAppendCanonicalError(t *testing.T) {
	for name, e := range map[string]Event{
		"invalid UTF-8": {ID: "evt_1", Time: time.Unix(0, 0), Type: AccessAllowed, Reason: "\xff"},
		"year 10000":    {ID: "evt_1", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Type: AccessAllowed},
		"too large":     {ID: "evt_1", Time: time.Unix(0, 0), Type: AccessAllowed, Reason: strings.Repeat("r", MaxEventSize)},
	} {
		b, err := e.AppendCanonical([]byte("kept"))
		if err == nil || string(b) != "kept" {
			t.Errorf("%s: AppendCanonical = %q, %v; want \"kept\" and an error", name, b, err)
		}
		if m, err := e.MarshalCanonical(); err == nil || m != nil {
			t.Errorf("%s: MarshalCanonical = %q, %v; want nil and an error", name, m, err)
		}
	}
}

func BenchmarkMarshalCanonical(b *testing.B) {
	e := Event{ID: "evt_01JD7Q4G3Y6Z8Q2W5E7R9T1Y3U", Time: time.Now(), Type: AccessAllowed,
		SpiffeID: "spiffe://writ.local/agent/team3/kind33", Instance: "inst_333", Task: "task_3333",
		OnBehalfOf: "user3@example.com", Target: "https://api3.example.com/v1/messages", Action: "POST",
		Decision: "allow", Policy: "mail@7", Rule: "send-internal", Credential: "cred_mail",
		Source: "127.0.0.1:43333", Node: "node-1", RequestID: "req_3333", LatencyUS: 333,
		Details: map[string]string{"service": "mail", "method": "POST", "path": "/v1/messages", "status": "200"}}
	b.Run("writ", func(b *testing.B) {
		for b.Loop() {
			e.MarshalCanonical()
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			c := e
			c.Time = c.Time.UTC()
			json.Marshal(&c)
		}
	})
}
