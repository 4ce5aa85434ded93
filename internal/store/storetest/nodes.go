package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// NodeOpener returns a fresh, empty store with the node aggregates.
type NodeOpener func(t *testing.T) store.NodeStore

// RunNodes runs the conformance tests of [store.Nodes],
// [store.JoinTokens] and [store.Changes].
func RunNodes(t *testing.T, open NodeOpener) {
	t.Run("Nodes", func(t *testing.T) { testNodes(t, open(t)) })
	t.Run("JoinTokens", func(t *testing.T) { testJoinTokens(t, open(t)) })
	t.Run("JoinTokenSingleUse", func(t *testing.T) { testJoinTokenSingleUse(t, open(t)) })
	t.Run("Changes", func(t *testing.T) { testChanges(t, open(t)) })
	t.Run("ChangesConcurrent", func(t *testing.T) { testChangesConcurrent(t, open(t)) })
}

func testNodes(t *testing.T, s store.NodeStore) {
	ctx := context.Background()
	n := store.Node{Name: "host-1", ID: "natt_1", Attestor: "join_token",
		Selectors: []store.Selector{{Type: "join_token", Value: "jt_1"}}, AttestedAt: t0, LastSeen: t0}
	if err := s.PutNode(ctx, n); err != nil {
		t.Fatalf("PutNode: %v", err)
	}
	got, err := s.GetNode(ctx, "host-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "natt_1" || got.Attestor != "join_token" || len(got.Selectors) != 1 || got.Selectors[0] != n.Selectors[0] ||
		!got.AttestedAt.Equal(t0) || !got.EvictedAt.IsZero() {
		t.Errorf("GetNode = %+v, want the fields of %+v", got, n)
	}
	if _, err := s.GetNode(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetNode(missing): %v, want ErrNotFound", err)
	}
	if err := s.TouchNode(ctx, "natt_1", t0.Add(time.Minute), 7); err != nil {
		t.Fatal(err)
	}
	// An older touch (a late acknowledgement) does not move it back.
	if err := s.TouchNode(ctx, "natt_1", t0, 3); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetNode(ctx, "host-1"); got.AckedSeq != 7 || !got.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Errorf("after touches: acked %d last seen %v, want 7 and t0+1m", got.AckedSeq, got.LastSeen)
	}
	if err := s.TouchNode(ctx, "natt_x", t0, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchNode(unknown id): %v, want ErrNotFound", err)
	}
	// Another node may not take the attestation id.
	if err := s.PutNode(ctx, store.Node{Name: "host-2", ID: "natt_1", Attestor: "x509pop"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("PutNode with a taken id: %v, want ErrExists", err)
	}
	ev, err := s.EvictNode(ctx, "host-1", t0.Add(time.Hour))
	if err != nil || !ev.EvictedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("EvictNode = %+v, %v", ev, err)
	}
	if ev, _ := s.EvictNode(ctx, "host-1", t0.Add(2*time.Hour)); !ev.EvictedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("second eviction moved the time to %v", ev.EvictedAt)
	}
	if _, err := s.EvictNode(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EvictNode(missing): %v, want ErrNotFound", err)
	}
	// Attesting again is a new attestation: new id, not evicted.
	if err := s.PutNode(ctx, store.Node{Name: "host-1", ID: "natt_2", Attestor: "x509pop", AttestedAt: t0.Add(3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetNode(ctx, "host-1"); got.ID != "natt_2" || !got.EvictedAt.IsZero() {
		t.Errorf("re-attested node = %+v, want id natt_2 and not evicted", got)
	}
	if err := s.TouchNode(ctx, "natt_1", t0, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchNode(old attestation): %v, want ErrNotFound", err)
	}
	if err := s.PutNode(ctx, store.Node{Name: "a-host", ID: "natt_3", Attestor: "join_token"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListNodes(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "a-host" || list[1].Name != "host-1" {
		t.Errorf("ListNodes = %+v, %v; want a-host, host-1", list, err)
	}
}

func tokenHash(secret string) []byte { h := sha256.Sum256([]byte(secret)); return h[:] }

func testJoinTokens(t *testing.T, s store.NodeStore) {
	ctx := context.Background()
	tok := store.JoinToken{ID: "jt_1", Hash: tokenHash("s1"), Node: "host-1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateJoinToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJoinToken(ctx, store.JoinToken{ID: "jt_1", Hash: tokenHash("other"), ExpiresAt: t0.Add(time.Hour)}); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateJoinToken with a taken id: %v, want ErrExists", err)
	}
	if err := s.CreateJoinToken(ctx, store.JoinToken{ID: "jt_2", Hash: tokenHash("s2"), CreatedAt: t0.Add(time.Second), ExpiresAt: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// Expired at the moment of use.
	if _, err := s.UseJoinToken(ctx, tokenHash("s2"), "host-2", t0.Add(time.Minute)); !errors.Is(err, store.ErrTokenUnusable) {
		t.Errorf("UseJoinToken(expired): %v, want ErrTokenUnusable", err)
	}
	if _, err := s.UseJoinToken(ctx, tokenHash("unknown"), "host-2", t0); !errors.Is(err, store.ErrTokenUnusable) {
		t.Errorf("UseJoinToken(unknown): %v, want ErrTokenUnusable", err)
	}
	used, err := s.UseJoinToken(ctx, tokenHash("s1"), "host-1", t0.Add(time.Minute))
	if err != nil || used.ID != "jt_1" || used.Node != "host-1" || used.UsedBy != "host-1" || !used.UsedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("UseJoinToken = %+v, %v", used, err)
	}
	if _, err := s.UseJoinToken(ctx, tokenHash("s1"), "host-1", t0.Add(2*time.Minute)); !errors.Is(err, store.ErrTokenUnusable) {
		t.Errorf("second UseJoinToken: %v, want ErrTokenUnusable", err)
	}
	list, err := s.ListJoinTokens(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "jt_1" || list[0].UsedBy != "host-1" || list[1].ID != "jt_2" || !list[1].UsedAt.IsZero() {
		t.Errorf("ListJoinTokens = %+v, %v", list, err)
	}
	if err := s.DeleteJoinToken(ctx, "jt_2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteJoinToken(ctx, "jt_2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteJoinToken: %v, want ErrNotFound", err)
	}
}

// testJoinTokenSingleUse: of many concurrent uses of one token exactly
// one succeeds.
func testJoinTokenSingleUse(t *testing.T, s store.NodeStore) {
	ctx := context.Background()
	if err := s.CreateJoinToken(ctx, store.JoinToken{ID: "jt_race", Hash: tokenHash("race"), ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UseJoinToken(ctx, tokenHash("race"), "n"+string(rune('a'+i)), t0)
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, store.ErrTokenUnusable):
				t.Errorf("UseJoinToken: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Errorf("%d concurrent uses of one token succeeded, want exactly 1", ok.Load())
	}
}

func testChanges(t *testing.T, s store.NodeStore) {
	ctx := context.Background()
	if last, err := s.LastChange(ctx); err != nil || last != 0 {
		t.Fatalf("LastChange(empty) = %d, %v", last, err)
	}
	var seqs []int64
	for i, c := range []store.Change{
		{Kind: "entry", Key: "a", Op: store.ChangePut, Body: []byte(`{"name":"a"}`)},
		{Kind: "entry", Key: "a", Op: store.ChangeDelete},
		{Kind: "revocation", Key: "spiffe_id/x", Op: store.ChangePut, Body: []byte(`{}`), At: t0},
	} {
		seq, err := s.AppendChange(ctx, c)
		if err != nil {
			t.Fatalf("AppendChange %d: %v", i, err)
		}
		if len(seqs) > 0 && seq <= seqs[len(seqs)-1] {
			t.Fatalf("sequence %d after %d", seq, seqs[len(seqs)-1])
		}
		seqs = append(seqs, seq)
	}
	got, err := s.ChangesSince(ctx, seqs[0], 10)
	if err != nil || len(got) != 2 || got[0].Seq != seqs[1] || got[0].Op != store.ChangeDelete || got[0].Body != nil ||
		got[1].Kind != "revocation" || string(got[1].Body) != "{}" || !got[1].At.Equal(t0) {
		t.Fatalf("ChangesSince = %+v, %v", got, err)
	}
	if got, _ := s.ChangesSince(ctx, 0, 1); len(got) != 1 || got[0].Seq != seqs[0] || got[0].At.IsZero() {
		t.Errorf("ChangesSince(0, limit 1) = %+v", got)
	}
	if n, err := s.PruneChanges(ctx, seqs[1]); err != nil || n != 2 {
		t.Errorf("PruneChanges = %d, %v; want 2", n, err)
	}
	if old, _ := s.OldestChange(ctx); old != seqs[2] {
		t.Errorf("OldestChange = %d, want %d", old, seqs[2])
	}
	s.PruneChanges(ctx, seqs[2])
	// A pruned-empty feed keeps its sequence: no Seq is reused.
	if last, _ := s.LastChange(ctx); last != seqs[2] {
		t.Errorf("LastChange after pruning all = %d, want %d", last, seqs[2])
	}
	seq, err := s.AppendChange(ctx, store.Change{Kind: "entry", Key: "b", Op: store.ChangePut})
	if err != nil || seq <= seqs[2] {
		t.Errorf("append after prune: seq %d, %v; want > %d", seq, err, seqs[2])
	}
}

// testChangesConcurrent: concurrent appenders get distinct sequences and
// a reader sees every change once, in order.
func testChangesConcurrent(t *testing.T, s store.NodeStore) {
	ctx := context.Background()
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.AppendChange(ctx, store.Change{Kind: "entry", Key: string(rune('a'+w)) + string(rune('0'+i%10)), Op: store.ChangePut}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var after int64
	n := 0
	for {
		page, err := s.ChangesSince(ctx, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, c := range page {
			if c.Seq <= after {
				t.Fatalf("seq %d after %d", c.Seq, after)
			}
			after = c.Seq
			n++
		}
	}
	if n != writers*each {
		t.Errorf("read %d changes, want %d", n, writers*each)
	}
}
