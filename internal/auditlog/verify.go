package auditlog

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// VerifyError reports the first problem [Verify] found.
type VerifyError struct {
	// Index is the first event index the problem concerns, or -1 when
	// the problem is not about one event (such as a bad signature).
	Index int64
	// Problem says what is wrong, for a person.
	Problem string
}

func (e *VerifyError) Error() string {
	if e.Index < 0 {
		return e.Problem
	}
	return fmt.Sprintf("index %d: %s", e.Index, e.Problem)
}

// VerifyOptions configures [Verify].
type VerifyOptions struct {
	// Trusted are the keys checkpoints must be signed by. Required.
	Trusted note.Verifiers
	// Saved is a signed checkpoint the user kept from earlier; if set,
	// Verify proves that the log extends it.
	Saved []byte
	// Remembered is the latest checkpoint a verifier checked of this log
	// on an earlier run, kept outside the store (see [CheckpointFile]);
	// if set, Verify proves that the log extends it, so that a log whose
	// newest events were removed together with their checkpoints is
	// reported as rolled back.
	Remembered []byte
	// RememberedFrom says where Remembered was kept, for messages.
	RememberedFrom string
	// Published is the checkpoint the server last published beside the
	// store (DATA_DIR/audit.checkpoint, see [Config.Published]); if set,
	// Verify proves that the log extends it too.
	Published []byte
	// PublishedFrom says where Published was read, for messages.
	PublishedFrom string
	// BatchSize is how many records are read at a time; default 10000.
	BatchSize int
}

// VerifyReport describes a log that verified.
type VerifyReport struct {
	// Size is the number of events.
	Size int64 `json:"size"`
	// Root is the root hash of the whole log.
	Root tlog.Hash `json:"root"`
	// Checkpoints is how many stored checkpoints were checked.
	Checkpoints int `json:"checkpoints"`
	// Latest is the latest signed checkpoint, if any.
	Latest *Checkpoint `json:"latest_checkpoint,omitempty"`
	// Indexed is the number of events whose stored search keys (the id
	// column and the search index row) were checked against the event;
	// events a backend's search index has not reached yet are not.
	Indexed int64 `json:"indexed"`
	// Unsigned is the number of events after the latest checkpoint.
	// They are checked against their stored hashes only; nothing signed
	// covers them yet (the server signs them within its checkpoint
	// interval, at shutdown and at the next start).
	Unsigned int64 `json:"unsigned"`
	// Consistency proves that the latest checkpoint extends the saved
	// one, when VerifyOptions.Saved was given.
	Consistency *ConsistencyProof `json:"consistency,omitempty"`
	// RememberedConsistency proves that the latest checkpoint extends
	// the remembered one, when VerifyOptions.Remembered was given.
	RememberedConsistency *ConsistencyProof `json:"remembered_consistency,omitempty"`
	// LatestNote is the latest stored checkpoint's signed note, with
	// any witness cosignatures.
	LatestNote []byte `json:"-"`
}

// known is a checkpoint from outside the store that the log must extend.
type known struct {
	what  string // for messages: "saved checkpoint", ...
	since string // "saved", "verified"
	note  []byte
	cp    Checkpoint
}

// Verify recomputes the Merkle tree from every stored event, in index
// order, and checks every stored hash and every stored checkpoint (its
// signature and its root) against it. An edited, deleted, inserted or
// reordered event makes it return a *VerifyError naming the first bad
// index; other errors mean the store could not be read.
func Verify(ctx context.Context, b Backend, opts VerifyOptions) (*VerifyReport, error) {
	if opts.Trusted == nil {
		return nil, errors.New("verify audit log: no trusted log key")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 10000
	}
	stored, err := b.ListCheckpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	// Checkpoints by size, each checked when the tree reaches its size.
	cps := make([]Checkpoint, len(stored))
	for i, s := range stored {
		cp, err := OpenCheckpoint(s.Note, opts.Trusted)
		if err != nil {
			return nil, &VerifyError{Index: -1, Problem: fmt.Sprintf("checkpoint stored for size %d: %v", s.Size, err)}
		}
		if cp.Size != s.Size {
			return nil, &VerifyError{Index: -1, Problem: fmt.Sprintf("checkpoint stored for size %d signs size %d", s.Size, cp.Size)}
		}
		cps[i] = cp
	}
	var outside []known
	if opts.Saved != nil {
		outside = append(outside, known{what: "saved checkpoint", since: "saved", note: opts.Saved})
	}
	if opts.Remembered != nil {
		from := "last verified checkpoint"
		if opts.RememberedFrom != "" {
			from += " (remembered in " + opts.RememberedFrom + ")"
		}
		outside = append(outside, known{what: from, since: "verified", note: opts.Remembered})
	}
	if opts.Published != nil {
		outside = append(outside, known{what: "checkpoint the server published (" + opts.PublishedFrom + ")", since: "published", note: opts.Published})
	}
	for i := range outside {
		k := &outside[i]
		if k.cp, err = OpenCheckpoint(k.note, opts.Trusted); err != nil {
			return nil, &VerifyError{Index: -1, Problem: fmt.Sprintf("%s: %v", k.what, err)}
		}
	}

	rep := &VerifyReport{Checkpoints: len(cps)}
	tree := &frontier{}
	next := 0 // the next checkpoint to check
	prevGood := int64(0)
	check := func() error {
		// Check every checkpoint (and the saved one) at the tree's size.
		for next < len(cps) && cps[next].Size == tree.size {
			if got := tree.root(); got != cps[next].Hash {
				return &VerifyError{Index: prevGood, Problem: fmt.Sprintf(
					"the signed checkpoint for size %d does not match the tree recomputed from the events: events between index %d and %d were rewritten together with their stored hashes",
					tree.size, prevGood, tree.size-1)}
			}
			prevGood = tree.size
			next++
		}
		for _, k := range outside {
			if k.cp.Size != tree.size {
				continue
			}
			if got := tree.root(); got != k.cp.Hash {
				return &VerifyError{Index: 0, Problem: fmt.Sprintf(
					"the log's first %d events do not match the %s (root %s, recomputed %s): the log was rewritten since it was %s",
					k.cp.Size, k.what, k.cp.Hash, got, k.since)}
			}
		}
		return nil
	}
	if err := check(); err != nil {
		return nil, err
	}
	// Read the next page while this one is hashed.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type page struct {
		recs []Record
		err  error
	}
	fetch := func(from int64) <-chan page {
		ch := make(chan page, 1)
		go func() {
			recs, err := b.ReadRecords(ctx, from, opts.BatchSize)
			ch <- page{recs, err}
		}()
		return ch
	}
	pending := fetch(0)
	// Whatever Verify returns, the page being read ahead is waited for:
	// no read of b may outlive the call (the caller may close b).
	defer func() {
		cancel()
		if pending != nil {
			<-pending
		}
	}()
	for {
		p := <-pending
		pending = nil
		if p.err == nil && len(p.recs) > 0 {
			pending = fetch(p.recs[len(p.recs)-1].Index + 1)
		}
		// The search columns are checked on the other core while
		// this one rebuilds the tree; the first bad index wins, and
		// at the same index the tree's finding does.
		keys := make(chan error, 1)
		go func(recs []Record) { keys <- checkKeys(recs) }(p.recs)
		for _, r := range p.recs {
			if r.Keys != nil {
				rep.Indexed++
			}
		}
		var treeErr error
		for _, r := range p.recs {
			if treeErr = checkRecord(tree, r); treeErr != nil {
				break
			}
			if treeErr = check(); treeErr != nil {
				break
			}
		}
		if err := firstProblem(treeErr, <-keys); err != nil {
			return nil, err
		}
		if p.err != nil {
			var re *RecordError
			if errors.As(p.err, &re) {
				return nil, &VerifyError{Index: re.Index, Problem: fmt.Sprintf("stored event is unreadable: %v (a column was edited)", re.Err)}
			}
			return nil, fmt.Errorf("verify audit log: %w", p.err)
		}
		if len(p.recs) == 0 {
			break
		}
	}
	rep.Size, rep.Root = tree.size, tree.root()
	if next < len(cps) {
		return nil, &VerifyError{Index: tree.size, Problem: fmt.Sprintf(
			"events from index %d on are missing: the signed checkpoint for size %d covers more events than the log holds (%d)",
			tree.size, cps[len(cps)-1].Size, tree.size)}
	}
	latestSize := int64(0)
	if len(cps) > 0 {
		rep.Latest = &cps[len(cps)-1]
		rep.Unsigned = tree.size - rep.Latest.Size
		rep.LatestNote = stored[len(stored)-1].Note
		latestSize = rep.Latest.Size
	} else {
		rep.Unsigned = tree.size
	}
	for _, k := range outside {
		if k.cp.Size > tree.size {
			return nil, &VerifyError{Index: tree.size, Problem: fmt.Sprintf(
				"the log was rolled back: the %s covers %d events, but the log now holds %d (its latest signed checkpoint covers %d): events from index %d on were removed together with their checkpoints, or an older copy of the store was restored",
				k.what, k.cp.Size, tree.size, latestSize, tree.size)}
		}
		if k.cp.Size > latestSize {
			return nil, &VerifyError{Index: -1, Problem: fmt.Sprintf(
				"the %s (size %d) is newer than every checkpoint in the store (latest: size %d): checkpoints were removed", k.what, k.cp.Size, latestSize)}
		}
	}
	for _, k := range outside {
		// The stored hashes now agree with the events, so they can
		// serve a consistency proof from the outside checkpoint to
		// the latest one, which a third party can check with only
		// the key.
		p, err := ProveConsistency(ctx, b, k.note, rep.LatestNote)
		if err != nil {
			return nil, fmt.Errorf("verify audit log: %w", err)
		}
		if _, _, err := p.Verify(opts.Trusted); err != nil {
			return nil, &VerifyError{Index: -1, Problem: err.Error()}
		}
		switch k.since {
		case "saved":
			rep.Consistency = &p
		case "verified":
			rep.RememberedConsistency = &p
		}
	}
	return rep, nil
}

// checkKeys checks that the searchable fields a backend stores apart from
// each record's data (Record.Keys) agree with the data. It returns a
// *VerifyError for the first record whose keys disagree.
func checkKeys(recs []Record) error {
	for _, r := range recs {
		if r.Keys == nil {
			continue
		}
		k, err := DecodeKeys(r.Data)
		if err != nil {
			return &VerifyError{Index: r.Index, Problem: fmt.Sprintf("stored event is not valid JSON: %v", err)}
		}
		for _, f := range []struct{ name, stored, event string }{
			{"id", r.Keys.ID, k.ID},
			{"type", string(r.Keys.Type), string(k.Type)},
			{"spiffe_id", r.Keys.SpiffeID, k.SpiffeID},
			{"instance", r.Keys.Instance, k.Instance},
			{"task", r.Keys.Task, k.Task},
		} {
			if f.stored != f.event {
				return &VerifyError{Index: r.Index, Problem: fmt.Sprintf(
					"search column %s holds %q but the event says %q: the search index was edited or lost the event, which hides it from searches",
					f.name, f.stored, f.event)}
			}
		}
	}
	return nil
}

// firstProblem returns whichever of two verification errors concerns the
// lower index (a, on a tie), or the error that is not a *VerifyError.
func firstProblem(a, b error) error {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	var va, vb *VerifyError
	if errors.As(a, &va) && errors.As(b, &vb) && vb.Index < va.Index {
		return b
	}
	return a
}
