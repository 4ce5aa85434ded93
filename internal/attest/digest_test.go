package attest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDigestWaiterRetriesAfterLeaderFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exe")
	if err := os.WriteFile(path, []byte("program"), 0o755); err != nil {
		t.Fatal(err)
	}
	key := mustKey(t, path)
	c := newDigestCache(4)
	ctx := context.Background()

	// The leader's process exits while it opens the file; a waiter for
	// another process running the same file must not inherit that error.
	release := make(chan struct{})
	leaderErr := make(chan error, 1)
	go func() {
		_, err := c.get(ctx, key, func() (*os.File, error) {
			<-release
			return nil, ErrProcessGone
		})
		leaderErr <- err
	}()
	for { // wait until the leader holds the entry
		c.mu.Lock()
		_, ok := c.entries.get(key)
		c.mu.Unlock()
		if ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	waiterSum := make(chan string, 1)
	waiterErr := make(chan error, 1)
	go func() {
		sum, err := c.get(ctx, key, func() (*os.File, error) { return os.Open(path) })
		waiterSum <- sum
		waiterErr <- err
	}()
	close(release)
	if err := <-leaderErr; !errors.Is(err, ErrProcessGone) {
		t.Errorf("leader: %v, want ErrProcessGone", err)
	}
	if err := <-waiterErr; err != nil {
		t.Fatalf("waiter inherited the leader's failure: %v", err)
	}
	if sum := <-waiterSum; sum != fileSHA256(t, path) {
		t.Errorf("waiter sum %s", sum)
	}
}

func TestDigestCancelledCallerDoesNotWasteHash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exe")
	if err := os.WriteFile(path, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 64<<20); err != nil { // sparse, slow enough to hash
		t.Fatal(err)
	}
	key := mustKey(t, path)
	c := newDigestCache(4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The caller gives up (unless, on a very slow machine, the hash
	// finished first), but the hash runs to the end and is cached.
	if _, err := c.get(ctx, key, func() (*os.File, error) { return os.Open(path) }); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("get with a cancelled context = %v", err)
	}
	sum, err := c.get(context.Background(), key, func() (*os.File, error) {
		t.Error("file opened again: the cancelled caller's hash was not kept")
		return os.Open(path)
	})
	if err != nil || sum != fileSHA256(t, path) {
		t.Fatalf("get = %s, %v", sum, err)
	}
	if n := c.hashes.Load(); n != 1 {
		t.Errorf("hashed %d times, want 1", n)
	}
}

func TestDigestRejectsChangedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exe")
	if err := os.WriteFile(path, []byte("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	key := mustKey(t, path)
	if err := os.WriteFile(path, []byte("v2, longer"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := newDigestCache(4)
	_, err := c.get(context.Background(), key, func() (*os.File, error) { return os.Open(path) })
	if !errors.Is(err, errExeChanged) {
		t.Fatalf("hash of a file that no longer matches its key = %v, want errExeChanged", err)
	}
	if c.entries.len() != 0 {
		t.Error("a failed hash was cached")
	}
}
