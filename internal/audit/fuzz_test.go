package audit_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
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

// FuzzUnmarshalCanonical checks that UnmarshalCanonical gives exactly what
// json.Unmarshal gives, error or event, for any input.
func FuzzUnmarshalCanonical(f *testing.F) {
	for i := range 5 {
		e := fuzzSeedEvent(i)
		e.ID = "evt_01"
		e.Time = time.Date(2026, 1, 2, 3, 4, 5, i*100000000, time.UTC)
		e.Reason = "a \"quoted\" <reason>\n\u2028 \U0001F600 é"
		b, _ := e.MarshalCanonical()
		f.Add(b)
	}
	f.Add([]byte(`{"id":"","time":"0001-01-01T00:00:00Z","type":""}`))
	f.Add([]byte(`{"id":"a","time":"2026-01-01T00:00:00+01:00","type":"x","latency_us":-5}`))
	f.Add([]byte(`{"id":"a","type":"x","time":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":"\u003c\ud83d\ude00\ud800","time":"2026-01-01T00:00:00Z","type":"<"}`))
	f.Add([]byte(`{"id":"a","time":"2026-01-01T00:00:00Z","type":"x","details":{"b":"","a":"1"}}`))
	f.Add([]byte(`{"id":"a","time":"2026-01-01T00:00:00Z","type":"x","task":"t","task":"u","details":{}}`))
	f.Add([]byte("{\"id\":\"\xff\",\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"x\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var want, got audit.Event
		werr := json.Unmarshal(data, &want)
		gerr := got.UnmarshalCanonical(data)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("UnmarshalCanonical error %v, json.Unmarshal error %v", gerr, werr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("UnmarshalCanonical(%q)\n got %#v\nwant %#v", data, got, want)
		}
	})
}

// Every canonical event decodes on the fast path, as it was encoded.
func TestUnmarshalCanonicalRoundTrip(t *testing.T) {
	for i := range 50 {
		e := fuzzSeedEvent(i)
		e.ID, _ = audit.NewEventID(time.Now())
		e.Time = time.Date(2026, 1, 2, 3, 4, 5, i*1000001, time.UTC)
		e.Reason = strings.Repeat("\"<&>\\\t\u2029ü", i%3)
		e.LatencyUS = int64(i - 25)
		if i%4 == 0 {
			e.Details = nil
		}
		b, err := e.MarshalCanonical()
		if err != nil {
			t.Fatal(err)
		}
		var got audit.Event
		if !audit.ParseCanonicalForTest(&got, b) {
			t.Fatalf("the fast path refused a canonical event: %s", b)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip of %s\n got %#v\nwant %#v", b, got, e)
		}
	}
}

func BenchmarkUnmarshalCanonical(b *testing.B) {
	e := fuzzSeedEvent(1)
	e.ID, _ = audit.NewEventID(time.Now())
	e.Time = time.Now().UTC()
	data, _ := e.MarshalCanonical()
	b.Run("canonical", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got audit.Event
			if err := got.UnmarshalCanonical(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got audit.Event
			if err := json.Unmarshal(data, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
