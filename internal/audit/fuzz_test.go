package audit_test

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

// fuzzSeedEvent returns a typical access event, varied by i.
func fuzzSeedEvent(i int) audit.Event {
	return audit.Event{
		Type:      audit.AccessAllowed,
		SpiffeID:  "spiffe://writ.local/agent/mail" + strconv.Itoa(i%3),
		Instance:  "inst_" + strconv.Itoa(i%7),
		Task:      "task_" + strconv.Itoa(i%5),
		Target:    "https://api.example.com/v1/messages",
		Action:    "POST",
		Decision:  "allow",
		Policy:    "mail@3",
		Rule:      "send",
		RequestID: "req_" + strconv.Itoa(i),
		LatencyUS: int64(i + 1),
		Details:   map[string]string{"n": strconv.Itoa(i)},
	}
}

// FuzzDecodeEvent checks that DecodeEvent never panics and accepts only
// canonical encodings: whatever it accepts re-encodes to the same bytes.
func FuzzDecodeEvent(f *testing.F) {
	for i := range 5 {
		e := fuzzSeedEvent(i)
		e.ID = "evt_01"
		e.Time = time.Date(2026, 1, 2, 3, 4, 5, i*100000000, time.UTC)
		b, _ := e.MarshalCanonical()
		f.Add(b)
	}
	f.Add([]byte(`{"id":"","time":"0001-01-01T00:00:00Z","type":""}`))
	f.Add([]byte(`{"id":"a","time":"2026-01-01T00:00:00+01:00","type":"x"}`))
	f.Add([]byte(`{"id":"a","type":"x","time":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":"\u003c","time":"2026-01-01T00:00:00Z","type":"<"}`))
	f.Add([]byte(`{"id":"a","time":"2026-01-01T00:00:00Z","type":"x","details":{"b":"","a":"1"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := audit.DecodeEvent(data)
		if err != nil {
			return
		}
		again, err := e.MarshalCanonical()
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("DecodeEvent accepted a non-canonical encoding:\n in: %q\nout: %q", data, again)
		}
	})
}
