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
	page := make([]item, 0, PageSize)
	for max <= 0 || st.Read < max {
		limit := PageSize
		if max > 0 {
			limit = min(limit, max-st.Read)
		}
		page, err = readPage(ctx, r, next, limit, want, page[:0])
		if err != nil {
			return next, st, err
		}
		if len(page) == 0 {
			return next, st, nil
		}
		for i := range page {
			it := &page[i]
			if it.idx != next {
				return next, st, fmt.Errorf("read audit records: got index %d, want %d", it.idx, next)
			}
			switch {
			case it.err != nil:
				if st.Unreadable == 0 {
					st.FirstUnreadable = it.idx
				}
				st.Unreadable++
			case it.wanted:
				st.Decoded++
				if err := fn(it.idx, &it.e); err != nil {
					return next, st, err
				}
			}
			st.Read++
			next = it.idx + 1
		}
		clear(page)
	}
	return next, st, nil
}

// EventData is the cheapest read of a log's events, when its backend has
// it (the SQLite store): the canonical encodings alone, without hashes or
// search keys. data is valid only during the call.
type EventData interface {
	ReadEventData(ctx context.Context, from int64, limit int, fn func(idx int64, data []byte) error) (int, error)
}

// item is one record of a page, decoded if wanted.
type item struct {
	idx    int64
	wanted bool
	e      audit.Event
	err    error // the record cannot be decoded
}

// readPage reads up to limit records from index from and decodes those of
// a wanted type into page. The records are decoded as they are read, and
// fn is called only after the read has ended, so that no consumer works
// inside the store's read.
func readPage(ctx context.Context, r Records, from int64, limit int, want func(audit.Type) bool, page []item) ([]item, error) {
	decode := func(idx int64, data []byte) error {
		page = append(page, item{idx: idx})
		it := &page[len(page)-1]
		var err error
		if want != nil {
			var ty audit.Type
			if ty, err = auditlog.DecodeType(data); err == nil {
				it.wanted = want(ty)
			}
		} else {
			it.wanted = true
		}
		if it.wanted {
			err = it.e.UnmarshalCanonical(data)
		}
		it.err = err
		return nil
	}
	if ed, ok := r.(EventData); ok {
		if _, err := ed.ReadEventData(ctx, from, limit, decode); err != nil {
			return page, fmt.Errorf("read audit records from %d: %w", from, err)
		}
		return page, nil
	}
	recs, err := r.ReadRecords(ctx, from, limit)
	if err != nil {
		return page, fmt.Errorf("read audit records from %d: %w", from, err)
	}
	for _, rec := range recs {
		decode(rec.Index, rec.Data)
	}
	return page, nil
}
