// Package audittest is the audit event recorder tests share: an
// [audit.Emitter] that keeps every event in memory, can be told to refuse
// events (to test that a component fails closed when the log does), and
// answers the questions tests ask of what was recorded.
package audittest

import (
	"context"
	"slices"
	"sync"

	"github.com/writ-dev/writ/internal/audit"
)

// Recorder is an [audit.Emitter] that records events in memory. The zero
// value is ready to use; it is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []audit.Event
	taken  int
	fail   func(audit.Event) error
}

var _ audit.Emitter = (*Recorder)(nil)

// Emit records e, or returns the error FailWith's function gives for it
// (and then records nothing).
func (r *Recorder) Emit(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(e); err != nil {
			return err
		}
	}
	r.events = append(r.events, e)
	return nil
}

// FailWith makes Emit refuse every event for which fn returns an error;
// nil records everything again.
func (r *Recorder) FailWith(fn func(audit.Event) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = fn
}

// FailOn makes Emit refuse events of type t with err.
func (r *Recorder) FailOn(t audit.Type, err error) {
	r.FailWith(func(e audit.Event) error {
		if e.Type == t {
			return err
		}
		return nil
	})
}

// Events returns a copy of every event recorded, oldest first.
func (r *Recorder) Events() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Take returns the events recorded since the last Take.
func (r *Recorder) Take() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.events[r.taken:])
	r.taken = len(r.events)
	return out
}

// OfType returns the events of type t, oldest first.
func (r *Recorder) OfType(t audit.Type) []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.Event
	for _, e := range r.events {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

// Count is the number of events of type t.
func (r *Recorder) Count(t audit.Type) int { return len(r.OfType(t)) }

// Last returns the newest event of type t.
func (r *Recorder) Last(t audit.Type) (audit.Event, bool) {
	evs := r.OfType(t)
	if len(evs) == 0 {
		return audit.Event{}, false
	}
	return evs[len(evs)-1], true
}

// Latest returns the newest event of any type (the zero Event if none).
func (r *Recorder) Latest() audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		return audit.Event{}
	}
	return r.events[len(r.events)-1]
}

// Types returns the type of every event recorded, oldest first.
func (r *Recorder) Types() []audit.Type {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]audit.Type, len(r.events))
	for i, e := range r.events {
		out[i] = e.Type
	}
	return out
}
