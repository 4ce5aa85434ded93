package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

const alertColumns = `id, rule, dedup_key, severity, title, subject, evidence, count, state, first_evidence, last_evidence,
	raised_at, acked_at, acked_by, resolved_at, resolved_by, note`

type rowScanner interface{ Scan(dest ...any) error }

func scanAlert(r rowScanner) (store.Alert, error) {
	var (
		a                                    store.Alert
		ev                                   []byte
		first, last, raised, acked, resolved int64
	)
	if err := r.Scan(&a.ID, &a.Rule, &a.DedupKey, &a.Severity, &a.Title, &a.Subject, &ev, &a.Count, &a.State, &first, &last,
		&raised, &acked, &a.AckedBy, &resolved, &a.ResolvedBy, &a.Note); err != nil {
		return a, err
	}
	if err := json.Unmarshal(ev, &a.Evidence); err != nil {
		return a, fmt.Errorf("alert %s: evidence: %w", a.ID, err)
	}
	a.FirstEvidence, a.LastEvidence, a.RaisedAt, a.AckedAt, a.ResolvedAt = fromNano(first), fromNano(last), fromNano(raised), fromNano(acked), fromNano(resolved)
	return a, nil
}

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
		cur, err := scanAlert(tx.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE dedup_key = ? AND state != 'resolved'`, r.DedupKey))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if r.Evidence == nil {
				r.Evidence = []store.Evidence{}
			}
			r.Evidence = r.Evidence[:min(len(r.Evidence), store.MaxEvidence)]
			ev, _ := json.Marshal(r.Evidence)
			if _, err := tx.ExecContext(ctx, `INSERT INTO alerts (`+alertColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,'',0,'','')`,
				r.ID, r.Rule, r.DedupKey, r.Severity, r.Title, r.Subject, ev, r.Count, store.AlertOpen,
				unixNano(r.FirstEvidence), unixNano(r.LastEvidence), unixNano(r.RaisedAt)); err != nil {
				return nil, fmt.Errorf("raise alert %s: %w", r.Rule, err)
			}
			r.State = store.AlertOpen
			out = append(out, store.RaisedAlert{Alert: r, Created: true})
			if webhooks == nil {
				continue
			}
			body, _ := json.Marshal(alertJSON(r))
			for _, w := range webhooks(r) {
				if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_outbox (webhook, alert, body, attempts, next_attempt, created_at,
					delivered_at, failed, last_error) VALUES (?,?,?,0,?,?,0,0,'')`, w, r.ID, body, unixNano(r.RaisedAt), unixNano(r.RaisedAt)); err != nil {
					return nil, fmt.Errorf("queue webhook %s for alert %s: %w", w, r.ID, err)
				}
			}
		case err != nil:
			return nil, fmt.Errorf("raise alert %s: %w", r.Rule, err)
		default:
			cur.Count += r.Count
			if r.LastEvidence.After(cur.LastEvidence) {
				cur.LastEvidence = r.LastEvidence
			}
			if r.FirstEvidence.Before(cur.FirstEvidence) {
				cur.FirstEvidence = r.FirstEvidence
			}
			for _, e := range r.Evidence {
				if len(cur.Evidence) < store.MaxEvidence {
					cur.Evidence = append(cur.Evidence, e)
				}
			}
			ev, _ := json.Marshal(cur.Evidence)
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

// alertJSON is the alert as the outbox keeps it: the fields a webhook
// receiver needs, with stable names.
func alertJSON(a store.Alert) any {
	return struct {
		ID            string           `json:"id"`
		Rule          string           `json:"rule"`
		Severity      string           `json:"severity"`
		Title         string           `json:"title"`
		Subject       string           `json:"subject"`
		Count         int64            `json:"count"`
		FirstEvidence time.Time        `json:"first_evidence"`
		RaisedAt      time.Time        `json:"raised_at"`
		Evidence      []store.Evidence `json:"evidence"`
	}{a.ID, a.Rule, a.Severity, a.Title, a.Subject, a.Count, a.FirstEvidence, a.RaisedAt, a.Evidence}
}

// GetAlert implements store.Alerts.
func (d *DB) GetAlert(ctx context.Context, id string) (store.Alert, error) {
	a, err := scanAlert(d.db.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ?`, id))
	if err != nil {
		return a, fmt.Errorf("get alert %s: %w", id, notFound(err))
	}
	return a, nil
}

// ListAlerts implements store.Alerts.
func (d *DB) ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"state", f.State}, {"rule", f.Rule}, {"severity", f.Severity}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if !f.RaisedSince.IsZero() {
		where = append(where, "raised_at >= ?")
		args = append(args, unixNano(f.RaisedSince))
	}
	q := `SELECT ` + alertColumns + ` FROM alerts`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY raised_at DESC, id`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
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
	a, err := scanAlert(tx.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ?`, id))
	if err != nil {
		return a, fmt.Errorf("update alert %s: %w", id, notFound(err))
	}
	if a.State == state || a.State == store.AlertResolved {
		return a, fmt.Errorf("alert %s is already %s: %w", id, a.State, store.ErrExists)
	}
	if note != "" {
		a.Note = note
	}
	switch state {
	case store.AlertAcknowledged:
		a.AckedAt, a.AckedBy = at, who
	case store.AlertResolved:
		a.ResolvedAt, a.ResolvedBy = at, who
		if a.AckedAt.IsZero() {
			// Resolving is also looking at it.
			a.AckedAt, a.AckedBy = at, who
		}
	default:
		return a, fmt.Errorf("update alert %s: state %q is not acknowledged or resolved", id, state)
	}
	a.State = state
	if _, err := tx.ExecContext(ctx, `UPDATE alerts SET state = ?, acked_at = ?, acked_by = ?, resolved_at = ?, resolved_by = ?, note = ? WHERE id = ?`,
		a.State, unixNano(a.AckedAt), a.AckedBy, unixNano(a.ResolvedAt), a.ResolvedBy, a.Note, id); err != nil {
		return a, fmt.Errorf("update alert %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return a, fmt.Errorf("update alert %s: %w", id, err)
	}
	return a, nil
}

const deliveryColumns = `id, webhook, alert, body, attempts, next_attempt, created_at, delivered_at, failed, last_error`

func scanDelivery(r rowScanner) (store.Delivery, error) {
	var (
		dl                       store.Delivery
		next, created, delivered int64
	)
	err := r.Scan(&dl.ID, &dl.Webhook, &dl.Alert, &dl.Body, &dl.Attempts, &next, &created, &delivered, &dl.Failed, &dl.LastError)
	dl.NextAttempt, dl.CreatedAt, dl.DeliveredAt = fromNano(next), fromNano(created), fromNano(delivered)
	return dl, err
}

func (d *DB) listDeliveries(ctx context.Context, q string, args ...any) ([]store.Delivery, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_outbox `+q, args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		dl, err := scanDelivery(rows)
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
