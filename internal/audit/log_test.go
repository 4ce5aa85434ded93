package audit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// env is a real store in a temporary directory with a fixed KEK.
type env struct {
	path   string
	kek    []byte
	db     *sqlite.DB
	sealer *keys.Sealer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	e := &env{path: filepath.Join(t.TempDir(), "writ.db"), kek: kek}
	e.reopenDB(t)
	return e
}

func (e *env) reopenDB(t testing.TB) {
	t.Helper()
	if e.db != nil {
		e.db.Close()
	}
	db, err := sqlite.Open(context.Background(), e.path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	e.sealer, err = keys.NewSealer(e.kek)
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) config() audit.Config {
	return audit.Config{Backend: e.db.Audit(), Keys: e.db, Sealer: e.sealer, CheckpointEvery: 1 << 30, CheckpointInterval: time.Hour}
}

func (e *env) open(t testing.TB, cfg audit.Config) *audit.Log {
	t.Helper()
	l, err := audit.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func (e *env) verify(t testing.TB) (*audit.VerifyReport, error) {
	t.Helper()
	trusted, _, err := audit.StoredVerifiers(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	return audit.Verify(context.Background(), e.db.Audit(), audit.VerifyOptions{Trusted: trusted})
}

func sampleEvent(i int) audit.Event {
	return audit.Event{
		Type:      audit.AccessAllowed,
		SpiffeID:  "spiffe://writ.local/agent/mail" + strconv.Itoa(i%3),
		Instance:  "inst_" + strconv.Itoa(i%7),
		Task:      "task_" + strconv.Itoa(i%5),
		Target:    "https://api.example.com/v1/messages",
		Action:    "POST",
		Decision:  "allow",
		Policy:    "mail@3",
		Rule:      "send",
		RequestID: "req_" + strconv.Itoa(i),
		LatencyUS: int64(i + 1),
		Details:   map[string]string{"n": strconv.Itoa(i)},
	}
}

func appendN(t testing.TB, l *audit.Log, n int) []audit.Entry {
	t.Helper()
	out := make([]audit.Entry, n)
	for i := range n {
		en, err := l.Append(context.Background(), sampleEvent(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out[i] = en
	}
	return out
}

func TestAppendConcurrentThenVerify(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, e.config())
	const writers, each = 16, 50
	var wg sync.WaitGroup
	seen := make(map[int64]string)
	var mu sync.Mutex
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				en, err := l.Append(context.Background(), sampleEvent(w*each+i))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if prev, dup := seen[en.Index]; dup {
					errs <- fmt.Errorf("index %d given to %s and %s", en.Index, prev, en.ID)
				}
				seen[en.Index] = en.ID
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := l.Size(); got != writers*each {
		t.Fatalf("Size = %d, want %d", got, writers*each)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rep, err := e.verify(t)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Size != writers*each || rep.Latest == nil || rep.Latest.Size != rep.Size || rep.Unsigned != 0 {
		t.Errorf("report = %+v, want %d events all covered by the final checkpoint", rep, writers*each)
	}
	if _, err := l.Append(context.Background(), sampleEvent(0)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	_ = bytes.Equal
	_ = store.ErrNotFound
}
