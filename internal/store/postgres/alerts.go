package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
)

var _ store.Alerts = (*DB)(nil)

func scanAlert(r pgx.Row) (store.Alert, error) { return rowcodec.ScanAlert(r.Scan) }

// RaiseAlerts implements store.Alerts. The cursor moves first: its row
// lock orders concurrent raisers, so an alert is never raised twice for
// the same events.
func (d *DB) RaiseAlerts(ctx context.Context, from, next int64, state []byte, raises []store.Alert, webhooks func(store.Alert) []string) ([]store.RaisedAlert, error) {
	var out []store.RaisedAlert
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		out = nil
		if err := moveCursor(ctx, tx, store.CursorAlerts, from, next, state); err != nil {
			return err
		}
		for _, r := range raises {
			cur, err := scanAlert(tx.QueryRow(ctx, `SELECT `+rowcodec.AlertColumns+` FROM alerts WHERE dedup_key = $1 AND state != 'resolved' FOR UPDATE`, r.DedupKey))
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				r, ev := rowcodec.NewAlert(r)
				if _, err := tx.Exec(ctx, `INSERT INTO alerts (`+rowcodec.AlertColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,0,'',0,'','')`,
					r.ID, r.Rule, r.DedupKey, r.Severity, r.Title, r.Subject, ev, r.Count, r.State,
					unixNano(r.FirstEvidence), unixNano(r.LastEvidence), unixNano(r.RaisedAt)); err != nil {
					return fmt.Errorf("raise alert %s: %w", r.Rule, err)
				}
				out = append(out, store.RaisedAlert{Alert: r, Created: true})
				if webhooks == nil {
					continue
				}
				body := rowcodec.AlertBody(r)
				for _, w := range webhooks(r) {
					if _, err := tx.Exec(ctx, `INSERT INTO webhook_outbox (webhook, alert, body, attempts, next_attempt, created_at,
						delivered_at, failed, last_error) VALUES ($1,$2,$3,0,$4,$5,0,false,'')`, w, r.ID, body, unixNano(r.RaisedAt), unixNano(r.RaisedAt)); err != nil {
						return fmt.Errorf("queue webhook %s for alert %s: %w", w, r.ID, err)
					}
				}
			case err != nil:
				return fmt.Errorf("raise alert %s: %w", r.Rule, err)
			default:
				cur, ev := rowcodec.MergeAlert(cur, r)
				if _, err := tx.Exec(ctx, `UPDATE alerts SET count = $1, first_evidence = $2, last_evidence = $3, evidence = $4 WHERE id = $5`,
					cur.Count, unixNano(cur.FirstEvidence), unixNano(cur.LastEvidence), ev, cur.ID); err != nil {
					return fmt.Errorf("add to alert %s: %w", cur.ID, err)
				}
				out = append(out, store.RaisedAlert{Alert: cur})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("raise alerts: %w", err)
	}
	return out, nil
}

// GetAlert implements store.Alerts.
func (d *DB) GetAlert(ctx context.Context, id string) (store.Alert, error) {
	a, err := scanAlert(d.pool.QueryRow(ctx, `SELECT `+rowcodec.AlertColumns+` FROM alerts WHERE id = $1`, id))
	if err != nil {
		return a, fmt.Errorf("get alert %s: %w", id, notFound(err))
	}
	return a, nil
}

// ListAlerts implements store.Alerts.
func (d *DB) ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	q, args := rowcodec.AlertQuery(f, placeholder)
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	out, err := collect(rows, scanAlert)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// SetAlertState implements store.Alerts; the row is locked while its
// state is checked.
func (d *DB) SetAlertState(ctx context.Context, id, state, who, note string, at time.Time) (store.Alert, error) {
	var a store.Alert
	var cond error
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var err error
		a, err = scanAlert(tx.QueryRow(ctx, `SELECT `+rowcodec.AlertColumns+` FROM alerts WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return notFound(err)
		}
		if a, cond = rowcodec.AlertTransition(a, state, who, note, at); cond != nil {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE alerts SET state = $1, acked_at = $2, acked_by = $3, resolved_at = $4, resolved_by = $5, note = $6 WHERE id = $7`,
			a.State, unixNano(a.AckedAt), a.AckedBy, unixNano(a.ResolvedAt), a.ResolvedBy, a.Note, id)
		return err
	})
	if err != nil {
		return a, fmt.Errorf("update alert %s: %w", id, err)
	}
	return a, cond
}

func (d *DB) listDeliveries(ctx context.Context, q string, args ...any) ([]store.Delivery, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+rowcodec.DeliveryColumns+` FROM webhook_outbox `+q, args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	out, err := collect(rows, func(r pgx.Row) (store.Delivery, error) { return rowcodec.ScanDelivery(r.Scan) })
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return out, nil
}

// DueDeliveries implements store.Alerts.
func (d *DB) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.Delivery, error) {
	return d.listDeliveries(ctx, `WHERE delivered_at = 0 AND NOT failed AND next_attempt <= $1 ORDER BY next_attempt, id LIMIT $2`, unixNano(now), limit)
}

// ListDeliveries implements store.Alerts.
func (d *DB) ListDeliveries(ctx context.Context, alert string) ([]store.Delivery, error) {
	return d.listDeliveries(ctx, `WHERE alert = $1 ORDER BY id`, alert)
}

// UpdateDelivery implements store.Alerts.
func (d *DB) UpdateDelivery(ctx context.Context, dl store.Delivery) error {
	tag, err := d.pool.Exec(ctx, `UPDATE webhook_outbox SET attempts = $1, next_attempt = $2, delivered_at = $3, failed = $4, last_error = $5 WHERE id = $6`,
		dl.Attempts, unixNano(dl.NextAttempt), unixNano(dl.DeliveredAt), dl.Failed, dl.LastError, dl.ID)
	if err != nil {
		return fmt.Errorf("update webhook delivery %d: %w", dl.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update webhook delivery %d: %w", dl.ID, store.ErrNotFound)
	}
	return nil
}
