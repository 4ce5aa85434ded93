package token

import (
	"crypto/sha256"
	"sync"
	"time"
)

// sigCache remembers tokens whose signature verified, keyed by the SHA-256
// of the whole token, so a token presented again (every call of an agent's
// task) skips ECDSA verification and claim decoding. Only the signature
// and parse are cached: issuer, audience, expiry, binding, revocation and
// replay are checked on every presentation, and a hit is honoured only
// while the signing key is still in the key source. It is bounded; when
// full it drops expired entries, then everything.
type sigCache struct {
	max int
	mu  sync.RWMutex
	m   map[[32]byte]sigEntry
}

type sigEntry struct {
	c   *Claims
	kid string
}

func newSigCache(max int) *sigCache {
	if max < 0 {
		return nil
	}
	if max == 0 {
		max = 65536
	}
	return &sigCache{max: max, m: make(map[[32]byte]sigEntry)}
}

func (s *sigCache) get(k [32]byte) (sigEntry, bool) {
	s.mu.RLock()
	e, ok := s.m[k]
	s.mu.RUnlock()
	return e, ok
}

func (s *sigCache) put(k [32]byte, e sigEntry, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		for key, x := range s.m {
			if x.c.Expiry < now.Unix() {
				delete(s.m, key)
			}
		}
		if len(s.m) >= s.max {
			clear(s.m)
		}
	}
	s.m[k] = e
}

func tokenHash(raw string) [32]byte { return sha256.Sum256([]byte(raw)) }
