package auditlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"golang.org/x/mod/sumdb/tlog"
)

type request struct {
	e     audit.Event
	data  []byte // canonical encoding of e
	leaf  tlog.Hash
	level audit.Durability
	index int64 // set once written
	done  chan result
}

type result struct {
	index int64
	err   error
}

type cpResult struct {
	stored StoredCheckpoint
	cp     Checkpoint
	err    error
}

// Emit implements [audit.Emitter]: it appends e and returns once e is durable.
func (l *Log) Emit(ctx context.Context, e audit.Event) error {
	_, err := l.Append(ctx, e)
	return err
}

// EmitWith implements [audit.DurabilityEmitter].
func (l *Log) EmitWith(ctx context.Context, e audit.Event, d audit.Durability) error {
	_, err := l.AppendWith(ctx, e, d)
	return err
}

// EmitBatch implements [audit.BatchEmitter]: each event is synced before it
// returns.
func (l *Log) EmitBatch(ctx context.Context, es []audit.Event) error {
	_, err := l.AppendBatch(ctx, es, audit.Synced)
	return err
}

// Append adds e to the log and returns it as stored once it is durable.
// It fills in an empty ID ("evt_" and a ULID) and a zero Time (now, UTC),
// replaces invalid UTF-8 in text fields, and requires a Type. A Time more
// than TimeSkew/2 away from now is moved to details["reported_time"] and
// replaced by now. On error the
// event must be treated as not recorded (if ctx ended first it may still
// be written later).
func (l *Log) Append(ctx context.Context, e audit.Event) (Entry, error) {
	return l.AppendWith(ctx, e, audit.Synced)
}

// AppendWith is Append with the given durability: with Written it
// returns before the event's group commit is synced (see [audit.Written]).
func (l *Log) AppendWith(ctx context.Context, e audit.Event, d audit.Durability) (Entry, error) {
	req, err := l.prepare(e, d)
	if err != nil {
		return Entry{}, err
	}
	if err := l.submit(ctx, req); err != nil {
		return Entry{}, err
	}
	return req.wait(ctx)
}

// AppendBatch appends es in order, as Append does each, so that they can
// share one group commit, and returns them as stored once every one is as
// durable as d. An error means that some of them may not be recorded (a
// failure of one event does not stop the others).
func (l *Log) AppendBatch(ctx context.Context, es []audit.Event, d audit.Durability) ([]Entry, error) {
	reqs := make([]*request, len(es))
	for i, e := range es {
		var err error
		if reqs[i], err = l.prepare(e, d); err != nil {
			return nil, err
		}
	}
	if err := l.submit(ctx, reqs...); err != nil {
		return nil, err
	}
	entries := make([]Entry, len(reqs))
	var errs []error
	for i, r := range reqs {
		en, err := r.wait(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		entries[i] = en
	}
	return entries, errors.Join(errs...)
}

// prepare stamps, checks and encodes e for appending (see Append).
func (l *Log) prepare(e audit.Event, d audit.Durability) (*request, error) {
	if e.Type == "" {
		return nil, errors.New("append audit event: type is empty")
	}
	now := l.now()
	if e.Time.IsZero() {
		e.Time = now
	} else if d := e.Time.Sub(now); d > TimeSkew/2 || d < -TimeSkew/2 {
		// Searches by time rely on times following the log's order
		// (see TimeSkew): stamp it now and keep the reported time.
		d := make(map[string]string, len(e.Details)+1)
		maps.Copy(d, e.Details)
		d["reported_time"] = e.Time.UTC().Format(time.RFC3339Nano)
		e.Details, e.Time = d, now
	}
	e.Time = e.Time.UTC().Round(0)
	if e.ID == "" {
		id, err := audit.NewEventID(e.Time)
		if err != nil {
			return nil, fmt.Errorf("append audit event: %w", err)
		}
		e.ID = id
	}
	e.Sanitize()
	data, err := e.MarshalCanonical()
	if err != nil {
		return nil, fmt.Errorf("append audit event %s: %w", e.Type, err)
	}
	return &request{e: e, data: data, leaf: tlog.RecordHash(data), level: d, done: make(chan result, 1)}, nil
}

// submit hands reqs to the writer, in order. If ctx ends first, the
// requests already handed over may still be written.
func (l *Log) submit(ctx context.Context, reqs ...*request) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	for i, r := range reqs {
		select {
		case l.reqs <- r:
		case <-ctx.Done():
			if len(reqs) > 1 {
				return fmt.Errorf("append %d audit events: %w (%d of them may still be recorded)", len(reqs), ctx.Err(), i)
			}
			return fmt.Errorf("append audit event %s: %w", r.e.Type, ctx.Err())
		}
	}
	return nil
}

// wait returns req's result once the writer (or syncer) answered.
func (req *request) wait(ctx context.Context) (Entry, error) {
	select {
	case res := <-req.done:
		if res.err != nil {
			return Entry{}, fmt.Errorf("append audit event %s: %w", req.e.Type, res.err)
		}
		return Entry{Index: res.index, Event: req.e}, nil
	case <-ctx.Done():
		return Entry{}, fmt.Errorf("append audit event %s: %w (it may still be recorded)", req.e.Type, ctx.Err())
	}
}
