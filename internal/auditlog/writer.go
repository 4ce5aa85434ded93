package auditlog

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

// syncQueue is what the syncer has to make durable: the log up to size,
// and the Synced requests waiting for that. The writer adds to it without
// waiting, so that it never stalls behind an fsync; it holds no more than
// the appends under way.
type syncQueue struct {
	mu      sync.Mutex
	size    int64      // the log's size once everything written is synced
	waiting []*request // Synced requests to answer after the sync
	closed  bool       // the writer has stopped
	wake    chan struct{}
}

// run is the writer goroutine.
func (l *Log) run() {
	defer close(l.done)
	ticker := time.NewTicker(l.cfg.CheckpointInterval)
	defer ticker.Stop()
	batch := make([]*request, 0, l.cfg.MaxBatch)
	for {
		select {
		case r := <-l.reqs:
			batch = l.collect(append(batch[:0], r))
			l.commit(batch)
		case ch := <-l.cpReqs:
			stored, cp, err := l.checkpointIfNeeded(false)
			ch <- cpResult{stored, cp, err}
		case <-ticker.C:
			if l.since > 0 {
				l.checkpointIfNeeded(false)
			}
		case <-l.closing:
			for {
				batch = l.collect(batch[:0])
				if len(batch) == 0 {
					break
				}
				l.commit(batch)
			}
			if l.pipe != nil {
				l.toSync.mu.Lock()
				l.toSync.closed = true
				l.toSync.mu.Unlock()
				l.toSync.signal()
				<-l.synced
			}
			if _, _, err := l.checkpointIfNeeded(true); err != nil {
				l.closeErr = err
			}
			l.stateMu.Lock()
			close(l.changed)
			l.stateMu.Unlock()
			return
		}
	}
}

// collect adds every request waiting now to batch, up to MaxBatch.
func (l *Log) collect(batch []*request) []*request {
	for len(batch) < l.cfg.MaxBatch {
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit writes batch in one transaction. If that fails, it writes the
// events one by one so that one bad event (say, a duplicate id) fails
// alone.
func (l *Log) commit(batch []*request) {
	err := l.write(batch)
	if err == nil {
		l.since += len(batch)
		if l.since >= l.cfg.CheckpointEvery {
			l.checkpointIfNeeded(false)
		}
		return
	}
	if len(batch) > 1 && !errors.Is(err, errSyncFailed) {
		l.log.Warn("audit group commit failed; writing events one by one", "events", len(batch), "error", err)
		for _, r := range batch {
			l.commit([]*request{r})
		}
		return
	}
	for _, r := range batch {
		r.done <- result{err: err}
	}
}

// write stores batch and, on success, answers every request in it, or
// (with a Pipeliner) the Written ones and hands the batch to the syncer,
// which answers the rest.
func (l *Log) write(batch []*request) error {
	if err := l.failure(); err != nil {
		return err
	}
	if l.seq != nil {
		return l.writeSequenced(batch)
	}
	tree := l.tree.clone()
	recs := make([]Record, len(batch))
	for i, r := range batch {
		hashes, err := tree.append(r.leaf)
		if err != nil {
			return err
		}
		recs[i] = Record{Index: tree.size - 1, Data: r.data, Hashes: hashes, Keys: KeysOf(&r.e)}
		r.index = recs[i].Index
	}
	var err error
	if l.pipe != nil {
		err = l.pipe.WriteRecords(l.ctx, recs)
	} else {
		err = l.b.AppendRecords(l.ctx, recs)
	}
	if err != nil {
		// The store may be in any state; re-read it before going on.
		if rerr := l.reload(); rerr != nil {
			l.log.Error("audit log state unreadable after a failed write", "error", rerr)
		}
		return err
	}
	l.tree = tree
	l.notify(batch, recs)
	if l.pipe == nil {
		l.published(tree.size)
		for i, r := range batch {
			r.done <- result{index: recs[i].Index}
		}
		return nil
	}
	q := &l.toSync
	q.mu.Lock()
	q.size = tree.size
	for i, r := range batch {
		if r.level == audit.Written {
			r.done <- result{index: recs[i].Index}
		} else {
			q.waiting = append(q.waiting, r)
		}
	}
	q.mu.Unlock()
	q.signal()
	return nil
}

// writeSequenced stores batch through a [Sequencer] and answers every
// request in it. The batch is hashed onto the log as the backend finds
// it under its append lock: onto the tree edge in memory if no other
// server appended since, otherwise onto the edge read back from the
// backend.
func (l *Log) writeSequenced(batch []*request) error {
	var (
		tree *frontier
		recs []Record
	)
	err := l.seq.AppendSequenced(l.ctx, func(size int64) ([]Record, error) {
		base := l.tree
		if size != base.size {
			b, err := loadFrontier(size, backendHashes{l.ctx, l.b})
			if err != nil {
				return nil, fmt.Errorf("read the tree edge at size %d: %w", size, err)
			}
			base = b
		}
		t := base.clone()
		out := make([]Record, len(batch))
		for i, r := range batch {
			hashes, err := t.append(r.leaf)
			if err != nil {
				return nil, err
			}
			out[i] = Record{Index: t.size - 1, Data: r.data, Hashes: hashes, Keys: KeysOf(&r.e)}
		}
		tree, recs = t, out
		return out, nil
	})
	if err != nil {
		if rerr := l.reload(); rerr != nil {
			l.log.Error("audit log state unreadable after a failed write", "error", rerr)
		}
		return err
	}
	l.tree = tree
	l.notify(batch, recs)
	l.published(tree.size)
	for i, r := range batch {
		r.index = recs[i].Index
		r.done <- result{index: recs[i].Index}
	}
	return nil
}

func (q *syncQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// errSyncFailed marks the error every append returns after a failed sync.
var errSyncFailed = errors.New("the audit store failed to sync")

// syncLoop is the syncer goroutine (with a Pipeliner backend): it syncs
// every written batch waiting, in one sync, and answers their Synced
// requests. A failed sync fails the log: events written before it may
// not be on disk, so no later event is accepted (fail closed) until writ
// restarts and re-reads the store.
func (l *Log) syncLoop() {
	defer close(l.synced)
	q := &l.toSync
	var synced int64
	for {
		<-q.wake
		for {
			q.mu.Lock()
			size, waiting, closed := q.size, q.waiting, q.closed
			q.waiting = nil
			q.mu.Unlock()
			if size == synced && len(waiting) == 0 {
				if closed {
					return
				}
				break
			}
			err := l.failure()
			if err == nil && size > synced {
				if serr := l.pipe.SyncRecords(l.ctx); serr != nil {
					err = fmt.Errorf("%w: %v; no further events are accepted until writ restarts", errSyncFailed, serr)
					l.log.Error("audit store sync failed; refusing further events", "error", serr)
					l.stateMu.Lock()
					l.failed = err
					l.stateMu.Unlock()
				}
			}
			// Done with [synced, size): synced, or failed for good.
			synced = size
			if err == nil {
				l.published(size)
			}
			for _, r := range waiting {
				r.done <- result{index: r.index, err: err}
			}
		}
	}
}

// Failed returns the error that stopped the log from accepting events (a
// failed sync), or nil while it works.
func (l *Log) Failed() error { return l.failure() }

// failure returns the error that failed the log, if a sync failed.
func (l *Log) failure() error {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.failed
}

// published records that the log's first size events are durable and
// wakes the readers waiting for new events.
func (l *Log) published(size int64) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if size > l.size {
		l.size = size
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// reload re-reads the tree edge from the backend.
func (l *Log) reload() error {
	size, err := l.b.RecordCount(l.ctx)
	if err != nil {
		return err
	}
	if size == l.tree.size {
		return nil
	}
	tree, err := loadFrontier(size, backendHashes{l.ctx, l.b})
	if err != nil {
		return err
	}
	l.tree = tree
	l.stateMu.Lock()
	l.size = size
	l.stateMu.Unlock()
	return nil
}

// Observer is called by the log's writer for every event it has written,
// in index order, with the event as stored (its id and time set), once
// the batch holding it is written to the backend: searchable there by
// readers, not yet necessarily synced. It runs on the writer's goroutine,
// so it must be quick and must not block or append to the log. The event
// is never changed afterwards; the observer may keep it.
type Observer func(idx int64, e *audit.Event)

// Observe sets the log's observer (nil: none), for the events written
// from then on: a consumer that folds the log into a view of its own (the
// alert engine) follows it without reading every event back. Events the
// observer misses (written before it was set, or by another server
// sharing the backend) it must read from the backend; the indexes it is
// given tell it where it has a gap.
func (l *Log) Observe(fn Observer) {
	if fn == nil {
		l.observer.Store(nil)
		return
	}
	l.observer.Store(&fn)
}

// notify hands the events of a written batch to the observer.
func (l *Log) notify(batch []*request, recs []Record) {
	fn := l.observer.Load()
	if fn == nil {
		return
	}
	for i, r := range batch {
		(*fn)(recs[i].Index, &r.e)
	}
}
