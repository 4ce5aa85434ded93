package attest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// errExeChanged reports that the file behind /proc/PID/exe changed between
// two looks at it: the process executed a new program mid-attestation.
var errExeChanged = errors.New("the process executed a new program during attestation; retry")

// digestCache maps file identities to SHA-256 digests. Each file is hashed
// at most once while its entry is cached, however many callers ask at the
// same time, so repeated attestation cannot be used to burn CPU.
type digestCache struct {
	mu      sync.Mutex
	entries *lru[fileKey, *digestEntry]
	hashes  atomic.Int64 // files hashed, for tests and metrics
}

type digestEntry struct {
	done chan struct{} // closed when sum and err are set
	sum  string
	err  error
}

func newDigestCache(size int) *digestCache {
	return &digestCache{entries: newLRU[fileKey, *digestEntry](size)}
}

// get returns the hex SHA-256 of the file identified by key. On a miss it
// calls open and hashes the file it returns; open must fail with
// errExeChanged if that file is not the one key names. Hashing continues
// if ctx is cancelled, so that the work is not wasted, but get returns.
//
// A caller that waited for another caller's hash and saw it fail tries
// again with its own open: the failure may have been the other process's
// (it exited, or executed something else), not this one's.
func (c *digestCache) get(ctx context.Context, key fileKey, open func() (*os.File, error)) (string, error) {
	const maxWaits = 3
	for waits := 0; ; waits++ {
		e, leader := c.entry(key)
		if leader {
			f, err := open()
			if err != nil {
				c.finish(key, e, "", err)
				return "", err
			}
			go func() {
				sum, err := c.hash(f, key)
				c.finish(key, e, sum, err)
			}()
		}
		select {
		case <-e.done:
			if e.err != nil && !leader && waits < maxWaits {
				continue
			}
			return e.sum, e.err
		case <-ctx.Done():
			return "", fmt.Errorf("hash executable: %w", ctx.Err())
		}
	}
}

// entry returns the cache entry for key, creating it if there is none, in
// which case the caller is its leader and must finish it.
func (c *digestCache) entry(key fileKey) (e *digestEntry, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries.get(key); ok {
		return e, false
	}
	e = &digestEntry{done: make(chan struct{})}
	c.entries.add(key, e)
	return e, true
}

// finish publishes the outcome; failures are not cached.
func (c *digestCache) finish(key fileKey, e *digestEntry, sum string, err error) {
	e.sum, e.err = sum, err
	if err != nil {
		c.mu.Lock()
		if cur, ok := c.entries.get(key); ok && cur == e {
			c.entries.remove(key)
		}
		c.mu.Unlock()
	}
	close(e.done)
}

// hash digests f, which must still be the file key names when it is done.
func (c *digestCache) hash(f *os.File, key fileKey) (string, error) {
	defer f.Close()
	c.hashes.Add(1)
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash executable %s: %w", f.Name(), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", fmt.Errorf("stat executable %s: %w", f.Name(), err)
	}
	if keyOf(&st) != key {
		return "", fmt.Errorf("hash executable %s: file changed while it was read: %w", f.Name(), errExeChanged)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
