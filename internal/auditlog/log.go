package auditlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
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
	// Published, if set, keeps the latest checkpoint the log signed
	// outside the backend (writ serve: DATA_DIR/audit.checkpoint). Open
	// refuses a log older than that checkpoint or inconsistent with it
	// ([ErrRolledBack]), and every checkpoint signed replaces it.
	Published *CheckpointFile
	// Witnesses receive every checkpoint the log signs, in the
	// background (see [Witness]). Default: none.
	Witnesses []Witness
	// WitnessDone, if set, is called after every delivery to a witness
	// with its outcome, for metrics.
	WitnessDone func(witness string, err error)
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

// Sequencer is implemented by backends that several logs append to at
// once: several writ servers sharing one PostgreSQL database. Such a log
// cannot trust the tree edge it keeps in memory, since another server may
// have appended since; the backend serialises appends (a lock held in the
// database) and lets the log build each batch on the log as it is under
// that lock, so the order and the tree are the same whichever server
// appends. A log over a Sequencer appends only through it.
type Sequencer interface {
	// AppendSequenced stores, in one transaction, the records build
	// returns. The backend calls build while it holds the log's append
	// lock, with the log's size at that moment; build returns records
	// whose indexes continue the log from size. The backend may call
	// build again if it retries the transaction; only the records of the
	// last call are stored. When AppendSequenced returns nil they are
	// durable; on error none is stored.
	AppendSequenced(ctx context.Context, build func(size int64) ([]Record, error)) error
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
	seq      Sequencer     // b, if several logs share it
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

	witnesses *witnesses // nil without witnesses

	observer atomic.Pointer[Observer] // nil: none

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
	if sq, ok := cfg.Backend.(Sequencer); ok {
		l.seq = sq
	} else if p, ok := cfg.Backend.(Pipeliner); ok {
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
	if f := cfg.Published; f != nil {
		if err := l.checkPublished(ctx, f); err != nil {
			return nil, err
		}
		if l.latest.Note != nil && l.tree.size == l.latestCP.Size {
			l.publish(l.latest.Note)
		}
	}
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.witnesses = startWitnesses(l.ctx, l, cfg.Witnesses)
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
	// The final checkpoint goes to the witnesses too, as long as ctx
	// allows.
	l.witnesses.close(ctx)
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
