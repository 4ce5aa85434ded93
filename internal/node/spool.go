package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/fsync"
)

// Spool is the node's durable audit emitter: an event is appended to a
// file and synced before Emit returns (so an event the node acknowledged
// survives a crash and a lost link), and a sender delivers the spooled
// events to the server in batches, in order, and moves its durable mark
// only after the server acknowledged a batch as recorded. A resent batch
// (the acknowledgement was lost) is deduplicated by event id on the
// server.
//
// Files in the spool directory: events (JSON lines) and sent (the byte
// offset in events up to which the server acknowledged). When every
// event was acknowledged the file is truncated.
type Spool struct {
	dir string
	now func() time.Time

	mu     sync.Mutex
	f      *os.File
	size   int64
	sent   int64
	wake   chan struct{}
	failed error

	// fault, when set, is called at the fault points of EmitBatch
	// (fault.go).
	fault func(point string, es []audit.Event)
}

// OpenSpool opens (creating) the spool in dir.
func OpenSpool(dir string, now func() time.Time) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit spool %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "events"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &Spool{dir: dir, now: now, f: f, size: st.Size(), wake: make(chan struct{}, 1)}
	if b, err := os.ReadFile(s.sentFile()); err == nil {
		s.sent, _ = strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	}
	if s.sent > s.size || s.sent < 0 {
		s.sent = 0 // resend all: the server deduplicates
	}
	// A torn last line (a crash mid-append, never acknowledged to its
	// emitter) is cut off.
	if err := s.trimTorn(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *Spool) sentFile() string { return filepath.Join(s.dir, "sent") }

func (s *Spool) trimTorn() error {
	if s.size == 0 {
		return nil
	}
	buf := make([]byte, 1)
	if _, err := s.f.ReadAt(buf, s.size-1); err != nil {
		return err
	}
	if buf[0] == '\n' {
		return nil
	}
	b := make([]byte, s.size)
	if _, err := s.f.ReadAt(b, 0); err != nil {
		return err
	}
	cut := int64(bytes.LastIndexByte(b, '\n') + 1)
	if err := s.f.Truncate(cut); err != nil {
		return err
	}
	s.size = cut
	return nil
}

// Emit implements audit.Emitter: the event is on disk when it returns.
func (s *Spool) Emit(ctx context.Context, e audit.Event) error {
	return s.EmitBatch(ctx, []audit.Event{e})
}

// EmitBatch implements audit.BatchEmitter (one sync for the batch).
func (s *Spool) EmitBatch(_ context.Context, es []audit.Event) error {
	var buf bytes.Buffer
	for _, e := range es {
		if e.ID == "" {
			id, err := audit.NewEventID(s.now())
			if err != nil {
				return err
			}
			e.ID = id
		}
		if e.Time.IsZero() {
			e.Time = s.now().UTC()
		}
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("spool event: %w", err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	if s.fault != nil {
		s.fault(faultBeforeWrite, es)
	}
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		s.failed = fmt.Errorf("audit spool write failed (restart the node): %w", err)
		return s.failed
	}
	if err := fsync.Data(s.f); err != nil {
		s.failed = fmt.Errorf("audit spool sync failed (restart the node): %w", err)
		return s.failed
	}
	if s.fault != nil {
		s.fault(faultAfterSync, es)
	}
	s.size += int64(buf.Len())
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Pending returns the bytes not yet acknowledged by the server.
func (s *Spool) Pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size - s.sent
}

// next reads up to max events after the sent mark and the offset they end
// at.
func (s *Spool) next(max int) ([]audit.Event, int64, error) {
	s.mu.Lock()
	from, to := s.sent, s.size
	s.mu.Unlock()
	if from >= to {
		return nil, from, nil
	}
	r := bufio.NewReader(io.NewSectionReader(s.f, from, to-from))
	var out []audit.Event
	end := from
	for len(out) < max {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, from, err
		}
		end += int64(len(line))
		var e audit.Event
		if err := json.Unmarshal(line, &e); err != nil {
			// Not an event this node wrote whole: skip it, loudly.
			continue
		}
		out = append(out, e)
	}
	return out, end, nil
}

// acked moves the durable mark to end and truncates a fully sent spool.
func (s *Spool) acked(end int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = end
	if s.sent == s.size {
		if err := s.f.Truncate(0); err != nil {
			return err
		}
		s.size, s.sent = 0, 0
	}
	tmp := s.sentFile() + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(s.sent, 10)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.sentFile())
}

// Send delivers spooled events with deliver until ctx ends, retrying
// after failures with backoff.
func (s *Spool) Send(ctx context.Context, log *slog.Logger, deliver func(context.Context, []audit.Event) error) {
	backoff := 100 * time.Millisecond
	for {
		es, end, err := s.next(500)
		if err == nil && len(es) > 0 {
			err = deliver(ctx, es)
			if err == nil {
				// A failed acknowledgement keeps the events spooled (they
				// are sent again and deduplicated by id) and backs off.
				if err = s.acked(end); err == nil {
					backoff = 100 * time.Millisecond
					continue
				}
			}
		} else if err == nil {
			// Everything sent; the torn tail, if any, is acknowledged too.
			s.mu.Lock()
			caught := end == s.size && end > s.sent
			s.mu.Unlock()
			if caught {
				err = s.acked(end)
			}
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("deliver audit events to the server; kept in the spool", "error", err)
		}
		wait := time.Duration(0)
		if err != nil {
			wait = backoff
			backoff = min(backoff*2, 10*time.Second)
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
	}
}

// Close closes the spool file.
func (s *Spool) Close() error { return s.f.Close() }
