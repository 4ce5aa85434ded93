package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
)

type rowScanner interface{ Scan(dest ...any) error }

func scanAlert(r rowScanner) (store.Alert, error) { return rowcodec.ScanAlert(r.Scan) }

// RaiseAlerts implements store.Alerts.
func (d *DB) RaiseAlerts(ctx context.Context, from, next int64, state []byte, raises []store.Alert, webhooks func(store.Alert) []string) ([]store.RaisedAlert, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("raise alerts: %w", err)
	}
	defer tx.Rollback()
	if err := moveCursor(ctx, tx, store.CursorAlerts, from, next, state); err != nil {
		return nil, fmt.Errorf("raise alerts: %w", err)
	}
	var out []store.RaisedAlert
	for _, r := range raises {
		cur, err := scanAlert(tx.QueryRowContext(ctx, `SELECT `+rowcodec.AlertColumns+` FROM alerts WHERE dedup_key = ? AND state != 'resolved'`, r.DedupKey))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			r, ev := rowcodec.NewAlert(r)
			if _, err := tx.ExecContext(ctx, `INSERT INTO alerts (`+rowcodec.AlertColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,'',0,'','')`,
				r.ID, r.Rule, r.DedupKey, r.Severity, r.Title, r.Subject, ev, r.Count, r.State,
				unixNano(r.FirstEvidence), unixNano(r.LastEvidence), unixNano(r.RaisedAt)); err != nil {
				return nil, fmt.Errorf("raise alert %s: %w", r.Rule, err)
			}
			out = append(out, store.RaisedAlert{Alert: r, Created: true})
			if webhooks == nil {
				continue
			}
			body := rowcodec.AlertBody(r)
			for _, w := range webhooks(r) {
				if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_outbox (webhook, alert, body, attempts, next_attempt, created_at,
					delivered_at, failed, last_error) VALUES (?,?,?,0,?,?,0,0,'')`, w, r.ID, body, unixNano(r.RaisedAt), unixNano(r.RaisedAt)); err != nil {
					return nil, fmt.Errorf("queue webhook %s for alert %s: %w", w, r.ID, err)
				}
			}
		case err != nil:
			return nil, fmt.Errorf("raise alert %s: %w", r.Rule, err)
		default:
			cur, ev := rowcodec.MergeAlert(cur, r)
			if _, err := tx.ExecContext(ctx, `UPDATE alerts SET count = ?, first_evidence = ?, last_evidence = ?, evidence = ? WHERE id = ?`,
				cur.Count, unixNano(cur.FirstEvidence), unixNano(cur.LastEvidence), ev, cur.ID); err != nil {
				return nil, fmt.Errorf("add to alert %s: %w", cur.ID, err)
			}
			out = append(out, store.RaisedAlert{Alert: cur})
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("raise alerts: %w", err)
	}
	return out, nil
}

// GetAlert implements store.Alerts.
func (d *DB) GetAlert(ctx context.Context, id string) (store.Alert, error) {
	a, err := scanAlert(d.db.QueryRowContext(ctx, `SELECT `+rowcodec.AlertColumns+` FROM alerts WHERE id = ?`, id))
	if err != nil {
		return a, fmt.Errorf("get alert %s: %w", id, notFound(err))
	}
	return a, nil
}

// ListAlerts implements store.Alerts.
func (d *DB) ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	q, args := rowcodec.AlertQuery(f, func(int) string { return "?" })
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	var out []store.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// SetAlertState implements store.Alerts.
func (d *DB) SetAlertState(ctx context.Context, id, state, who, note string, at time.Time) (store.Alert, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Alert{}, fmt.Errorf("update alert %s: %w", id, err)
	}
	defer tx.Rollback()
	a, err := scanAlert(tx.QueryRowContext(ctx, `SELECT `+rowcodec.AlertColumns+` FROM alerts WHERE id = ?`, id))
	if err != nil {
		return a, fmt.Errorf("update alert %s: %w", id, notFound(err))
	}
	if a, err = rowcodec.AlertTransition(a, state, who, note, at); err != nil {
		return a, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE alerts SET state = ?, acked_at = ?, acked_by = ?, resolved_at = ?, resolved_by = ?, note = ? WHERE id = ?`,
		a.State, unixNano(a.AckedAt), a.AckedBy, unixNano(a.ResolvedAt), a.ResolvedBy, a.Note, id); err != nil {
		return a, fmt.Errorf("update alert %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return a, fmt.Errorf("update alert %s: %w", id, err)
	}
	return a, nil
}

func (d *DB) listDeliveries(ctx context.Context, q string, args ...any) ([]store.Delivery, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+rowcodec.DeliveryColumns+` FROM webhook_outbox `+q, args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		dl, err := rowcodec.ScanDelivery(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list webhook deliveries: %w", err)
		}
		out = append(out, dl)
	}
	return out, rows.Err()
}

// DueDeliveries implements store.Alerts.
func (d *DB) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.Delivery, error) {
	return d.listDeliveries(ctx, `WHERE delivered_at = 0 AND failed = 0 AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?`, unixNano(now), limit)
}

// ListDeliveries implements store.Alerts.
func (d *DB) ListDeliveries(ctx context.Context, alert string) ([]store.Delivery, error) {
	return d.listDeliveries(ctx, `WHERE alert = ? ORDER BY id`, alert)
}

// UpdateDelivery implements store.Alerts.
func (d *DB) UpdateDelivery(ctx context.Context, dl store.Delivery) error {
	res, err := d.db.ExecContext(ctx, `UPDATE webhook_outbox SET attempts = ?, next_attempt = ?, delivered_at = ?, failed = ?, last_error = ? WHERE id = ?`,
		dl.Attempts, unixNano(dl.NextAttempt), unixNano(dl.DeliveredAt), dl.Failed, dl.LastError, dl.ID)
	if err != nil {
		return fmt.Errorf("update webhook delivery %d: %w", dl.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update webhook delivery %d: %w", dl.ID, store.ErrNotFound)
	}
	return nil
}
