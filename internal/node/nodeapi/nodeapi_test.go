package nodeapi_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/node/nodeapi"
)

func TestReader(t *testing.T) {
	in := `{"type":"snapshot","seq":3,"snapshot":{"entries":[],"revocations":[],"resources":null,"bundle":null}}
{"type":"change","seq":4,"change":{"seq":4,"kind":"entry","key":"a","op":"delete","at":"2026-12-02T12:00:00Z"}}
{"type":"heartbeat","seq":4,"time":"2026-12-02T12:00:01Z"}
`
	r := nodeapi.NewReader(strings.NewReader(in))
	var types []string
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, m.Type)
	}
	if strings.Join(types, ",") != "snapshot,change,heartbeat" {
		t.Errorf("read %v", types)
	}
	for name, line := range map[string]string{
		"unknown type":      `{"type":"exec","seq":1}`,
		"negative seq":      `{"type":"heartbeat","seq":-1}`,
		"empty snapshot":    `{"type":"snapshot","seq":1}`,
		"change without":    `{"type":"change","seq":1}`,
		"mismatched seq":    `{"type":"change","seq":2,"change":{"seq":1,"kind":"entry","op":"put"}}`,
		"unknown operation": `{"type":"change","seq":1,"change":{"seq":1,"kind":"entry","op":"drop"}}`,
		"not json":          `{"type":`,
	} {
		if _, err := nodeapi.DecodeMessage([]byte(line)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeMessage: whatever a server (or a man in the middle that broke
// nothing else) sends, decoding answers without panicking, and what it
// accepts re-encodes to a message it accepts again.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"type":"heartbeat","seq":4,"time":"2026-12-02T12:00:01Z"}`))
	f.Add([]byte(`{"type":"change","seq":4,"change":{"seq":4,"kind":"revocation","key":"spiffe_id/x","op":"put","body":"e30="}}`))
	f.Add([]byte(`{"type":"snapshot","seq":1,"snapshot":{"entries":[{"name":"a","selectors":[{"type":"unix","value":"uid:1"}]}]}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := nodeapi.DecodeMessage(line)
		if err != nil {
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		if _, err := nodeapi.DecodeMessage(b); err != nil {
			t.Fatalf("accepted %q but not its re-encoding %q: %v", line, b, err)
		}
	})
}
