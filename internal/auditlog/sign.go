package auditlog

import (
	"context"
	"strconv"

	"github.com/writ-dev/writ/internal/audit"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint signs a checkpoint of the log as it is now, unless the latest
// checkpoint already covers every event, and returns the latest checkpoint.
func (l *Log) Checkpoint(ctx context.Context) (StoredCheckpoint, Checkpoint, error) {
	ch := make(chan cpResult, 1)
	select {
	case l.cpReqs <- ch:
	case <-l.done:
		return StoredCheckpoint{}, Checkpoint{}, ErrClosed
	case <-ctx.Done():
		return StoredCheckpoint{}, Checkpoint{}, ctx.Err()
	}
	select {
	case r := <-ch:
		return r.stored, r.cp, r.err
	case <-ctx.Done():
		return StoredCheckpoint{}, Checkpoint{}, ctx.Err()
	}
}

// checkpointIfNeeded signs a checkpoint unless the latest one covers
// every event, and returns the latest checkpoint. Unless final, the new
// checkpoint is also recorded in the log as an audit.checkpoint event.
func (l *Log) checkpointIfNeeded(final bool) (StoredCheckpoint, Checkpoint, error) {
	l.stateMu.Lock()
	latest, latestCP := l.latest, l.latestCP
	l.stateMu.Unlock()
	if latest.Note != nil && l.tree.size == latestCP.Size {
		return latest, latestCP, nil
	}
	stored, cp, err := l.checkpoint(l.ctx, !final)
	if err != nil {
		l.log.Error("audit checkpoint failed", "size", l.tree.size, "error", err)
	}
	return stored, cp, err
}

// checkpoint signs and stores a checkpoint of the tree as it is and, if
// record is set, appends an audit.checkpoint event carrying it (which the
// next checkpoint covers). Only the writer goroutine (or Open, before it
// starts) calls it.
func (l *Log) checkpoint(ctx context.Context, record bool) (StoredCheckpoint, Checkpoint, error) {
	cp := Checkpoint{Origin: l.origin, Size: l.tree.size, Hash: l.tree.root()}
	msg, err := SignCheckpoint(cp, l.signer)
	if err != nil {
		return StoredCheckpoint{}, cp, err
	}
	stored := StoredCheckpoint{Size: cp.Size, Note: msg, CreatedAt: l.now().UTC()}
	if err := l.b.PutCheckpoint(ctx, stored); err != nil {
		return StoredCheckpoint{}, cp, err
	}
	l.stateMu.Lock()
	l.latest, l.latestCP = stored, cp
	l.stateMu.Unlock()
	l.since = 0
	l.log.Debug("audit checkpoint signed", "size", cp.Size, "root", cp.Hash.String())
	l.publish(msg)
	l.witnesses.send(stored)
	if record {
		e := audit.Event{
			Time:   stored.CreatedAt,
			Type:   audit.AuditCheckpoint,
			Actor:  "writ",
			Target: l.origin,
			Details: map[string]string{
				"size":       strconv.FormatInt(cp.Size, 10),
				"root":       cp.Hash.String(),
				"checkpoint": string(msg),
			},
		}
		if err := l.writeInternal(e); err != nil {
			// The checkpoint itself is stored; only its copy in the
			// event stream is missing.
			l.log.Warn("record audit checkpoint event", "size", cp.Size, "error", err)
		}
	}
	return stored, cp, nil
}

// writeInternal appends an event produced by the log itself, from the
// writer goroutine.
func (l *Log) writeInternal(e audit.Event) error {
	id, err := audit.NewEventID(e.Time)
	if err != nil {
		return err
	}
	e.ID = id
	data, err := e.MarshalCanonical()
	if err != nil {
		return err
	}
	return l.write([]*request{{e: e, data: data, leaf: tlog.RecordHash(data), done: make(chan result, 1)}})
}
