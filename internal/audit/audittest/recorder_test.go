package audittest_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
)

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	var r audittest.Recorder
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { r.Emit(ctx, audit.Event{Type: audit.TokenMinted}) })
	}
	wg.Wait()
	r.Emit(ctx, audit.Event{Type: audit.TaskOpened, Task: "t1"})
	if r.Count(audit.TokenMinted) != 10 || len(r.Events()) != 11 {
		t.Fatalf("recorded %d events, %d minted", len(r.Events()), r.Count(audit.TokenMinted))
	}
	if e, ok := r.Last(audit.TaskOpened); !ok || e.Task != "t1" {
		t.Errorf("Last = %+v, %v", e, ok)
	}
	if _, ok := r.Last(audit.TaskClosed); ok {
		t.Error("Last found an event never recorded")
	}
	if e := r.Latest(); e.Type != audit.TaskOpened {
		t.Errorf("Latest = %+v", e)
	}
	if got := r.Take(); len(got) != 11 {
		t.Errorf("first Take = %d events", len(got))
	}
	boom := errors.New("audit store unavailable")
	r.FailOn(audit.TaskClosed, boom)
	if err := r.Emit(ctx, audit.Event{Type: audit.TaskClosed}); !errors.Is(err, boom) {
		t.Errorf("Emit of a refused type = %v", err)
	}
	if err := r.Emit(ctx, audit.Event{Type: audit.TaskOpened}); err != nil {
		t.Errorf("Emit of another type = %v", err)
	}
	if got := r.Take(); len(got) != 1 || got[0].Type != audit.TaskOpened {
		t.Errorf("Take after a refusal = %+v", got)
	}
	if !slices.Equal(r.Types()[10:], []audit.Type{audit.TaskOpened, audit.TaskOpened}) {
		t.Errorf("Types = %v", r.Types())
	}
	r.FailWith(nil)
	if err := r.Emit(ctx, audit.Event{Type: audit.TaskClosed}); err != nil {
		t.Errorf("Emit after FailWith(nil) = %v", err)
	}
}
