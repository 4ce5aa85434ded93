package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/writ-dev/writ/internal/audit"
)

// durabilitySink records the durability each event type was emitted with.
type durabilitySink struct {
	*eventSink
	mu  sync.Mutex
	got map[audit.Type][]audit.Durability
}

func (s *durabilitySink) EmitWith(ctx context.Context, e audit.Event, d audit.Durability) error {
	s.mu.Lock()
	s.got[e.Type] = append(s.got[e.Type], d)
	s.mu.Unlock()
	return s.Emit(ctx, e)
}

// TestDecisionDurability: the access.allowed event that precedes
// forwarding is emitted with Config.DecisionDurability, and Synced when
// it is not set.
func TestDecisionDurability(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	for _, want := range []audit.Durability{audit.Synced, audit.Written} {
		var sink *durabilitySink
		f := newFixture(t, up.URL, "", func(c *Config) {
			sink = &durabilitySink{eventSink: c.Emitter.(*eventSink), got: map[audit.Type][]audit.Durability{}}
			c.Emitter, c.DecisionDurability = sink, want
		})
		if resp, body := f.get(t, "/svc/up/x"); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		sink.mu.Lock()
		got := sink.got[audit.AccessAllowed]
		sink.mu.Unlock()
		if len(got) != 1 || got[0] != want {
			t.Errorf("DecisionDurability %v: access.allowed emitted with %v", want, got)
		}
	}
}
