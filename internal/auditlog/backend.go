package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"golang.org/x/mod/sumdb/tlog"
)

// Record is an event at its place in the log, as stored.
type Record struct {
	// Index is the event's position in the Merkle tree, counting from 0.
	Index int64
	// Data is the event's canonical encoding (see [audit.Event.MarshalCanonical]),
	// the leaf data of the tree.
	Data []byte
	// Hashes are the stored hashes that appending the event produced,
	// as returned by tlog.StoredHashes(Index, data, ...): Hashes[0] is
	// the leaf hash, the rest are the subtrees the leaf completed. They
	// live at stored-hash indexes tlog.StoredHashIndex(0, Index) onwards.
	Hashes []tlog.Hash
	// Keys are the event's searchable fields. [Log] fills them in from
	// the event it appends, so backends can index them without decoding
	// Data. A backend that stores them apart from Data returns them from
	// ReadRecords, and [Verify] checks that they agree with Data (an
	// edited key could hide an event from search); nil on read means the
	// backend derives them from Data and there is nothing to check.
	Keys *Keys
}

// Keys are the fields of an event that backends index for search.
type Keys struct {
	ID       string     `json:"id"`
	Type     audit.Type `json:"type"`
	SpiffeID string     `json:"spiffe_id"`
	Instance string     `json:"instance"`
	Task     string     `json:"task"`
}

// KeysOf returns e's searchable fields.
func KeysOf(e *audit.Event) *Keys {
	return &Keys{ID: e.ID, Type: e.Type, SpiffeID: e.SpiffeID, Instance: e.Instance, Task: e.Task}
}

// DecodeKeys returns the searchable fields of an event's canonical
// encoding, decoding only those.
func DecodeKeys(data []byte) (Keys, error) {
	if k, ok := frontKeys(data, allKeys); ok {
		return k, nil
	}
	var k Keys
	if err := json.Unmarshal(data, &k); err != nil {
		return k, fmt.Errorf("decode event: %w", err)
	}
	return k, nil
}

// frontKeys reads the searchable fields from the front of a canonical
// encoding, where they come first and in this order (id, time, type, then
// spiffe_id, instance and task when they are set), about ten times faster
// than a JSON decoder, which matters to `writ audit verify` on millions of
// events. ok is false if data does not start that way; DecodeKeys then
// decodes it in full.
func frontKeys(data []byte, n int) (k Keys, ok bool) {
	if len(data) == 0 || data[0] != '{' {
		return k, false
	}
	p := data[1:]
	for i, f := range [...]struct {
		key string
		dst *string
	}{
		{`"id":`, &k.ID}, {`"time":`, nil}, {`"type":`, (*string)(&k.Type)},
		{`"spiffe_id":`, &k.SpiffeID}, {`"instance":`, &k.Instance}, {`"task":`, &k.Task},
	} {
		if i == n {
			return k, true
		}
		if !bytes.HasPrefix(p, []byte(f.key)) {
			if i < 3 {
				return k, false // id, time and type are always there
			}
			continue
		}
		s, rest, ok := frontString(p[len(f.key):], f.dst != nil && (i != 0 || n == allKeys))
		if !ok || len(rest) == 0 {
			return k, false
		}
		if f.dst != nil {
			*f.dst = s
		}
		if rest[0] == '}' {
			return k, true
		}
		if rest[0] != ',' {
			return k, false
		}
		p = rest[1:]
	}
	return k, true
}

// allKeys asks frontKeys for every field.
const allKeys = 6

// DecodeType returns the type of the event encoded in data, reading no
// more of it than it must, for readers that choose events by type.
func DecodeType(data []byte) (audit.Type, error) {
	if k, ok := frontKeys(data, 3); ok {
		return k.Type, nil
	}
	k, err := DecodeKeys(data)
	return k.Type, err
}

// frontString reads the JSON string at the front of p; s is "" unless
// keep is set (the string is only skipped).
func frontString(p []byte, keep bool) (s string, rest []byte, ok bool) {
	if len(p) == 0 || p[0] != '"' {
		return "", nil, false
	}
	escaped := false
	for i := 1; i < len(p); i++ {
		switch p[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			if !keep {
				return "", p[i+1:], true
			}
			if !escaped {
				return string(p[1:i]), p[i+1:], true
			}
			if json.Unmarshal(p[:i+1], &s) != nil {
				return "", nil, false
			}
			return s, p[i+1:], true
		}
	}
	return "", nil, false
}

// Event decodes the record's event.
func (r Record) Event() (audit.Event, error) {
	e, err := audit.DecodeEvent(r.Data)
	if err != nil {
		return e, &RecordError{Index: r.Index, Err: err}
	}
	return e, nil
}

// Query selects events for search and export. The zero value selects
// every event.
type Query struct {
	// SpiffeID selects events whose SPIFFE ID is this one or lies under it
	// as a path: "spiffe://writ.local/agent" matches
	// "spiffe://writ.local/agent/mail" but not ".../agentx".
	SpiffeID string
	Instance string
	Task     string
	Type     audit.Type
	Decision string
	// Since and Until bound the event time: Since <= time < Until.
	Since, Until time.Time
	// Before selects events with an index lower than Before (for paging
	// back through search results); 0 means no bound.
	Before int64
	// After selects events with an index of at least After; 0 means no
	// bound.
	After int64
	// Ascending returns the oldest (lowest index) events first, for
	// export and tail; by default search returns the newest first.
	Ascending bool
	// Limit caps the number of results; 0 means the backend default.
	Limit int
}

// StoredCheckpoint is a signed checkpoint as kept by the backend.
type StoredCheckpoint struct {
	Size      int64
	Note      []byte // the signed note, see [Checkpoint]
	CreatedAt time.Time
}

// Records stores the events of the log. Indexes are dense: the records of
// a log of size n have indexes 0 to n-1.
type Records interface {
	// AppendRecords stores recs (at most DefaultMaxBatch), whose indexes
	// continue the log without a gap, in one transaction; when it returns
	// nil every record is durable, and on error none is stored. An event id that is already
	// stored is an error wrapping store.ErrExists.
	AppendRecords(ctx context.Context, recs []Record) error
	// RecordCount returns the number of stored records (the index of the
	// last one plus one).
	RecordCount(ctx context.Context) (int64, error)
	// ReadRecords returns up to limit records with index >= from in
	// increasing index order, as stored: the data is not decoded or
	// checked, so that the verifier sees damaged rows.
	ReadRecords(ctx context.Context, from int64, limit int) ([]Record, error)
	// RecordByID returns the record of the event with id, or
	// store.ErrNotFound.
	RecordByID(ctx context.Context, id string) (Record, error)
	// SearchRecords returns the records matching q (see [Query.Match]),
	// newest (highest index) first unless q.Ascending. Backends may rely
	// on event times following index order to within [TimeSkew] when
	// q.Since or q.Until is set.
	SearchRecords(ctx context.Context, q Query) ([]Record, error)
	// ReadHashes returns the stored hashes at the given stored-hash
	// indexes (see tlog.StoredHashIndex).
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
}

// Checkpoints stores signed checkpoints.
type Checkpoints interface {
	// PutCheckpoint stores c durably. Storing a checkpoint for a size
	// that already has one replaces it.
	PutCheckpoint(ctx context.Context, c StoredCheckpoint) error
	// LatestCheckpoint returns the checkpoint with the largest size, or
	// store.ErrNotFound if there is none.
	LatestCheckpoint(ctx context.Context) (StoredCheckpoint, error)
	// ListCheckpoints returns every checkpoint, smallest size first.
	ListCheckpoints(ctx context.Context) ([]StoredCheckpoint, error)
}

// Backend is the storage an audit [Log] needs.
type Backend interface {
	Records
	Checkpoints
}

// RecordError reports a stored record that cannot be read back as an
// event, for example because a column was overwritten with a value of the
// wrong kind. Backends return it from the Records methods so that the
// verifier can name the damaged index.
type RecordError struct {
	Index int64
	Err   error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("audit event at index %d is unreadable: %v", e.Index, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }
