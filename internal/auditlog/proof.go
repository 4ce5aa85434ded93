package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/writ-dev/writ/internal/audit"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// InclusionProof shows that an event is entry Index of the log whose
// signed checkpoint is Checkpoint. It is self-contained: with the log's
// public key anyone can check it (`writ audit verify-proof`), without the
// store. Hashes are standard base64 in JSON.
type InclusionProof struct {
	Index int64 `json:"index"`
	// Event is the event, for reading; it must equal Leaf decoded.
	Event audit.Event `json:"event"`
	// Leaf is the event's canonical encoding, the exact bytes hashed
	// into the tree (a JSON string holding the event's JSON).
	Leaf string `json:"leaf"`
	// Checkpoint is the signed checkpoint the proof leads to.
	Checkpoint string `json:"checkpoint"`
	// Proof is the RFC 6962 audit path from the leaf to the
	// checkpoint's root.
	Proof []tlog.Hash `json:"proof"`
}

// ConsistencyProof shows that the log at checkpoint New extends the log at
// checkpoint Old: every event under Old is still there, unchanged and in
// order.
type ConsistencyProof struct {
	Old   string      `json:"old"` // signed checkpoint
	New   string      `json:"new"` // signed checkpoint
	Proof []tlog.Hash `json:"proof"`
}

// ProveInclusion builds the inclusion proof of rec in the tree of the
// signed checkpoint cpNote, which must cover rec, and checks it.
func ProveInclusion(ctx context.Context, r Records, rec Record, cpNote []byte, trusted note.Verifiers) (InclusionProof, error) {
	e, err := rec.Event()
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove event at index %d: %w", rec.Index, err)
	}
	cp, err := OpenCheckpoint(cpNote, trusted)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove event %s: %w", e.ID, err)
	}
	if rec.Index >= cp.Size {
		return InclusionProof{}, fmt.Errorf("prove event %s: its index %d is not covered by the checkpoint of size %d", e.ID, rec.Index, cp.Size)
	}
	p, err := tlog.ProveRecord(cp.Size, rec.Index, backendHashes{ctx, r})
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove event %s: %w", e.ID, err)
	}
	proof := InclusionProof{
		Index:      rec.Index,
		Event:      e,
		Leaf:       string(rec.Data),
		Checkpoint: string(cpNote),
		Proof:      p,
	}
	// Check before handing it out: a proof built from damaged stored
	// hashes must not leave the server.
	if _, err := proof.Verify(trusted); err != nil {
		return InclusionProof{}, fmt.Errorf("prove event %s: %w; run `writ audit verify`", e.ID, err)
	}
	return proof, nil
}

// Verify checks the proof against the trusted keys and returns the
// checkpoint it leads to.
func (p *InclusionProof) Verify(trusted note.Verifiers) (Checkpoint, error) {
	cp, err := OpenCheckpoint([]byte(p.Checkpoint), trusted)
	if err != nil {
		return cp, fmt.Errorf("check inclusion proof: %w", err)
	}
	if p.Index < 0 || p.Index >= cp.Size {
		return cp, fmt.Errorf("check inclusion proof: index %d is outside the checkpoint's %d events", p.Index, cp.Size)
	}
	leafEvent, err := audit.DecodeEvent([]byte(p.Leaf))
	if err != nil {
		return cp, fmt.Errorf("check inclusion proof: leaf: %w", err)
	}
	shown, err := p.Event.MarshalCanonical()
	if err != nil || string(shown) != p.Leaf {
		return cp, fmt.Errorf("check inclusion proof: the event shown is not the event in the leaf (leaf holds event %s)", leafEvent.ID)
	}
	leaf := tlog.RecordHash([]byte(p.Leaf))
	if err := tlog.CheckRecord(p.Proof, cp.Size, cp.Hash, p.Index, leaf); err != nil {
		return cp, fmt.Errorf("check inclusion proof: the audit path does not lead from event %d to the checkpoint's root: %w", p.Index, err)
	}
	return cp, nil
}

// ParseInclusionProof decodes a proof as printed by `writ audit prove`.
func ParseInclusionProof(b []byte) (InclusionProof, error) {
	var p InclusionProof
	if len(b) > 4*audit.MaxEventSize+4*maxCheckpointSize {
		return p, fmt.Errorf("parse inclusion proof: %d bytes is too large", len(b))
	}
	if err := strictUnmarshal(b, &p); err != nil {
		return p, fmt.Errorf("parse inclusion proof: %w", err)
	}
	if p.Checkpoint == "" || p.Leaf == "" {
		return p, errors.New("parse inclusion proof: checkpoint or leaf is missing")
	}
	if len(p.Proof) > 64 {
		return p, fmt.Errorf("parse inclusion proof: %d hashes is more than any log needs", len(p.Proof))
	}
	return p, nil
}

// ProveConsistency builds the proof that the tree of the signed checkpoint
// newNote extends that of oldNote, from the stored hashes.
func ProveConsistency(ctx context.Context, r Records, oldNote, newNote []byte) (ConsistencyProof, error) {
	oldCP, err := ParseCheckpointNote(oldNote)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: old %w", err)
	}
	newCP, err := ParseCheckpointNote(newNote)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: new %w", err)
	}
	if oldCP.Size > newCP.Size {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: the old checkpoint (size %d) is larger than the new one (size %d)", oldCP.Size, newCP.Size)
	}
	p, err := tlog.ProveTree(newCP.Size, oldCP.Size, backendHashes{ctx, r})
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency from size %d to %d: %w", oldCP.Size, newCP.Size, err)
	}
	return ConsistencyProof{Old: string(oldNote), New: string(newNote), Proof: p}, nil
}

// ProveTreeConsistency builds the proof that the tree of the signed
// checkpoint newNote extends the tree of size oldSize, for a client that
// holds its own checkpoint of that size (Old is left empty for it to fill
// in before calling Verify).
func ProveTreeConsistency(ctx context.Context, r Records, oldSize int64, newNote []byte) (ConsistencyProof, error) {
	newCP, err := ParseCheckpointNote(newNote)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: new %w", err)
	}
	if oldSize > newCP.Size {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: size %d is larger than the checkpoint's %d", oldSize, newCP.Size)
	}
	p, err := tlog.ProveTree(newCP.Size, oldSize, backendHashes{ctx, r})
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency from size %d to %d: %w", oldSize, newCP.Size, err)
	}
	return ConsistencyProof{New: string(newNote), Proof: p}, nil
}

// Verify checks both checkpoints' signatures and the proof, and returns
// the two checkpoints.
func (p *ConsistencyProof) Verify(trusted note.Verifiers) (old, new Checkpoint, err error) {
	old, err = OpenCheckpoint([]byte(p.Old), trusted)
	if err != nil {
		return old, new, fmt.Errorf("check consistency proof: old %w", err)
	}
	new, err = OpenCheckpoint([]byte(p.New), trusted)
	if err != nil {
		return old, new, fmt.Errorf("check consistency proof: new %w", err)
	}
	if old.Origin != new.Origin {
		return old, new, fmt.Errorf("check consistency proof: the checkpoints are of different logs (%q and %q)", old.Origin, new.Origin)
	}
	if old.Size > new.Size {
		return old, new, fmt.Errorf("check consistency proof: the old checkpoint (size %d) is larger than the new one (size %d)", old.Size, new.Size)
	}
	if err := tlog.CheckTree(p.Proof, new.Size, new.Hash, old.Size, old.Hash); err != nil {
		return old, new, fmt.Errorf("check consistency proof: the log of size %d does not extend the log of size %d: %w", new.Size, old.Size, err)
	}
	return old, new, nil
}

// ParseCheckpointNote parses a signed checkpoint without checking its
// signature (for callers that check it elsewhere, or only need the size).
func ParseCheckpointNote(msg []byte) (Checkpoint, error) {
	if len(msg) > maxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("checkpoint: %d bytes, over the limit of %d", len(msg), maxCheckpointSize)
	}
	_, err := note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return Checkpoint{}, fmt.Errorf("checkpoint: malformed signed note: %v", err)
	}
	cp, err := ParseCheckpoint([]byte(unverified.Note.Text))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	return cp, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
