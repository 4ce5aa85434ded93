package store

import (
	"context"
	"time"
)

// Lease is the right of one holder to run a named job (the CA's key
// rotation, pruning) until ExpiresAt. Token grows every time the lease
// changes hands, so work done under an old lease can be told apart
// (a fencing token).
type Lease struct {
	Name      string
	Holder    string
	Token     int64
	ExpiresAt time.Time
}

// Leases elects one holder of a named job among the servers that share a
// store. A holder keeps a lease by acquiring it again before it expires;
// a lease whose holder stopped renewing is free once it has expired. On
// SQLite, whose store belongs to one process, the one server holds every
// lease it asks for.
type Leases interface {
	// AcquireLease takes lease name for holder until now+ttl if it is
	// free, expired at now, or held by holder already (a renewal keeps
	// the token). It returns the lease as stored and whether holder holds
	// it.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (Lease, bool, error)
	// ReleaseLease gives the lease up early if holder holds it; it is
	// not an error if it does not.
	ReleaseLease(ctx context.Context, name, holder string) error
}
