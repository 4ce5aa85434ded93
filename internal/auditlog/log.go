package auditlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrClosed is returned by [Log.Append] and [Log.Emit] after [Log.Close].
var ErrClosed = errors.New("audit log is closed")

// Defaults of [Config].
const (
	DefaultOrigin             = "writ.local/audit"
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Second
	DefaultMaxBatch           = 4000
)

// Config configures [Open]. Backend, Keys and Sealer are required; the
// other fields have the documented defaults when zero.
type Config struct {
	// Backend stores events and checkpoints, e.g. (*sqlite.DB).Audit().
	Backend Backend
	// Keys stores the log key (kind store.KeyAudit).
	Keys store.Keys
	// Sealer seals the log key at rest.
	Sealer *keys.Sealer
	// Origin names the log in checkpoints and names a newly generated
	// log key. Default DefaultOrigin; use "<trust domain>/audit".
	Origin string
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Log receives operational messages. Default: discard.
	Log *slog.Logger
	// CheckpointEvery signs a checkpoint after this many events.
	// Default DefaultCheckpointEvery.
	CheckpointEvery int
	// CheckpointInterval signs a checkpoint at least this often while
	// there are unsigned events. Default DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// MaxBatch caps how many events one group commit writes. Default
	// and maximum DefaultMaxBatch.
	MaxBatch int
}

// Pipeliner is implemented by backends that can commit a batch without
// waiting for the disk, so that the log writes the next batch while the
// previous one is synced.
type Pipeliner interface {
	// WriteRecords stores recs exactly as AppendRecords does (in order,
	// atomically, continuing the log), but returns once they are
	// committed, before they are durable: they survive a crash of this
	// process but not a power loss until SyncRecords returns.
	WriteRecords(ctx context.Context, recs []Record) error
	// SyncRecords makes every record written so far durable.
	SyncRecords(ctx context.Context) error
}

// Entry is an event with its index in the log; in JSON the index sits
// next to the event's fields.
type Entry struct {
	Index int64 `json:"index"`
	audit.Event
}

// Log is the tamper-evident audit log: an append-only sequence of events
// in an RFC 6962 Merkle tree whose stored hashes are kept next to the
// events, with signed checkpoints of the tree.
//
// Appends are group-committed: one goroutine writes every event waiting at
// that moment in one transaction, so that many concurrent emitters share
// one durable commit. [Log.Emit] returns only once its event is durable.
// Log implements [audit.Emitter].
type Log struct {
	cfg     Config
	b       Backend
	log     *slog.Logger
	now     func() time.Time
	signer  note.Signer
	vkey    string
	trusted note.Verifiers // every stored log key
	origin  string

	reqs     chan *request
	pipe     Pipeliner     // b, if it can write and sync separately
	toSync   syncQueue     // written, not yet synced (with a Pipeliner)
	synced   chan struct{} // closed when the syncer stops
	cpReqs   chan chan cpResult
	closing  chan struct{}
	done     chan struct{}
	ctx      context.Context // for the writer's storage calls
	cancel   context.CancelFunc
	closeErr error

	mu       sync.RWMutex // guards closed and the send on reqs
	closed   bool
	stateMu  sync.Mutex // guards the fields below
	size     int64
	latest   StoredCheckpoint
	latestCP Checkpoint
	changed  chan struct{} // closed and replaced after every commit
	failed   error         // set when a sync failed: every later append fails

	// Owned by the writer goroutine.
	tree  *frontier
	since int // events (other than checkpoint events) since the last checkpoint
}

var (
	_ audit.DurabilityEmitter = (*Log)(nil)
	_ audit.BatchEmitter      = (*Log)(nil)
)

// Open loads the log from cfg.Backend, checks that the stored tree agrees
// with the latest signed checkpoint, and starts the writer. It signs a
// checkpoint at once if events were appended after the last one (after a
// crash). Close the log with [Log.Close].
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Backend == nil || cfg.Keys == nil || cfg.Sealer == nil {
		return nil, errors.New("open audit log: Backend, Keys and Sealer are required")
	}
	if cfg.Origin == "" {
		cfg.Origin = DefaultOrigin
	}
	if err := checkOrigin(cfg.Origin); err != nil {
		return nil, fmt.Errorf("open audit log: %v", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.MaxBatch <= 0 || cfg.MaxBatch > DefaultMaxBatch {
		cfg.MaxBatch = DefaultMaxBatch
	}
	l := &Log{
		cfg:     cfg,
		b:       cfg.Backend,
		log:     cfg.Log,
		now:     cfg.Now,
		origin:  cfg.Origin,
		reqs:    make(chan *request, cfg.MaxBatch),
		cpReqs:  make(chan chan cpResult),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	if p, ok := cfg.Backend.(Pipeliner); ok {
		l.pipe = p
		l.toSync.wake = make(chan struct{}, 1)
		l.synced = make(chan struct{})
	}
	var err error
	keyName := strings.NewReplacer(" ", "_", "+", "_").Replace(cfg.Origin)
	l.signer, l.vkey, err = loadSigner(ctx, cfg.Keys, cfg.Sealer, keyName, cfg.Now().UTC())
	if err != nil {
		return nil, err
	}
	if l.trusted, _, err = StoredVerifiers(ctx, cfg.Keys); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if err := l.load(ctx); err != nil {
		return nil, err
	}
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if l.tree.size > l.latestCP.Size {
		// Events were acknowledged after the last checkpoint and
		// before a crash; they were checked by load.
		if _, _, err := l.checkpoint(l.ctx, true); err != nil {
			l.cancel()
			return nil, err
		}
	}
	if l.pipe != nil {
		go l.syncLoop()
	}
	go l.run()
	return l, nil
}

// load reads the log's state: the latest checkpoint, whose root must match
// the stored hashes, and the events after it, whose stored hashes are
// recomputed before the log signs them.
func (l *Log) load(ctx context.Context) error {
	size, err := l.b.RecordCount(ctx)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	hr := backendHashes{ctx, l.b}
	l.tree = &frontier{}
	latest, err := l.b.LatestCheckpoint(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("open audit log: %w", err)
	default:
		cp, err := OpenCheckpoint(latest.Note, l.trusted)
		if err != nil {
			return fmt.Errorf("open audit log: latest checkpoint (size %d): %w; run `writ audit verify`", latest.Size, err)
		}
		if cp.Size != latest.Size {
			return fmt.Errorf("open audit log: checkpoint stored at size %d signs size %d; run `writ audit verify`", latest.Size, cp.Size)
		}
		if cp.Size > size {
			return fmt.Errorf("open audit log: the log holds %d events but its latest signed checkpoint covers %d: events were removed; run `writ audit verify`", size, cp.Size)
		}
		l.tree, err = loadFrontier(cp.Size, hr)
		if err != nil {
			return fmt.Errorf("open audit log: read tree at checkpoint size %d: %w; run `writ audit verify`", cp.Size, err)
		}
		if got := l.tree.root(); got != cp.Hash {
			return fmt.Errorf("open audit log: stored tree hash %s at size %d does not match the signed checkpoint's %s: the log was changed; run `writ audit verify`", got, cp.Size, cp.Hash)
		}
		l.latest, l.latestCP = latest, cp
	}
	// Replay the events after the checkpoint, checking their hashes.
	for l.tree.size < size {
		recs, err := l.b.ReadRecords(ctx, l.tree.size, 1000)
		if err != nil {
			return fmt.Errorf("open audit log: %w; run `writ audit verify`", err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if err := checkRecord(l.tree, r); err != nil {
				return fmt.Errorf("open audit log: %w; run `writ audit verify`", err)
			}
		}
	}
	l.size = l.tree.size
	return nil
}

// checkRecord recomputes r's hashes on top of tree (which must have size
// r.Index) and advances tree. It returns a *VerifyError on mismatch.
func checkRecord(tree *frontier, r Record) error {
	n := tree.size
	if r.Index != n {
		return &VerifyError{Index: n, Problem: fmt.Sprintf("event is missing: the next stored event has index %d (a row was deleted)", r.Index)}
	}
	leaf := tlog.RecordHash(r.Data)
	if len(r.Hashes) == 0 || r.Hashes[0] != leaf {
		return &VerifyError{Index: n, Problem: "event does not match its stored leaf hash: the event was edited, or rows were swapped or inserted"}
	}
	want, err := tree.append(leaf)
	if err != nil {
		return &VerifyError{Index: n, Problem: err.Error()}
	}
	if len(r.Hashes) != len(want) {
		return &VerifyError{Index: n, Problem: fmt.Sprintf("event has %d stored tree hashes, want %d: the stored hashes were edited", len(r.Hashes), len(want))}
	}
	for level := 1; level < len(want); level++ {
		if r.Hashes[level] != want[level] {
			first := n + 1 - 1<<level
			return &VerifyError{Index: first, Problem: fmt.Sprintf(
				"stored hash of events %d to %d does not match the tree recomputed from the events: one of them was edited together with its leaf hash, or the stored hashes were edited",
				first, n)}
		}
	}
	return nil
}

// VerifierKey returns the log's public signed-note verifier key, the line
// printed by `writ audit key`.
func (l *Log) VerifierKey() string { return l.vkey }

// Trusted returns the verifiers of the log's keys.
func (l *Log) Trusted() note.Verifiers { return l.trusted }

// Origin returns the log's name as it appears in checkpoints.
func (l *Log) Origin() string { return l.origin }

// Backend returns the log's storage, for readers.
func (l *Log) Backend() Backend { return l.b }

// Size returns the number of durable events.
func (l *Log) Size() int64 {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.size
}

// Changed returns a channel that is closed when events are next appended
// or the log is closed.
func (l *Log) Changed() <-chan struct{} {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.changed
}

// Closed reports whether Close has been called.
func (l *Log) Closed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

// LatestCheckpoint returns the latest signed checkpoint and its parsed
// form.
func (l *Log) LatestCheckpoint() (StoredCheckpoint, Checkpoint) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.latest, l.latestCP
}

// Close stops accepting events, writes those already accepted, signs a
// final checkpoint and stops the writer. If ctx ends first, pending
// storage calls are cancelled.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	l.mu.Unlock()
	if !already {
		close(l.closing)
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		l.cancel()
		<-l.done
	}
	l.cancel()
	return l.closeErr
}

// backendHashes adapts Records to tlog.HashReader.
type backendHashes struct {
	ctx context.Context
	r   Records
}

func (b backendHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return b.r.ReadHashes(b.ctx, indexes)
}

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
