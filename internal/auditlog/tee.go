package auditlog

import (
	"context"

	"github.com/writ-dev/writ/internal/audit"
)

var _ audit.BatchEmitter = Tee{}

// Tee records each event in Durable and, once that succeeded, in Also
// (typically a SlogEmitter at debug level). An error from Durable is
// returned and Also is skipped; Also's errors are ignored.
type Tee struct {
	Durable audit.Emitter
	Also    audit.Emitter
}

// Emit implements Emitter. When Durable is a *Log, Also sees the event as
// stored, with its id and time filled in.
func (t Tee) Emit(ctx context.Context, e audit.Event) error {
	return t.EmitWith(ctx, e, audit.Synced)
}

// EmitWith implements [audit.DurabilityEmitter].
func (t Tee) EmitWith(ctx context.Context, e audit.Event, d audit.Durability) error {
	if l, ok := t.Durable.(*Log); ok {
		en, err := l.AppendWith(ctx, e, d)
		if err != nil {
			return err
		}
		e = en.Event
	} else if err := audit.EmitWith(ctx, t.Durable, e, d); err != nil {
		return err
	}
	t.Also.Emit(ctx, e)
	return nil
}

// EmitBatch implements [audit.BatchEmitter]. Also sees the events Durable
// recorded.
func (t Tee) EmitBatch(ctx context.Context, es []audit.Event) error {
	if l, ok := t.Durable.(*Log); ok {
		entries, err := l.AppendBatch(ctx, es, audit.Synced)
		for _, en := range entries {
			if en.ID != "" {
				t.Also.Emit(ctx, en.Event)
			}
		}
		return err
	}
	err := audit.EmitBatch(ctx, t.Durable, es)
	if err == nil {
		for _, e := range es {
			t.Also.Emit(ctx, e)
		}
	}
	return err
}
