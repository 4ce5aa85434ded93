package auditlog

import (
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

// TimeSkew is how far out of index order event times may be for searches
// bounded by time to find every event. The log stamps events as it
// accepts them, so their times follow index order unless an emitter
// supplies its own, older, time.
const TimeSkew = 5 * time.Minute

// Match reports whether the event e at index idx is selected by q. It is
// the definition of a query's meaning: backends use indexes to find
// candidates and Match to decide.
func (q *Query) Match(idx int64, e *audit.Event) bool {
	switch {
	case q.Before > 0 && idx >= q.Before,
		idx < q.After,
		q.SpiffeID != "" && !spiffeIDUnder(e.SpiffeID, q.SpiffeID),
		q.Instance != "" && e.Instance != q.Instance,
		q.Task != "" && e.Task != q.Task,
		q.Type != "" && e.Type != q.Type,
		q.Decision != "" && e.Decision != q.Decision,
		!q.Since.IsZero() && e.Time.Before(q.Since),
		!q.Until.IsZero() && !e.Time.Before(q.Until):
		return false
	}
	return true
}

// spiffeIDUnder reports whether id is prefix or lies under it as a path.
func spiffeIDUnder(id, prefix string) bool {
	if id == prefix {
		return true
	}
	return strings.HasPrefix(id, strings.TrimSuffix(prefix, "/")+"/")
}
