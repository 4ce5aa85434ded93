package auditlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/auditlog"
	"golang.org/x/mod/sumdb/note"
)

// pinned returns verifiers for the log's public key alone, as a third
// party holding only `writ audit key` output would have.
func pinned(t *testing.T, l *auditlog.Log) note.Verifiers {
	t.Helper()
	v, err := auditlog.ParseVerifierKeys(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInclusionProofs(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, e.config())
	ctx := context.Background()
	entries := appendN(t, l, 37)
	stored, cp, err := l.Checkpoint(ctx)
	if err != nil || cp.Size != 37 {
		t.Fatalf("Checkpoint = size %d, %v; want 37", cp.Size, err)
	}
	key := pinned(t, l)
	for _, en := range entries {
		rec, err := e.db.Audit().RecordByID(ctx, en.ID)
		if err != nil {
			t.Fatal(err)
		}
		p, err := auditlog.ProveInclusion(ctx, e.db.Audit(), rec, stored.Note, l.Trusted())
		if err != nil {
			t.Fatalf("ProveInclusion(%d): %v", en.Index, err)
		}
		// Round trip through JSON, as `writ audit prove` prints it.
		b, _ := json.MarshalIndent(p, "", "  ")
		back, err := auditlog.ParseInclusionProof(b)
		if err != nil {
			t.Fatalf("ParseInclusionProof: %v", err)
		}
		got, err := back.Verify(key)
		if err != nil || got.Size != 37 {
			t.Fatalf("proof of %d does not verify with the public key: %v", en.Index, err)
		}
	}

	rec, _ := e.db.Audit().RecordByID(ctx, entries[5].ID)
	good, _ := auditlog.ProveInclusion(ctx, e.db.Audit(), rec, stored.Note, l.Trusted())
	other := newEnv(t)
	otherLog := other.open(t, other.config())
	for _, c := range []struct {
		name   string
		change func(p *auditlog.InclusionProof)
		key    note.Verifiers
		want   string
	}{
		{"event edited", func(p *auditlog.InclusionProof) { p.Event.Decision = "deny" }, key, "not the event in the leaf"},
		{"leaf edited", func(p *auditlog.InclusionProof) {
			p.Leaf = strings.Replace(p.Leaf, `"allow"`, `"deny"`, 1)
			p.Event.Decision = "deny"
		}, key, "does not lead"},
		{"wrong index", func(p *auditlog.InclusionProof) { p.Index = 6 }, key, "does not lead"},
		{"index past the checkpoint", func(p *auditlog.InclusionProof) { p.Index = 37 }, key, "outside"},
		{"path edited", func(p *auditlog.InclusionProof) { p.Proof[1][0] ^= 1 }, key, "does not lead"},
		{"path shortened", func(p *auditlog.InclusionProof) { p.Proof = p.Proof[:2] }, key, "does not lead"},
		{"checkpoint edited", func(p *auditlog.InclusionProof) {
			p.Checkpoint = strings.Replace(p.Checkpoint, "\n37\n", "\n38\n", 1)
		}, key, "invalid signature"},
		{"another log's key", func(*auditlog.InclusionProof) {}, pinned(t, otherLog), "not signed by a trusted log key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := good
			p.Proof = append(p.Proof[:0:0], good.Proof...)
			c.change(&p)
			if _, err := p.Verify(c.key); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Verify = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestConsistencyProofs(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, e.config())
	ctx := context.Background()
	appendN(t, l, 13)
	old, _, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 50)
	cur, curCP, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := pinned(t, l)
	p, err := auditlog.ProveConsistency(ctx, e.db.Audit(), old.Note, cur.Note)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	var back auditlog.ConsistencyProof
	json.Unmarshal(b, &back)
	o, n, err := back.Verify(key)
	if err != nil || o.Size != 13 || n.Size != curCP.Size {
		t.Fatalf("consistency %d -> %d: %v", o.Size, n.Size, err)
	}
	// The server-side form: the client brings its own old checkpoint.
	p2, err := auditlog.ProveTreeConsistency(ctx, e.db.Audit(), 13, cur.Note)
	if err != nil {
		t.Fatal(err)
	}
	p2.Old = string(old.Note)
	if _, _, err := p2.Verify(key); err != nil {
		t.Fatalf("ProveTreeConsistency proof: %v", err)
	}

	// A fork: another log (same key, different history) of the same
	// size does not extend into this one.
	fork := newEnv(t)
	forkCfg := fork.config()
	forkCfg.Keys = e.db // same log key
	forkCfg.Sealer = e.sealer
	fl := fork.open(t, forkCfg)
	for i := range 13 {
		ev := sampleEvent(i)
		ev.Reason = "forked"
		if _, err := fl.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	forkOld, _, err := fl.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p3 := p
	p3.Old = string(forkOld.Note)
	if _, _, err := p3.Verify(key); err == nil || !strings.Contains(err.Error(), "does not extend") {
		t.Fatalf("fork verified as consistent: %v", err)
	}

	// Verify with the saved checkpoint proves the same offline.
	rep, err := auditlog.Verify(ctx, e.db.Audit(), auditlog.VerifyOptions{Trusted: key, Saved: old.Note})
	if err != nil || rep.Consistency == nil {
		t.Fatalf("Verify with saved checkpoint = %+v, %v", rep, err)
	}
	_, err = auditlog.Verify(ctx, e.db.Audit(), auditlog.VerifyOptions{Trusted: key, Saved: forkOld.Note})
	var ve *auditlog.VerifyError
	if !errors.As(err, &ve) || ve.Index != 0 || !strings.Contains(ve.Problem, "rewritten since it was saved") {
		t.Fatalf("Verify against the fork's checkpoint = %v, want a rewrite at index 0", err)
	}
}
