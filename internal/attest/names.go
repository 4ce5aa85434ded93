package attest

import (
	"errors"
	"log/slog"
	"os/user"
	"strconv"
	"sync"
	"time"
)

// nameTTL is how long a user or group name lookup is reused. Lookups may go
// through NSS (LDAP, sssd) and are too slow to repeat on every attestation;
// renaming a user is rare and takes effect after at most this long.
const nameTTL = time.Minute

// nameCacheSize bounds each of the user and group name caches.
const nameCacheSize = 1024

// nameCache resolves uids and gids to names with bounded, expiring caches.
type nameCache struct {
	now func() time.Time
	log *slog.Logger

	mu     sync.Mutex
	users  *lru[int, nameEntry]
	groups *lru[int, nameEntry]
}

type nameEntry struct {
	name    string // "" when the id has no name
	fetched time.Time
}

func newNameCache(now func() time.Time, log *slog.Logger) *nameCache {
	return &nameCache{
		now:    now,
		log:    log,
		users:  newLRU[int, nameEntry](nameCacheSize),
		groups: newLRU[int, nameEntry](nameCacheSize),
	}
}

// user returns the name of uid, or "" if it has none or the lookup failed.
func (c *nameCache) user(uid int) string {
	return c.lookup(c.users, uid, func(id string) (string, error) {
		u, err := user.LookupId(id)
		if err != nil {
			var unknown user.UnknownUserIdError
			if errors.As(err, &unknown) {
				return "", nil
			}
			return "", err
		}
		return u.Username, nil
	})
}

// group returns the name of gid, or "" if it has none or the lookup failed.
func (c *nameCache) group(gid int) string {
	return c.lookup(c.groups, gid, func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			var unknown user.UnknownGroupIdError
			if errors.As(err, &unknown) {
				return "", nil
			}
			return "", err
		}
		return g.Name, nil
	})
}

func (c *nameCache) lookup(cache *lru[int, nameEntry], id int, fetch func(string) (string, error)) string {
	now := c.now()
	c.mu.Lock()
	e, ok := cache.get(id)
	c.mu.Unlock()
	if ok && now.Sub(e.fetched) < nameTTL && !now.Before(e.fetched) {
		return e.name
	}
	// Look up without the lock: NSS may be slow, and a duplicate lookup
	// by a concurrent caller is harmless.
	name, err := fetch(strconv.Itoa(id))
	if err != nil {
		// Leave the name out rather than fail attestation: a missing
		// selector can only make fewer entries match.
		c.log.Warn("look up user or group name", "id", id, "error", err)
		return ""
	}
	c.mu.Lock()
	cache.add(id, nameEntry{name: name, fetched: now})
	c.mu.Unlock()
	return name
}
