package rowcodec

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// AlertColumns is the column list ScanAlert reads, in order.
const AlertColumns = `id, rule, dedup_key, severity, title, subject, evidence, count, state, first_evidence, last_evidence,
	raised_at, acked_at, acked_by, resolved_at, resolved_by, note`

// ScanAlert reads one alert row with scan. A scan error is returned as the
// driver gave it, for the store to map.
func ScanAlert(scan func(dest ...any) error) (store.Alert, error) {
	var (
		a                                    store.Alert
		ev                                   []byte
		first, last, raised, acked, resolved int64
	)
	if err := scan(&a.ID, &a.Rule, &a.DedupKey, &a.Severity, &a.Title, &a.Subject, &ev, &a.Count, &a.State, &first, &last,
		&raised, &acked, &a.AckedBy, &resolved, &a.ResolvedBy, &a.Note); err != nil {
		return a, err
	}
	if err := json.Unmarshal(ev, &a.Evidence); err != nil {
		return a, fmt.Errorf("alert %s: evidence: %w", a.ID, err)
	}
	a.FirstEvidence, a.LastEvidence, a.RaisedAt, a.AckedAt, a.ResolvedAt = FromNano(first), FromNano(last), FromNano(raised), FromNano(acked), FromNano(resolved)
	return a, nil
}

// NewAlert prepares r to be stored as a new alert: open, evidence a
// non-nil list of at most store.MaxEvidence items. It returns the
// evidence as stored (JSON).
func NewAlert(r store.Alert) (store.Alert, []byte) {
	if r.Evidence == nil {
		r.Evidence = []store.Evidence{}
	}
	r.Evidence = r.Evidence[:min(len(r.Evidence), store.MaxEvidence)]
	r.State = store.AlertOpen
	ev, _ := json.Marshal(r.Evidence)
	return r, ev
}

// MergeAlert adds the evidence of r to the stored, unresolved alert cur:
// count added, first and last evidence widened, evidence appended up to
// store.MaxEvidence. It returns the alert and its evidence (JSON).
func MergeAlert(cur, r store.Alert) (store.Alert, []byte) {
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
	return cur, ev
}

// AlertTransition moves a to state (acknowledged or resolved) by who at
// at with note, as store.Alerts.SetAlertState says: an error wrapping
// store.ErrExists if a is already in state or resolved.
func AlertTransition(a store.Alert, state, who, note string, at time.Time) (store.Alert, error) {
	if a.State == state || a.State == store.AlertResolved {
		return a, fmt.Errorf("alert %s is already %s: %w", a.ID, a.State, store.ErrExists)
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
		return a, fmt.Errorf("update alert %s: state %q is not acknowledged or resolved", a.ID, state)
	}
	a.State = state
	return a, nil
}

// AlertBody is the alert as the webhook outbox keeps it (JSON): the
// fields a webhook receiver needs, with stable names.
func AlertBody(a store.Alert) []byte {
	b, _ := json.Marshal(struct {
		ID            string           `json:"id"`
		Rule          string           `json:"rule"`
		Severity      string           `json:"severity"`
		Title         string           `json:"title"`
		Subject       string           `json:"subject"`
		Count         int64            `json:"count"`
		FirstEvidence time.Time        `json:"first_evidence"`
		RaisedAt      time.Time        `json:"raised_at"`
		Evidence      []store.Evidence `json:"evidence"`
	}{a.ID, a.Rule, a.Severity, a.Title, a.Subject, a.Count, a.FirstEvidence, a.RaisedAt, a.Evidence})
	return b
}

// DeliveryColumns is the column list ScanDelivery reads, in order.
const DeliveryColumns = `id, webhook, alert, body, attempts, next_attempt, created_at, delivered_at, failed, last_error`

// ScanDelivery reads one webhook outbox row with scan; failed is a
// boolean column (SQLite's integer 0/1 scans into it too).
func ScanDelivery(scan func(dest ...any) error) (store.Delivery, error) {
	var (
		dl                       store.Delivery
		next, created, delivered int64
	)
	err := scan(&dl.ID, &dl.Webhook, &dl.Alert, &dl.Body, &dl.Attempts, &next, &created, &delivered, &dl.Failed, &dl.LastError)
	dl.NextAttempt, dl.CreatedAt, dl.DeliveredAt = FromNano(next), FromNano(created), FromNano(delivered)
	return dl, err
}

// LineagePath is the column list of a lineage path, in the order
// ScanLineageSum reads them ("user" quoted for PostgreSQL; SQLite takes
// it too).
const LineagePath = `"user", identity, instance, task, via, target_kind, target, tool, credential, approved_by`

// LineageOrder orders summed lineage paths as store.Lineage says.
const LineageOrder = `identity, target, tool, instance, task, "user", via, credential, approved_by, target_kind`

// ScanLineageSum reads one summed lineage path: LineagePath then
// sum(allowed), sum(denied), sum(held), min(first_seen), max(last_seen).
func ScanLineageSum(scan func(dest ...any) error) (store.LineageFact, error) {
	var (
		lf          store.LineageFact
		first, last int64
	)
	if err := scan(&lf.User, &lf.Identity, &lf.Instance, &lf.Task, &lf.Via, &lf.TargetKind, &lf.Target, &lf.Tool,
		&lf.Credential, &lf.ApprovedBy, &lf.Allowed, &lf.Denied, &lf.Held, &first, &last); err != nil {
		return lf, err
	}
	lf.FirstSeen, lf.LastSeen = FromNano(first), FromNano(last)
	return lf, nil
}

// LineageQuery is the query summing the lineage facts f selects per path,
// with its arguments; ph(n) is the store's placeholder for the n-th
// argument (1-based). Sums are cast to BIGINT so both stores scan them
// as integers. A window is read from the daily rollup (lineage_daily,
// migration 0016) for its whole days and from the hourly rows for the
// hours at its two ends ([LineageParts]), unless f.HourlyOnly.
func LineageQuery(f store.LineageFilter, ph func(n int) string) (string, []any) {
	var args []any
	// where returns the conditions of one part: its time range on col
	// (hour or day) and f's path filters.
	where := func(fixed string, col string, from, to int64, bounded [2]bool) string {
		var w []string
		add := func(cond string, a ...any) {
			for _, v := range a {
				args = append(args, v)
				cond = strings.Replace(cond, "?", ph(len(args)), 1)
			}
			w = append(w, cond)
		}
		if fixed != "" {
			w = append(w, fixed)
		}
		if bounded[0] {
			add(col+" >= ?", from)
		}
		if bounded[1] {
			add(col+" < ?", to)
		}
		if f.Identity != "" {
			prefix := strings.TrimSuffix(f.Identity, "/") + "/"
			add("(identity = ? OR substr(identity, 1, ?) = ?)", f.Identity, len(prefix), prefix)
		}
		for _, c := range []struct{ col, v string }{{"instance", f.Instance}, {"task", f.Task}, {`"user"`, f.User},
			{"target", f.Target}, {"credential", f.Credential}} {
			if c.v != "" {
				add(c.col+" = ?", c.v)
			}
		}
		return strings.Join(w, " AND ")
	}
	var q string
	if f.AllTime {
		// One row per path already: nothing to sum.
		q = `SELECT ` + LineagePath + `, allowed, denied, held, first_seen, last_seen FROM lineage_facts WHERE ` +
			where(fmt.Sprintf("hour = %d", store.LineageAllTime.Unix()), "", 0, 0, [2]bool{}) + ` ORDER BY ` + LineageOrder
	} else {
		const sums = `, CAST(sum(allowed) AS BIGINT), CAST(sum(denied) AS BIGINT), CAST(sum(held) AS BIGINT), min(first_seen), max(last_seen)`
		parts := LineageParts(f)
		var sel []string
		for _, p := range parts {
			table, col, fixed := "lineage_facts", "hour", fmt.Sprintf("hour <> %d", store.LineageAllTime.Unix())
			if p.Daily {
				table, col, fixed = "lineage_daily", "day", ""
			}
			w := where(fixed, col, p.From, p.To, [2]bool{p.FromSet, p.ToSet})
			if w == "" {
				w = "true"
			}
			if len(parts) == 1 {
				q = `SELECT ` + LineagePath + sums + ` FROM ` + table + ` WHERE ` + w + ` GROUP BY ` + LineagePath
			}
			sel = append(sel, `SELECT `+LineagePath+`, allowed, denied, held, first_seen, last_seen FROM `+table+` WHERE `+w)
		}
		if len(parts) > 1 {
			q = `SELECT ` + LineagePath + sums + ` FROM (` + strings.Join(sel, " UNION ALL ") + `) AS parts GROUP BY ` + LineagePath
		}
		q += ` ORDER BY ` + LineageOrder
	}
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return q, args
}

// LineagePart is one range of rows a windowed lineage query sums: hours
// (lineage_facts) or whole days (lineage_daily), from From (if FromSet)
// up to To (if ToSet), in unix seconds.
type LineagePart struct {
	Daily          bool
	From, To       int64
	FromSet, ToSet bool
}

const lineageDay = 24 * 3600

// LineageParts splits f's window, widened to whole hours, into the whole
// UTC days inside it, read from the daily rollup, and the hours before
// the first and after the last of them, read from the hourly rows. A
// window with no whole day in it is hours only; so is every window with
// f.HourlyOnly.
func LineageParts(f store.LineageFilter) []LineagePart {
	var s, u int64
	sSet, uSet := !f.Since.IsZero(), !f.Until.IsZero()
	if sSet {
		s = floorDiv(f.Since.Unix(), 3600) * 3600
	}
	if uSet {
		// Widened up to the end of the hour holding Until.
		secs := f.Until.Unix()
		if f.Until.Nanosecond() > 0 {
			secs++
		}
		u = ceilDiv(secs, 3600) * 3600
	}
	hours := LineagePart{From: s, To: u, FromSet: sSet, ToSet: uSet}
	if f.HourlyOnly {
		return []LineagePart{hours}
	}
	ds, de := ceilDiv(s, lineageDay)*lineageDay, floorDiv(u, lineageDay)*lineageDay
	if sSet && uSet && ds >= de {
		return []LineagePart{hours}
	}
	var parts []LineagePart
	if sSet && s < ds {
		parts = append(parts, LineagePart{From: s, To: ds, FromSet: true, ToSet: true})
	}
	parts = append(parts, LineagePart{Daily: true, From: ds, To: de, FromSet: sSet, ToSet: uSet})
	if uSet && de < u {
		parts = append(parts, LineagePart{From: de, To: u, FromSet: true, ToSet: true})
	}
	return parts
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// LineageDays sums facts (hourly, as store.Lineage.AddLineage takes them)
// into one fact per UTC day and path, Hour the day's start: the rows
// AddLineage adds to the daily rollup in the same transaction. The
// all-time rollup's facts (Hour store.LineageAllTime) are left out.
func LineageDays(facts []store.LineageFact) []store.LineageFact {
	idx := make(map[store.LineageFact]int, len(facts))
	out := make([]store.LineageFact, 0, len(facts))
	for _, f := range facts {
		if f.Hour.Equal(store.LineageAllTime) {
			continue
		}
		out = store.RollUp(out, idx, f, time.Unix(floorDiv(f.Hour.Unix(), lineageDay)*lineageDay, 0).UTC())
	}
	return out
}

// AlertQuery is the query listing the alerts f selects, newest raised
// first, with its arguments; ph as for LineageQuery.
func AlertQuery(f store.AlertFilter, ph func(n int) string) (string, []any) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"state", f.State}, {"rule", f.Rule}, {"severity", f.Severity}} {
		if c.v != "" {
			args = append(args, c.v)
			where = append(where, c.col+" = "+ph(len(args)))
		}
	}
	if !f.RaisedSince.IsZero() {
		args = append(args, UnixNano(f.RaisedSince))
		where = append(where, "raised_at >= "+ph(len(args)))
	}
	q := `SELECT ` + AlertColumns + ` FROM alerts`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY raised_at DESC, id`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return q, args
}
