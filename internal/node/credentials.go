package node

import (
	"context"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/broker"
)

// credentialTTL is how long the node's proxy uses a credential fetched
// from the server before fetching it again: a rotation on the server
// reaches the node's proxy within it (and at once when the server pushes
// a changed Service).
const credentialTTL = 30 * time.Second

// cachedCredentials is the node proxy's source of upstream credentials
// (access.Credentials): the server's broker through the node API
// (remoteCredentials), each value kept in memory only, for credentialTTL,
// so that a proxied request does not wait for a round trip to the server.
// Nothing is written to disk. While the node is failing closed nothing
// is handed out, cached or not.
type cachedCredentials struct {
	n    *Node
	from remoteCredentials
	now  func() time.Time

	mu sync.Mutex
	m  map[string]cachedCredential
}

type cachedCredential struct {
	info    broker.Info
	secret  broker.Secret
	fetched time.Time
}

func newCachedCredentials(n *Node) *cachedCredentials {
	now := n.c.Now
	if now == nil {
		now = time.Now
	}
	return &cachedCredentials{n: n, from: remoteCredentials{n}, now: now, m: map[string]cachedCredential{}}
}

// Get implements access.Credentials.
func (c *cachedCredentials) Get(ctx context.Context, name string) (broker.Info, broker.Secret, error) {
	if c.n.failClosed() {
		c.forget()
		return c.from.Get(ctx, name) // refuses, saying why
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[name]
	c.mu.Unlock()
	if ok && now.Sub(e.fetched) < credentialTTL && now.Sub(e.fetched) >= 0 {
		return e.info, e.secret, nil
	}
	info, sec, err := c.from.Get(ctx, name)
	if err != nil {
		c.mu.Lock()
		delete(c.m, name)
		c.mu.Unlock()
		return info, sec, err
	}
	c.mu.Lock()
	c.m[name] = cachedCredential{info: info, secret: sec, fetched: now}
	c.mu.Unlock()
	return info, sec, nil
}

// forget drops every kept value (the server pushed changed documents, or
// the node is failing closed).
func (c *cachedCredentials) forget() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
