package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notify publishes payload on channel to every session listening on this
// database (PostgreSQL NOTIFY): the server-to-server wake-up. Notifications
// are hints, delivered at most once and only to listeners connected at the
// time; what they announce must be read from the store.
func (d *DB) Notify(ctx context.Context, channel, payload string) error {
	if _, err := d.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("notify %s: %w", channel, err)
	}
	return nil
}

// listenRetry bounds the wait before a lost listening connection is
// opened again.
const listenRetry = 5 * time.Second

// Listen calls fn with the payload of every notification on channel until
// ctx ends, on a connection of its own. When the connection is lost it
// connects again and calls fn with "" (notifications may have been missed
// meanwhile: the listener must read the store again). It returns ctx's
// error, or an error if channel is not a valid name.
func (d *DB) Listen(ctx context.Context, channel string, fn func(payload string)) error {
	if channel == "" || len(channel) > 63 {
		return fmt.Errorf("listen: channel name %q must be 1 to 63 bytes", channel)
	}
	ident := pgx.Identifier{channel}.Sanitize()
	first := true
	for {
		// A failed connection is retried; the store's own health check
		// (readyz) reports a database that is gone.
		_ = d.listenOnce(ctx, ident, func() {
			if !first {
				fn("") // reconnected: anything may have been missed
			}
			first = false
		}, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t := time.NewTimer(listenRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// listenOnce listens on one connection until it fails or ctx ends.
func (d *DB) listenOnce(ctx context.Context, ident string, listening func(), fn func(string)) error {
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection leaves the pool: it stays in LISTEN mode.
	conn := c.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+ident); err != nil {
		return err
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return ctx.Err()
			}
			return err
		}
		fn(n.Payload)
	}
}
