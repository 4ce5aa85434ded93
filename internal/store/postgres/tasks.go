package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"time"

	"github.com/jackc/pgx/v5"
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
	_, err = d.pool.Exec(ctx, `INSERT INTO tasks (`+taskColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)`,
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
	t, err := scanTask(d.pool.QueryRow(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = $1`, id))
	if err != nil {
		return store.Task{}, fmt.Errorf("get task %q: %w", id, err)
	}
	return t, nil
}

// ListTasks implements store.Tasks. The filter's fields are compared as
// parameters; an empty field matches everything.
func (d *DB) ListTasks(ctx context.Context, f store.TaskFilter) ([]store.Task, error) {
	return d.queryTasks(ctx, "list tasks", `SELECT `+taskColumns+` FROM tasks
		WHERE ($1::text = '' OR spiffe_id = $1) AND ($2::text = '' OR instance = $2) AND ($3::text = '' OR state = $3)
		ORDER BY created_at DESC, id DESC`, f.SpiffeID, f.Instance, f.State)
}

// ExpiredTasks implements store.Tasks.
func (d *DB) ExpiredTasks(ctx context.Context, now time.Time) ([]store.Task, error) {
	return d.queryTasks(ctx, "list expired tasks", `SELECT `+taskColumns+` FROM tasks
		WHERE state IN ('open', 'pending') AND expires_at <= $1 ORDER BY expires_at`, unixNano(now))
}

func (d *DB) queryTasks(ctx context.Context, what, q string, args ...any) ([]store.Task, error) {
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := collect(rows, scanTask)
	if err != nil {
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
	t, err := scanTask(d.pool.QueryRow(ctx, `UPDATE tasks SET state = $1, reason = $2, closed_at = $3
		WHERE id = $4 AND state = ANY($5) RETURNING `+taskColumns, to, reason, closedAt, id, from))
	return d.afterConditional(ctx, t, err, id, "transition task %q to "+to)
}

// ChargeTask implements store.Tasks.
func (d *DB) ChargeTask(ctx context.Context, id string, now time.Time) (store.Task, error) {
	t, err := scanTask(d.pool.QueryRow(ctx, `UPDATE tasks SET calls = calls + 1
		WHERE id = $1 AND state = 'open' AND expires_at > $2 AND (budget = 0 OR calls < budget) RETURNING `+taskColumns, id, unixNano(now)))
	return d.afterConditional(ctx, t, err, id, "charge task %q")
}

// RecordTaskCalls implements store.Tasks.
func (d *DB) RecordTaskCalls(ctx context.Context, id string, calls int64) error {
	tag, err := d.pool.Exec(ctx, `UPDATE tasks SET calls = GREATEST(calls, $1) WHERE id = $2`, calls, id)
	if err != nil {
		return fmt.Errorf("record calls of task %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record calls of task %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// afterConditional finishes a conditional update that returned the task
// it changed: when it matched nothing, it reads the task and reports
// ErrPrecondition with it (or ErrNotFound).
func (d *DB) afterConditional(ctx context.Context, t store.Task, err error, id, what string) (store.Task, error) {
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Task{}, fmt.Errorf(what+": %w", id, err)
	}
	cur, err := d.GetTask(ctx, id)
	if err != nil {
		return store.Task{}, err
	}
	return cur, fmt.Errorf(what+": task is %s: %w", id, cur.State, store.ErrPrecondition)
}

func scanTask(s pgx.Row) (store.Task, error) {
	t, err := rowcodec.ScanTask(s.Scan)
	return t, notFound(err)
}

var nonNil = rowcodec.NonNil

const revocationColumns = `kind, value, reason, actor, created_at, expires_at`

// PutRevocation implements store.Revocations.
func (d *DB) PutRevocation(ctx context.Context, r store.Revocation) (store.Revocation, bool, error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = d.now()
	}
	r.CreatedAt = r.CreatedAt.UTC()
	tag, err := d.pool.Exec(ctx, `INSERT INTO revocations (`+revocationColumns+`)
		VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (kind, value) DO NOTHING`,
		r.Kind, r.Value, r.Reason, r.Actor, unixNano(r.CreatedAt), unixNano(r.ExpiresAt))
	if err != nil {
		return store.Revocation{}, false, fmt.Errorf("revoke %s %q: %w", r.Kind, r.Value, err)
	}
	if tag.RowsAffected() == 1 {
		return r, true, nil
	}
	cur, err := scanRevocation(d.pool.QueryRow(ctx, `SELECT `+revocationColumns+` FROM revocations
		WHERE kind = $1 AND value = $2`, r.Kind, r.Value))
	if err != nil {
		return store.Revocation{}, false, fmt.Errorf("revoke %s %q: %w", r.Kind, r.Value, err)
	}
	return cur, false, nil
}

// DeleteRevocation implements store.Revocations.
func (d *DB) DeleteRevocation(ctx context.Context, kind, value string) (store.Revocation, error) {
	r, err := scanRevocation(d.pool.QueryRow(ctx, `DELETE FROM revocations WHERE kind = $1 AND value = $2
		RETURNING `+revocationColumns, kind, value))
	if err != nil {
		return store.Revocation{}, fmt.Errorf("lift revocation of %s %q: %w", kind, value, err)
	}
	return r, nil
}

// ListRevocations implements store.Revocations.
func (d *DB) ListRevocations(ctx context.Context, now time.Time) ([]store.Revocation, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+revocationColumns+` FROM revocations
		WHERE $1::bigint = 0 OR expires_at = 0 OR expires_at > $1 ORDER BY created_at, kind, value`, unixNano(now))
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	out, err := collect(rows, scanRevocation)
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	return out, nil
}

// PruneRevocations implements store.Revocations.
func (d *DB) PruneRevocations(ctx context.Context, now time.Time) (int, error) {
	tag, err := d.pool.Exec(ctx, `DELETE FROM revocations WHERE expires_at <> 0 AND expires_at <= $1`, unixNano(now))
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func scanRevocation(s pgx.Row) (store.Revocation, error) {
	var (
		r            store.Revocation
		created, exp int64
	)
	if err := s.Scan(&r.Kind, &r.Value, &r.Reason, &r.Actor, &created, &exp); err != nil {
		return store.Revocation{}, notFound(err)
	}
	r.CreatedAt, r.ExpiresAt = fromNano(created), fromNano(exp)
	return r, nil
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
	_, err = d.pool.Exec(ctx, `INSERT INTO approvals (`+approvalColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`,
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
	a, err := scanApproval(d.pool.QueryRow(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = $1`, id))
	if err != nil {
		return store.Approval{}, fmt.Errorf("get approval %q: %w", id, err)
	}
	return a, nil
}

// ListApprovals implements store.Approvals.
func (d *DB) ListApprovals(ctx context.Context, state string) ([]store.Approval, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+approvalColumns+` FROM approvals
		WHERE $1 = '' OR state = $1 ORDER BY created_at DESC, id DESC`, state)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	out, err := collect(rows, scanApproval)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	return out, nil
}

// DecideApproval implements store.Approvals.
func (d *DB) DecideApproval(ctx context.Context, id, state, by, comment string, at time.Time) (store.Approval, error) {
	a, err := scanApproval(d.pool.QueryRow(ctx, `UPDATE approvals SET state = $1, decided_by = $2, comment = $3, decided_at = $4
		WHERE id = $5 AND state = 'pending' RETURNING `+approvalColumns, state, by, comment, unixNano(at), id))
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Approval{}, fmt.Errorf("decide approval %q: %w", id, err)
	}
	cur, err := d.GetApproval(ctx, id)
	if err != nil {
		return store.Approval{}, err
	}
	return cur, fmt.Errorf("decide approval %q: it is already %s: %w", id, cur.State, store.ErrPrecondition)
}

func scanApproval(s pgx.Row) (store.Approval, error) {
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

// limitClause returns " LIMIT n" for n > 0 (n is an int, never input text).
func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return " LIMIT " + strconv.Itoa(n)
}

// UseApproval implements store.Approvals: one conditional UPDATE, so an
// approval is used once whichever server its calls reach.
func (d *DB) UseApproval(ctx context.Context, id, binding string, at time.Time) (store.Approval, error) {
	a, err := scanApproval(d.pool.QueryRow(ctx, `UPDATE approvals SET used_at = $1
		WHERE id = $2 AND state = 'approved' AND used_at = 0 AND binding = $3 RETURNING `+approvalColumns, unixNano(at), id, binding))
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Approval{}, fmt.Errorf("use approval %q: %w", id, err)
	}
	cur, err := d.GetApproval(ctx, id)
	if err != nil {
		return store.Approval{}, err
	}
	return cur, fmt.Errorf("use approval %q: %w", id, store.ErrPrecondition)
}

// TouchTask implements store.TaskFlows.
func (d *DB) TouchTask(ctx context.Context, task string, labels []string, via string, at time.Time) error {
	if len(labels) == 0 {
		return nil
	}
	// One statement: every label, the first record of each kept.
	_, err := d.pool.Exec(ctx, `INSERT INTO task_flows (task, label, via, at)
		SELECT $1, l, $3, $4 FROM unnest($2::text[]) AS l
		ON CONFLICT (task, label) DO NOTHING`, task, labels, via, unixNano(at))
	if err != nil {
		return fmt.Errorf("record flow labels of task %q: %w", task, err)
	}
	return nil
}

// TaskFlows implements store.TaskFlows.
func (d *DB) TaskFlows(ctx context.Context, task string) ([]store.FlowLabel, error) {
	rows, err := d.pool.Query(ctx, `SELECT label, via, at FROM task_flows WHERE task = $1 ORDER BY at, label`, task)
	if err != nil {
		return nil, fmt.Errorf("read flow labels of task %q: %w", task, err)
	}
	out, err := collect(rows, func(r pgx.Row) (store.FlowLabel, error) {
		var (
			f  store.FlowLabel
			at int64
		)
		err := r.Scan(&f.Label, &f.Via, &at)
		f.At = fromNano(at)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("read flow labels of task %q: %w", task, err)
	}
	return out, nil
}
