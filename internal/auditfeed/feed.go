// Package auditfeed reads the audit log as a stream for the consumers that
// fold it into views of their own (the lineage graph, the alert engine):
// from an index, a page at a time, decoding in full only the events whose
// type the consumer asks for.
//
// It decodes with encoding/json, without the canonical re-encoding check
// of audit.DecodeEvent: the records come from writ's own log, whose
// integrity is `writ audit verify`'s job, and the check is most of the
// cost of reading. A record that cannot be decoded is skipped and counted,
// so one damaged row does not stop a view forever; [Stats] reports it.
package auditfeed

import (
	"context"
	"fmt"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
)

// Records is the part of the audit log's backend a feed reads
// (auditlog.Records has it).
type Records interface {
	ReadRecords(ctx context.Context, from int64, limit int) ([]auditlog.Record, error)
}

// PageSize is how many records one read returns at most.
const PageSize = 1000

// Stats says what one [Read] did.
type Stats struct {
	// Read is the number of records read; Decoded those of a wanted type.
	Read, Decoded int
	// Unreadable is the number of records skipped because they could not
	// be decoded; FirstUnreadable the index of the first of them.
	Unreadable      int
	FirstUnreadable int64
}

// Read calls fn with the events of r from index from on whose type want
// accepts (every event when want is nil), in index order, until the log
// ends or max records have been read (no bound when max <= 0). It returns
// the index of the next record to read. An error from fn stops the read
// at that record, which is not counted as read.
func Read(ctx context.Context, r Records, from int64, max int, want func(audit.Type) bool, fn func(idx int64, e *audit.Event) error) (next int64, st Stats, err error) {
	next = from
	for max <= 0 || st.Read < max {
		limit := PageSize
		if max > 0 {
			limit = min(limit, max-st.Read)
		}
		recs, err := r.ReadRecords(ctx, next, limit)
		if err != nil {
			return next, st, fmt.Errorf("read audit records from %d: %w", next, err)
		}
		if len(recs) == 0 {
			return next, st, nil
		}
		for _, rec := range recs {
			if rec.Index != next {
				return next, st, fmt.Errorf("read audit records: got index %d, want %d", rec.Index, next)
			}
			k, kerr := auditlog.DecodeKeys(rec.Data)
			if kerr == nil && (want == nil || want(k.Type)) {
				var e audit.Event
				if jerr := e.UnmarshalCanonical(rec.Data); jerr != nil {
					kerr = jerr
				} else {
					st.Decoded++
					if err := fn(rec.Index, &e); err != nil {
						return next, st, err
					}
				}
			}
			if kerr != nil {
				if st.Unreadable == 0 {
					st.FirstUnreadable = rec.Index
				}
				st.Unreadable++
			}
			st.Read++
			next = rec.Index + 1
		}
	}
	return next, st, nil
}
