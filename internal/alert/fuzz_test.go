package alert

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

// FuzzWebhookCheck: no webhook configuration panics the check, and an
// error never shows the URL's path, query or user info.
func FuzzWebhookCheck(f *testing.F) {
	f.Add("ops", "https://hooks.example.com/services/T0K3N?x=y", "slack", "high")
	f.Add("a", "http://u:p@h/p", "generic", "")
	f.Add("", "%zz", "x", "y")
	f.Fuzz(func(t *testing.T, name, url, format, sev string) {
		w := Webhook{Name: name, URL: url, Format: format, MinSeverity: sev}
		err := w.Check()
		if err == nil {
			return
		}
		if i := strings.Index(url, "://"); i >= 0 {
			rest := url[i+3:]
			if j := strings.IndexAny(rest, "/?@"); j >= 0 && len(rest[j:]) > 6 && strings.Contains(err.Error(), rest[j:]) {
				t.Fatalf("error %q shows the URL's %q", err, rest[j:])
			}
		}
	})
}

// FuzzEval: hostile events do not panic the rules, and whatever they
// raise has a rule, a key and evidence.
func FuzzEval(f *testing.F) {
	f.Add([]byte(`{"id":"e","time":"2026-01-01T00:00:00Z","type":"access.denied","reason":"x is revoked","source":"[::1]:80"}`))
	f.Add([]byte(`{"id":"e","time":"2026-01-01T00:00:00Z","type":"discovery.agent_found","details":{"identified":"false"}}`))
	f.Add([]byte(`{"type":"admin.auth_failed","source":":"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var e audit.Event
		if json.Unmarshal(data, &e) != nil {
			return
		}
		ev := newEvaluator(Config{DenialThreshold: 2, AuthFailThreshold: 2}, decodeCarried(data))
		for i := range 3 {
			e.Time = e.Time.Add(time.Duration(i) * time.Second)
			for _, a := range ev.eval(int64(i), &e) {
				if a.Rule == "" || a.DedupKey == "" || len(a.Evidence) != 1 {
					t.Fatalf("raised %+v", a)
				}
			}
		}
		if b := ev.state(e.Time); json.Unmarshal(b, new(carried)) != nil {
			t.Fatalf("state does not round-trip: %s", b)
		}
	})
}

// FuzzVerifySignature: hostile headers never verify and never panic.
func FuzzVerifySignature(f *testing.F) {
	f.Add("t=1,v1=00")
	f.Add("t=-99999999999,v1=")
	f.Add(",,=,t=")
	now := time.Unix(1000, 0)
	f.Fuzz(func(t *testing.T, header string) {
		if VerifySignature([]byte("secret-secret-secret"), []byte("body"), header, now, time.Hour) == nil {
			if header != Sign([]byte("secret-secret-secret"), []byte("body"), now) && !strings.Contains(header, "v1=") {
				t.Fatalf("header %q verified", header)
			}
		}
	})
}
