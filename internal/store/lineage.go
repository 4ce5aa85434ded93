package store

import (
	"context"
	"errors"
	"time"
)

// ErrCursorMoved reports that a consumer's cursor is not where the caller
// read it: another writer folded the same events in first. The caller
// reads the cursor again and retries.
var ErrCursorMoved = errors.New("cursor moved")

// Cursor names of the consumers of the audit log that keep one.
const (
	CursorLineage = "lineage"
	CursorAlerts  = "alerts"
)

// Cursor is how far one consumer of the audit log has read: Next is the
// index of the next event to fold in; State is the consumer's own carried
// state (JSON), stored atomically with it.
type Cursor struct {
	Name  string
	Next  int64
	State []byte
}

// Target kinds of a [LineageFact].
const (
	TargetService   = "service"
	TargetMCPServer = "mcp_server"
)

// LineageFact is the accesses of one hour that share one path: on behalf
// of User, Identity (its Instance, in Task, authenticated Via mtls, token
// or process) reached Target (a service or an MCP server, and Tool of it)
// with Credential injected, approved by ApprovedBy. Counts are of access
// events; Held counts those that waited for an approval, whatever the
// result. Empty fields are unknown or not applicable.
type LineageFact struct {
	Hour       time.Time // the hour's start, UTC
	User       string
	Identity   string
	Instance   string
	Task       string
	Via        string
	TargetKind string
	Target     string
	Tool       string
	Credential string
	ApprovedBy string

	Allowed, Denied, Held int64
	FirstSeen, LastSeen   time.Time
}

// LineageFilter selects lineage facts. Since and Until are widened to
// whole hours (Since down, Until up); zero fields select everything. The
// whole UTC days of a window are read from the daily rollup (one row per
// day and path, kept by AddLineage) and the hours at its two ends from the
// hourly facts; the sums are the same as over every hour.
type LineageFilter struct {
	Since, Until time.Time
	// Identity selects facts of this SPIFFE ID or of IDs under it as a
	// path (as audit search does).
	Identity   string
	Instance   string
	Task       string
	User       string
	Target     string
	Credential string
	// Limit bounds the number of facts; 0 means no bound.
	Limit int
	// AllTime reads the all-time rollup instead of summing hours: the
	// facts stored with Hour [LineageAllTime], which the writer keeps
	// beside the hourly ones (internal/graph does). Since and Until must
	// be zero. A query over every hour then reads one row per path
	// instead of one per path and hour.
	AllTime bool
	// HourlyOnly sums the hourly facts of the window even where the
	// daily rollup holds whole days of it (the reference the daily
	// rollup is tested against).
	HourlyOnly bool
}

// LineageAllTime is the Hour of the all-time rollup's facts (an hour
// before the Unix epoch, which no access has). Other queries leave these
// facts out.
var LineageAllTime = time.Unix(-3600, 0).UTC()

// Lineage stores the lineage graph's aggregates and the cursors of the
// consumers of the audit log.
type Lineage interface {
	// GetCursor returns the named cursor; a cursor never written is at 0
	// with no state.
	GetCursor(ctx context.Context, name string) (Cursor, error)
	// AddLineage adds facts to the stored ones (counts summed, first seen
	// the earliest, last seen the latest, per hour and path) and moves
	// the lineage cursor from from to next, in one transaction. If the
	// cursor is not at from nothing is stored and the error wraps
	// [ErrCursorMoved].
	// The daily rollup (one row per UTC day and path) takes the same
	// facts summed per day, in the same transaction; facts with Hour
	// LineageAllTime go to the all-time rollup only.
	AddLineage(ctx context.Context, from, next int64, facts []LineageFact) error
	// LineageStart returns the hour of the earliest hourly fact, and
	// false when there is none.
	LineageStart(ctx context.Context) (time.Time, bool, error)
	// ListLineage returns the facts f selects, summed over the hours of
	// the window (with f.AllTime, the all-time rollup's facts): one fact
	// per path (Hour is zero), ordered byte-wise by identity, target,
	// tool, instance, task, user, via, credential, approved by and target
	// kind.
	ListLineage(ctx context.Context, f LineageFilter) ([]LineageFact, error)
}

// RollUp adds f's counts to the row of out for f's path at hour at (a
// rollup's: a day's start or LineageAllTime), found through idx (keys are
// paths at at with zero counts and times) or appended, widening its first
// and last seen; it returns out.
func RollUp(out []LineageFact, idx map[LineageFact]int, f LineageFact, at time.Time) []LineageFact {
	k := f
	k.Hour, k.Allowed, k.Denied, k.Held, k.FirstSeen, k.LastSeen = at, 0, 0, 0, time.Time{}, time.Time{}
	i, ok := idx[k]
	if !ok {
		idx[k] = len(out)
		k.FirstSeen, k.LastSeen = f.FirstSeen, f.LastSeen
		out = append(out, k)
		i = len(out) - 1
	}
	r := &out[i]
	r.Allowed += f.Allowed
	r.Denied += f.Denied
	r.Held += f.Held
	if f.FirstSeen.Before(r.FirstSeen) {
		r.FirstSeen = f.FirstSeen
	}
	if f.LastSeen.After(r.LastSeen) {
		r.LastSeen = f.LastSeen
	}
	return out
}
