// Package rowcodec holds the row encodings that store/sqlite and
// store/postgres share because both keep the same columns: times as unix
// nanoseconds (0 for the zero time), string lists as JSON arrays, and the
// task row. Each store keeps its own SQL and maps its driver's "no rows"
// error itself.
package rowcodec

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// UnixNano encodes t as unix nanoseconds, the zero time as 0.
func UnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNano decodes [UnixNano]: 0 is the zero time, anything else UTC.
func FromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// NonNil returns s, or an empty list for nil, so it encodes as [] not null.
func NonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TaskColumns is the column list ScanTask reads, in order.
const TaskColumns = `id, spiffe_id, instance, purpose, on_behalf_of, audiences, scopes, state, budget, calls,
	policy, rule, approval, reason, created_at, expires_at, closed_at, bind_instance`

// ScanTask reads one task row with scan (a driver's Row.Scan). A scan
// error is returned as the driver gave it, for the store to map.
func ScanTask(scan func(dest ...any) error) (store.Task, error) {
	var (
		t                   store.Task
		auds, scopes        string
		created, exp, close int64
	)
	err := scan(&t.ID, &t.SpiffeID, &t.Instance, &t.Purpose, &t.OnBehalfOf, &auds, &scopes, &t.State, &t.Budget, &t.Calls,
		&t.Policy, &t.Rule, &t.Approval, &t.Reason, &created, &exp, &close, &t.BindInstance)
	if err != nil {
		return store.Task{}, err
	}
	if err := json.Unmarshal([]byte(auds), &t.Audiences); err != nil {
		return store.Task{}, fmt.Errorf("decode audiences of task %q: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return store.Task{}, fmt.Errorf("decode scopes of task %q: %w", t.ID, err)
	}
	if len(t.Scopes) == 0 {
		t.Scopes = nil
	}
	t.CreatedAt, t.ExpiresAt, t.ClosedAt = FromNano(created), FromNano(exp), FromNano(close)
	return t, nil
}
