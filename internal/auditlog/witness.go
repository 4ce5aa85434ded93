package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Witness is an external party that keeps the log's signed checkpoints, so
// that a rollback of the log (its newest events and checkpoints removed,
// or an older copy of the store restored) shows somewhere the writer of
// the store cannot reach.
//
// Every checkpoint the log signs is handed to every witness in the
// background, in order. A failed delivery is logged and reported to
// [Config.WitnessDone]; it never holds up or fails an append: the log's
// first duty is to record, and a witness that is down must not stop
// enforcement (which fails closed when it cannot record). The next
// checkpoint is delivered as usual; a witness that needs every
// checkpoint can ask the log for consistency proofs between the ones it
// received.
type Witness struct {
	// Name names the witness in logs and metrics.
	Name string
	// Sender delivers a checkpoint; see [FileSender], [HTTPSender] and
	// [CommandSender].
	Sender Sender
	// Key, if set, is the witness's signed-note verifier key. An answer
	// that is the checkpoint cosigned by this key is checked and its
	// signature stored with the checkpoint (shown by `writ audit
	// verify` and the checkpoint endpoint). Without it answers are
	// ignored.
	Key note.Verifier
	// Timeout bounds one delivery. Default 10s.
	Timeout time.Duration
}

// Sender delivers a signed checkpoint (a signed note, see [Checkpoint]) to a
// witness. It returns the witness's answer: the same note cosigned by the
// witness, or nothing.
type Sender interface {
	Send(ctx context.Context, signed []byte) (answer []byte, err error)
}

// maxWitnessQueue bounds the checkpoints waiting for one witness; when a
// witness falls further behind, the oldest are dropped (the newest matter
// most: each one covers all before it).
const maxWitnessQueue = 64

// witnesses delivers checkpoints to the configured witnesses, one
// goroutine per witness so that a slow one holds up no other.
type witnesses struct {
	l      *Log
	queues []*witnessQueue
	wg     sync.WaitGroup

	cosignMu sync.Mutex
	notes    map[int64][]byte // the stored note of each recent size, with the cosignatures added so far
}

type witnessQueue struct {
	w      Witness
	mu     sync.Mutex
	queue  []StoredCheckpoint
	closed bool
	wake   chan struct{}
}

// startWitnesses starts delivering to list; it returns nil if list is
// empty. The goroutines stop when ctx ends or, once their queues are
// empty, after close.
func startWitnesses(ctx context.Context, l *Log, list []Witness) *witnesses {
	if len(list) == 0 {
		return nil
	}
	ws := &witnesses{l: l, notes: map[int64][]byte{}}
	for _, w := range list {
		if w.Timeout <= 0 {
			w.Timeout = 10 * time.Second
		}
		q := &witnessQueue{w: w, wake: make(chan struct{}, 1)}
		ws.queues = append(ws.queues, q)
		ws.wg.Add(1)
		go ws.run(ctx, q)
	}
	return ws
}

// send queues a newly signed checkpoint for every witness.
func (ws *witnesses) send(cp StoredCheckpoint) {
	if ws == nil {
		return
	}
	for _, q := range ws.queues {
		q.mu.Lock()
		q.queue = append(q.queue, cp)
		if n := len(q.queue) - maxWitnessQueue; n > 0 {
			ws.l.log.Warn("audit witness is behind; dropping its oldest checkpoints", "witness", q.w.Name, "dropped", n)
			q.queue = append(q.queue[:0], q.queue[n:]...)
		}
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// close lets every witness deliver what is queued (the final checkpoint
// among it) and waits for them, or until ctx ends.
func (ws *witnesses) close(ctx context.Context) {
	if ws == nil {
		return
	}
	for _, q := range ws.queues {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	done := make(chan struct{})
	go func() {
		ws.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (ws *witnesses) run(ctx context.Context, q *witnessQueue) {
	defer ws.wg.Done()
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-q.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		cp := q.queue[0]
		q.queue = q.queue[1:]
		q.mu.Unlock()
		err := ws.deliver(ctx, q.w, cp)
		if err != nil {
			ws.l.log.Warn("audit witness failed; events are still recorded", "witness", q.w.Name, "size", cp.Size, "error", err)
		} else {
			ws.l.log.Debug("audit checkpoint witnessed", "witness", q.w.Name, "size", cp.Size)
		}
		if f := ws.l.cfg.WitnessDone; f != nil {
			f(q.w.Name, err)
		}
	}
}

// deliver sends cp to w and stores w's cosignature, if it answered with
// one and has a key.
func (ws *witnesses) deliver(ctx context.Context, w Witness, cp StoredCheckpoint) error {
	dctx, cancel := context.WithTimeout(ctx, w.Timeout)
	answer, err := w.Sender.Send(dctx, cp.Note)
	cancel()
	if err != nil {
		return fmt.Errorf("deliver checkpoint of size %d: %w", cp.Size, err)
	}
	if w.Key == nil || len(bytes.TrimSpace(answer)) == 0 {
		return nil
	}
	return ws.cosigned(ctx, w, cp, answer)
}

// cosigned checks that answer is cp's note signed by w.Key and stores cp
// with that signature added to the ones it has.
func (ws *witnesses) cosigned(ctx context.Context, w Witness, cp StoredCheckpoint, answer []byte) error {
	ws.cosignMu.Lock()
	defer ws.cosignMu.Unlock()
	base := ws.notes[cp.Size]
	if base == nil {
		base = cp.Note
	}
	merged, err := MergeCosignature(base, ws.l.trusted, w.Key, answer)
	if err != nil {
		return err
	}
	stored := StoredCheckpoint{Size: cp.Size, Note: merged, CreatedAt: cp.CreatedAt}
	if err := ws.l.b.PutCheckpoint(ctx, stored); err != nil {
		return fmt.Errorf("store cosigned checkpoint of size %d: %w", cp.Size, err)
	}
	ws.notes[cp.Size] = merged
	for size := range ws.notes {
		if len(ws.notes) > maxWitnessQueue && size < cp.Size {
			delete(ws.notes, size)
		}
	}
	ws.l.stateMu.Lock()
	if ws.l.latest.Size == cp.Size {
		ws.l.latest = stored
	}
	ws.l.stateMu.Unlock()
	return nil
}

// MergeCosignature checks that answer, a witness's reply, is the
// checkpoint signed by note base signed with the witness's key, and
// returns base with the witness's signature added (replacing an earlier
// one by the same key). base must be signed by a trusted log key.
func MergeCosignature(base []byte, trusted note.Verifiers, key note.Verifier, answer []byte) ([]byte, error) {
	if len(answer) > maxCheckpointSize {
		return nil, fmt.Errorf("witness answer of %d bytes is over the limit of %d", len(answer), maxCheckpointSize)
	}
	signed, err := note.Open(answer, note.VerifierList(key))
	if err != nil {
		return nil, fmt.Errorf("witness answer is not the checkpoint signed by its key %s+%08x: %v", key.Name(), key.KeyHash(), err)
	}
	n, err := note.Open(base, trusted)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	if signed.Text != n.Text {
		return nil, errors.New("witness signed a different text than the checkpoint it was sent")
	}
	return addSignatures(n, signed.Sigs)
}

// addSignatures returns n encoded with sigs added, each replacing an
// earlier signature by the same key.
func addSignatures(n *note.Note, sigs []note.Signature) ([]byte, error) {
	replaced := func(s note.Signature) bool {
		for _, t := range sigs {
			if s.Name == t.Name && s.Hash == t.Hash {
				return true
			}
		}
		return false
	}
	out := &note.Note{Text: n.Text}
	for _, s := range n.Sigs {
		if !replaced(s) {
			out.Sigs = append(out.Sigs, s)
		}
	}
	for _, s := range n.UnverifiedSigs {
		if !replaced(s) {
			out.UnverifiedSigs = append(out.UnverifiedSigs, s)
		}
	}
	out.UnverifiedSigs = append(out.UnverifiedSigs, sigs...)
	msg, err := note.Sign(out)
	if err != nil {
		return nil, fmt.Errorf("add cosignature: %w", err)
	}
	return msg, nil
}

// Cosignatures returns the signatures on a signed checkpoint that are not
// by one of the log's trusted keys, as "NAME+HASH", and which of them the
// witness keys verify.
func Cosignatures(msg []byte, trusted note.Verifiers, witnessKeys []note.Verifier) (names []string, verified []bool, err error) {
	n, err := note.Open(msg, trusted)
	if err != nil {
		return nil, nil, fmt.Errorf("open checkpoint: %w", err)
	}
	var wl note.Verifiers = note.VerifierList(witnessKeys...)
	for _, s := range n.UnverifiedSigs {
		names = append(names, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
		ok := false
		if v, err := wl.Verifier(s.Name, s.Hash); err == nil {
			_, err := note.Open(msg, note.VerifierList(v))
			ok = err == nil
		}
		verified = append(verified, ok)
	}
	return names, verified, nil
}
