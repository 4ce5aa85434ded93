package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
)

const taskColumns = rowcodec.TaskColumns

// CreateTask implements store.Tasks.
func (d *DB) CreateTask(ctx context.Context, t store.Task) (store.Task, error) {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = d.now()
	}
	t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC()
	auds, err := json.Marshal(nonNil(t.Audiences))
	if err != nil {
		return store.Task{}, fmt.Errorf("create task %q: %w", t.ID, err)
	}
	scopes, err := json.Marshal(nonNil(t.Scopes))
	if err != nil {
		return store.Task{}, fmt.Errorf("create task %q: %w", t.ID, err)
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO tasks (`+taskColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		t.ID, t.SpiffeID, t.Instance, t.Purpose, t.OnBehalfOf, string(auds), string(scopes), t.State, t.Budget, t.Calls,
		t.Policy, t.Rule, t.Approval, t.Reason, unixNano(t.CreatedAt), unixNano(t.ExpiresAt), unixNano(t.ClosedAt), t.BindInstance)
	if isUnique(err) {
		return store.Task{}, fmt.Errorf("create task %q: %w", t.ID, store.ErrExists)
	}
	if err != nil {
		return store.Task{}, fmt.Errorf("create task %q: %w", t.ID, err)
	}
	return t, nil
}

// GetTask implements store.Tasks.
func (d *DB) GetTask(ctx context.Context, id string) (store.Task, error) {
	t, err := scanTask(d.db.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`, id))
	if err != nil {
		return store.Task{}, fmt.Errorf("get task %q: %w", id, err)
	}
	return t, nil
}

// ListTasks implements store.Tasks.
func (d *DB) ListTasks(ctx context.Context, f store.TaskFilter) ([]store.Task, error) {
	var (
		where []string
		args  []any
	)
	for _, c := range []struct{ col, v string }{{"spiffe_id", f.SpiffeID}, {"instance", f.Instance}, {"state", f.State}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	q := `SELECT ` + taskColumns + ` FROM tasks`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	return d.queryTasks(ctx, "list tasks", q+` ORDER BY created_at DESC, id DESC`, args...)
}

// ExpiredTasks implements store.Tasks.
func (d *DB) ExpiredTasks(ctx context.Context, now time.Time) ([]store.Task, error) {
	return d.queryTasks(ctx, "list expired tasks", `SELECT `+taskColumns+` FROM tasks
		WHERE state IN ('open', 'pending') AND expires_at <= ? ORDER BY expires_at`, unixNano(now))
}

func (d *DB) queryTasks(ctx context.Context, what, q string, args ...any) ([]store.Task, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []store.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// TransitionTask implements store.Tasks.
func (d *DB) TransitionTask(ctx context.Context, id string, from []string, to, reason string, at time.Time) (store.Task, error) {
	if len(from) == 0 {
		return store.Task{}, fmt.Errorf("transition task %q: no source states given", id)
	}
	closedAt := int64(0)
	if to == store.TaskClosed || to == store.TaskDenied {
		closedAt = unixNano(at)
	}
	args := []any{to, reason, closedAt, id}
	for _, s := range from {
		args = append(args, s)
	}
	res, err := d.db.ExecContext(ctx, `UPDATE tasks SET state = ?, reason = ?, closed_at = ?
		WHERE id = ? AND state IN (?`+strings.Repeat(",?", len(from)-1)+`)`, args...)
	if err != nil {
		return store.Task{}, fmt.Errorf("transition task %q to %s: %w", id, to, err)
	}
	return d.afterConditional(ctx, res, id, "transition task %q to "+to)
}

// ChargeTask implements store.Tasks.
func (d *DB) ChargeTask(ctx context.Context, id string, now time.Time) (store.Task, error) {
	res, err := d.db.ExecContext(ctx, `UPDATE tasks SET calls = calls + 1
		WHERE id = ? AND state = 'open' AND expires_at > ? AND (budget = 0 OR calls < budget)`, id, unixNano(now))
	if err != nil {
		return store.Task{}, fmt.Errorf("charge task %q: %w", id, err)
	}
	return d.afterConditional(ctx, res, id, "charge task %q")
}

// RecordTaskCalls implements store.Tasks.
func (d *DB) RecordTaskCalls(ctx context.Context, id string, calls int64) error {
	res, err := d.db.ExecContext(ctx, `UPDATE tasks SET calls = MAX(calls, ?) WHERE id = ?`, calls, id)
	if err != nil {
		return fmt.Errorf("record calls of task %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("record calls of task %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("record calls of task %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// afterConditional reads the task back after a conditional update and
// reports ErrPrecondition when the update matched nothing.
func (d *DB) afterConditional(ctx context.Context, res interface{ RowsAffected() (int64, error) }, id, what string) (store.Task, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return store.Task{}, fmt.Errorf(what+": %w", id, err)
	}
	t, err := d.GetTask(ctx, id)
	if err != nil {
		return store.Task{}, err
	}
	if n == 0 {
		return t, fmt.Errorf(what+": task is %s: %w", id, t.State, store.ErrPrecondition)
	}
	return t, nil
}

func scanTask(s scanner) (store.Task, error) {
	t, err := rowcodec.ScanTask(s.Scan)
	return t, notFound(err)
}

var nonNil = rowcodec.NonNil

// PutRevocation implements store.Revocations.
func (d *DB) PutRevocation(ctx context.Context, r store.Revocation) (store.Revocation, bool, error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = d.now()
	}
	r.CreatedAt = r.CreatedAt.UTC()
	res, err := d.db.ExecContext(ctx, `INSERT INTO revocations (kind, value, reason, actor, created_at, expires_at)
		VALUES (?,?,?,?,?,?) ON CONFLICT(kind, value) DO NOTHING`,
		r.Kind, r.Value, r.Reason, r.Actor, unixNano(r.CreatedAt), unixNano(r.ExpiresAt))
	if err != nil {
		return store.Revocation{}, false, fmt.Errorf("revoke %s %q: %w", r.Kind, r.Value, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return store.Revocation{}, false, fmt.Errorf("revoke %s %q: %w", r.Kind, r.Value, err)
	} else if n == 1 {
		return r, true, nil
	}
	var cur store.Revocation
	var created, exp int64
	err = d.db.QueryRowContext(ctx, `SELECT kind, value, reason, actor, created_at, expires_at FROM revocations
		WHERE kind = ? AND value = ?`, r.Kind, r.Value).Scan(&cur.Kind, &cur.Value, &cur.Reason, &cur.Actor, &created, &exp)
	if err != nil {
		return store.Revocation{}, false, fmt.Errorf("revoke %s %q: %w", r.Kind, r.Value, notFound(err))
	}
	cur.CreatedAt, cur.ExpiresAt = fromNano(created), fromNano(exp)
	return cur, false, nil
}

// DeleteRevocation implements store.Revocations.
func (d *DB) DeleteRevocation(ctx context.Context, kind, value string) (store.Revocation, error) {
	var r store.Revocation
	var created, exp int64
	err := d.db.QueryRowContext(ctx, `DELETE FROM revocations WHERE kind = ? AND value = ?
		RETURNING kind, value, reason, actor, created_at, expires_at`, kind, value).Scan(&r.Kind, &r.Value, &r.Reason, &r.Actor, &created, &exp)
	if err != nil {
		return store.Revocation{}, fmt.Errorf("lift revocation of %s %q: %w", kind, value, notFound(err))
	}
	r.CreatedAt, r.ExpiresAt = fromNano(created), fromNano(exp)
	return r, nil
}

// ListRevocations implements store.Revocations.
func (d *DB) ListRevocations(ctx context.Context, now time.Time) ([]store.Revocation, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT kind, value, reason, actor, created_at, expires_at FROM revocations
		WHERE ? = 0 OR expires_at = 0 OR expires_at > ? ORDER BY created_at, kind, value`, unixNano(now), unixNano(now))
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		var r store.Revocation
		var created, exp int64
		if err := rows.Scan(&r.Kind, &r.Value, &r.Reason, &r.Actor, &created, &exp); err != nil {
			return nil, fmt.Errorf("list revocations: %w", err)
		}
		r.CreatedAt, r.ExpiresAt = fromNano(created), fromNano(exp)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	return out, nil
}

// PruneRevocations implements store.Revocations.
func (d *DB) PruneRevocations(ctx context.Context, now time.Time) (int, error) {
	res, err := d.db.ExecContext(ctx, `DELETE FROM revocations WHERE expires_at != 0 AND expires_at <= ?`, unixNano(now))
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", err)
	}
	return int(n), nil
}

const approvalColumns = `id, kind, spiffe_id, instance, task, on_behalf_of, target, reason, policy, rule, approvers,
	state, created_at, expires_at, decided_at, decided_by, comment, binding, used_at`

// CreateApproval implements store.Approvals.
func (d *DB) CreateApproval(ctx context.Context, a store.Approval) (store.Approval, error) {
	if a.CreatedAt.IsZero() {
		a.CreatedAt = d.now()
	}
	a.CreatedAt, a.ExpiresAt = a.CreatedAt.UTC(), a.ExpiresAt.UTC()
	apr, err := json.Marshal(nonNil(a.Approvers))
	if err != nil {
		return store.Approval{}, fmt.Errorf("create approval %q: %w", a.ID, err)
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO approvals (`+approvalColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		a.ID, a.Kind, a.SpiffeID, a.Instance, a.Task, a.OnBehalfOf, a.Target, a.Reason, a.Policy, a.Rule, string(apr),
		a.State, unixNano(a.CreatedAt), unixNano(a.ExpiresAt), unixNano(a.DecidedAt), a.DecidedBy, a.Comment, a.Binding, unixNano(a.UsedAt))
	if isUnique(err) {
		return store.Approval{}, fmt.Errorf("create approval %q: %w", a.ID, store.ErrExists)
	}
	if err != nil {
		return store.Approval{}, fmt.Errorf("create approval %q: %w", a.ID, err)
	}
	return a, nil
}

// GetApproval implements store.Approvals.
func (d *DB) GetApproval(ctx context.Context, id string) (store.Approval, error) {
	a, err := scanApproval(d.db.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = ?`, id))
	if err != nil {
		return store.Approval{}, fmt.Errorf("get approval %q: %w", id, err)
	}
	return a, nil
}

// ListApprovals implements store.Approvals.
func (d *DB) ListApprovals(ctx context.Context, state string) ([]store.Approval, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+approvalColumns+` FROM approvals
		WHERE ? = '' OR state = ? ORDER BY created_at DESC, id DESC`, state, state)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	defer rows.Close()
	var out []store.Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, fmt.Errorf("list approvals: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	return out, nil
}

// DecideApproval implements store.Approvals.
func (d *DB) DecideApproval(ctx context.Context, id, state, by, comment string, at time.Time) (store.Approval, error) {
	res, err := d.db.ExecContext(ctx, `UPDATE approvals SET state = ?, decided_by = ?, comment = ?, decided_at = ?
		WHERE id = ? AND state = 'pending'`, state, by, comment, unixNano(at), id)
	if err != nil {
		return store.Approval{}, fmt.Errorf("decide approval %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.Approval{}, fmt.Errorf("decide approval %q: %w", id, err)
	}
	a, err := d.GetApproval(ctx, id)
	if err != nil {
		return store.Approval{}, err
	}
	if n == 0 {
		return a, fmt.Errorf("decide approval %q: it is already %s: %w", id, a.State, store.ErrPrecondition)
	}
	return a, nil
}

// UseApproval implements store.Approvals.
func (d *DB) UseApproval(ctx context.Context, id, binding string, at time.Time) (store.Approval, error) {
	res, err := d.db.ExecContext(ctx, `UPDATE approvals SET used_at = ?
		WHERE id = ? AND state = 'approved' AND used_at = 0 AND binding = ?`, unixNano(at), id, binding)
	if err != nil {
		return store.Approval{}, fmt.Errorf("use approval %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.Approval{}, fmt.Errorf("use approval %q: %w", id, err)
	}
	a, err := d.GetApproval(ctx, id)
	if err != nil {
		return store.Approval{}, err
	}
	if n == 0 {
		return a, fmt.Errorf("use approval %q: %w", id, store.ErrPrecondition)
	}
	return a, nil
}

func scanApproval(s scanner) (store.Approval, error) {
	var (
		a                       store.Approval
		apr                     string
		created, exp, decidedAt int64
		usedAt                  int64
	)
	err := s.Scan(&a.ID, &a.Kind, &a.SpiffeID, &a.Instance, &a.Task, &a.OnBehalfOf, &a.Target, &a.Reason, &a.Policy, &a.Rule,
		&apr, &a.State, &created, &exp, &decidedAt, &a.DecidedBy, &a.Comment, &a.Binding, &usedAt)
	if err != nil {
		return store.Approval{}, notFound(err)
	}
	if err := json.Unmarshal([]byte(apr), &a.Approvers); err != nil {
		return store.Approval{}, fmt.Errorf("decode approvers of %q: %w", a.ID, err)
	}
	if len(a.Approvers) == 0 {
		a.Approvers = nil
	}
	a.CreatedAt, a.ExpiresAt, a.DecidedAt, a.UsedAt = fromNano(created), fromNano(exp), fromNano(decidedAt), fromNano(usedAt)
	return a, nil
}

// TouchTask implements store.TaskFlows.
func (d *DB) TouchTask(ctx context.Context, task string, labels []string, via string, at time.Time) error {
	if len(labels) == 0 {
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record flow labels of task %q: %w", task, err)
	}
	defer tx.Rollback()
	for _, l := range labels {
		if _, err := tx.ExecContext(ctx, `INSERT INTO task_flows (task, label, via, at) VALUES (?, ?, ?, ?)
			ON CONFLICT (task, label) DO NOTHING`, task, l, via, unixNano(at)); err != nil {
			return fmt.Errorf("record flow labels of task %q: %w", task, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record flow labels of task %q: %w", task, err)
	}
	return nil
}

// TaskFlows implements store.TaskFlows.
func (d *DB) TaskFlows(ctx context.Context, task string) ([]store.FlowLabel, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT label, via, at FROM task_flows WHERE task = ? ORDER BY at, label`, task)
	if err != nil {
		return nil, fmt.Errorf("read flow labels of task %q: %w", task, err)
	}
	defer rows.Close()
	var out []store.FlowLabel
	for rows.Next() {
		var (
			f  store.FlowLabel
			at int64
		)
		if err := rows.Scan(&f.Label, &f.Via, &at); err != nil {
			return nil, fmt.Errorf("read flow labels of task %q: %w", task, err)
		}
		f.At = fromNano(at)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read flow labels of task %q: %w", task, err)
	}
	return out, nil
}
