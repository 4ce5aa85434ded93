package rowcodec

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/writ-dev/writ/internal/store"
)

// The lineage path dictionary (migration 0022): every distinct path of
// the lineage facts has a row in lineage_paths with an integer id, which
// the hourly, daily and all-time rows carry as path_id. A whole-graph
// query (no path filter) then reads and sums integers only and takes the
// paths' text from the store's [LineagePaths], a cache of the dictionary:
// its rows never change once written, so the cache only ever learns new
// ones. Queries that filter on a path column read the columns as before.

// MaxCachedPaths bounds a store's [LineagePaths]: with more paths than
// this, whole-graph queries sum in SQL instead (a query reads at most
// graph.DefaultMaxFacts of them anyway).
const MaxCachedPaths = 1 << 18

// PathKey is a lineage path: its columns in [LineagePath] order.
type PathKey [10]string

// KeyOf returns f's path.
func KeyOf(f *store.LineageFact) PathKey {
	return PathKey{f.User, f.Identity, f.Instance, f.Task, f.Via, f.TargetKind, f.Target, f.Tool, f.Credential, f.ApprovedBy}
}

func (k *PathKey) fill(f *store.LineageFact) {
	f.User, f.Identity, f.Instance, f.Task, f.Via, f.TargetKind, f.Target, f.Tool, f.Credential, f.ApprovedBy =
		k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9]
}

// ScanPath reads one lineage_paths row: id then [LineagePath].
func ScanPath(scan func(dest ...any) error) (int64, PathKey, error) {
	var (
		id int64
		k  PathKey
	)
	err := scan(&id, &k[0], &k[1], &k[2], &k[3], &k[4], &k[5], &k[6], &k[7], &k[8], &k[9])
	return id, k, err
}

// comparePaths orders paths as [LineageOrder] does, byte-wise (SQLite's
// BINARY collation; the PostgreSQL columns are COLLATE "C").
func comparePaths(a, b *PathKey) int {
	for _, i := range [...]int{1, 6, 7, 2, 3, 0, 4, 8, 9, 5} {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// LineagePaths caches a store's lineage path dictionary. The zero value
// is empty and ready to use; it is safe for concurrent use.
type LineagePaths struct {
	mu       sync.Mutex
	keys     []PathKey         // in the order learnt
	ids      []int64           // ids[i] is keys[i]'s id
	byKey    map[PathKey]int32 // index into keys
	byID     map[int64]int32
	maxID    int64
	order    []int32 // indexes into keys, in LineageOrder; covers keys[:len(order)]
	intern   map[string]string
	overflow bool // the store holds more than limit paths
	limit    int  // MaxCachedPaths if 0 (tests set less)
}

// ID returns the id of k if the cache knows it.
func (c *LineagePaths) ID(k PathKey) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.byKey[k]
	if !ok {
		return 0, false
	}
	return c.ids[i], true
}

// MaxID returns the highest id the cache knows (0 if none), from which a
// store loads the rows written since.
func (c *LineagePaths) MaxID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxID
}

// Full reports whether the store holds more paths than the cache takes:
// whole-graph queries must then be answered in SQL.
func (c *LineagePaths) Full() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.overflow
}

// Learn records committed dictionary rows. Rows past MaxCachedPaths mark
// the cache full instead.
func (c *LineagePaths) Learn(ids []int64, keys []PathKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKey == nil {
		c.byKey, c.byID, c.intern = map[PathKey]int32{}, map[int64]int32{}, map[string]string{}
	}
	for n, id := range ids {
		if _, ok := c.byID[id]; ok {
			continue
		}
		if len(c.keys) >= cmp.Or(c.limit, MaxCachedPaths) {
			c.overflow = true
			return
		}
		k := keys[n]
		for j, s := range k {
			// The same identities, targets and credentials recur on many
			// paths: one copy of each.
			if v, ok := c.intern[s]; ok {
				k[j] = v
			} else {
				c.intern[s] = s
			}
		}
		c.byKey[k] = int32(len(c.keys))
		c.byID[id] = int32(len(c.keys))
		c.keys = append(c.keys, k)
		c.ids = append(c.ids, id)
		c.maxID = max(c.maxID, id)
	}
}

// Sums accumulates one whole-graph query's rows by path id.
type Sums struct {
	// dense[id] is the slot of id plus one, for ids below len(dense)
	// (ids are handed out from 1 up, so nearly all are); sparse holds
	// the others.
	dense  []int32
	sparse map[int64]int32
	ids    []int64
	rows   []pathSum
}

// pathSum is one path's sums; times in unix nanoseconds.
type pathSum struct {
	allowed, denied, held, first, last int64
}

// maxDense bounds Sums.dense: ids beyond it go to the map.
const maxDense = 4 * MaxCachedPaths

// Add adds one row (a path id and its counts, times in unix nanoseconds).
func (s *Sums) Add(id, allowed, denied, held, first, last int64) {
	var slot int32
	if id >= 0 && id < maxDense {
		if id >= int64(len(s.dense)) {
			n := min(max(int(id)+1, 2*len(s.dense), 1024), maxDense)
			s.dense = append(s.dense, make([]int32, n-len(s.dense))...)
		}
		slot = s.dense[id]
	} else {
		slot = s.sparse[id]
	}
	if slot == 0 {
		s.ids = append(s.ids, id)
		s.rows = append(s.rows, pathSum{allowed, denied, held, first, last})
		slot = int32(len(s.rows))
		if id >= 0 && id < maxDense {
			s.dense[id] = slot
		} else {
			if s.sparse == nil {
				s.sparse = map[int64]int32{}
			}
			s.sparse[id] = slot
		}
		return
	}
	r := &s.rows[slot-1]
	r.allowed += allowed
	r.denied += denied
	r.held += held
	r.first = min(r.first, first) // as SQL's min and max over the same integers
	r.last = max(r.last, last)
}

// Missing returns the ids of s the cache does not know.
func (c *LineagePaths) Missing(s *Sums) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int64
	for _, id := range s.ids {
		if _, ok := c.byID[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// Facts returns s's paths as facts (Hour zero) in LineageOrder, at most
// limit of them (0: all); it fails if an id of s is not in the cache.
func (c *LineagePaths) Facts(s *Sums, limit int) ([]store.LineageFact, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sort()
	// at[i] is the slot of s holding keys[i]'s sums, plus one.
	at := make([]int32, len(c.keys))
	for slot, id := range s.ids {
		i, ok := c.byID[id]
		if !ok {
			return nil, fmt.Errorf("lineage path %d is not in the path dictionary", id)
		}
		at[i] = int32(slot) + 1
	}
	n := len(s.ids)
	if limit > 0 {
		n = min(n, limit)
	}
	out := make([]store.LineageFact, 0, n)
	for _, i := range c.order {
		if len(out) == n {
			break
		}
		if at[i] == 0 {
			continue
		}
		r := &s.rows[at[i]-1]
		out = append(out, store.LineageFact{Allowed: r.allowed, Denied: r.denied, Held: r.held,
			FirstSeen: FromNano(r.first), LastSeen: FromNano(r.last)})
		c.keys[i].fill(&out[len(out)-1])
	}
	return out, nil
}

// sort brings order up to date with keys: the paths learnt since are
// sorted and merged in.
func (c *LineagePaths) sort() {
	if len(c.order) == len(c.keys) {
		return
	}
	fresh := make([]int32, 0, len(c.keys)-len(c.order))
	for i := len(c.order); i < len(c.keys); i++ {
		fresh = append(fresh, int32(i))
	}
	byPath := func(a, b int32) int { return comparePaths(&c.keys[a], &c.keys[b]) }
	slices.SortFunc(fresh, byPath)
	merged := make([]int32, 0, len(c.keys))
	old := c.order
	for len(old) > 0 && len(fresh) > 0 {
		if byPath(fresh[0], old[0]) < 0 {
			merged, fresh = append(merged, fresh[0]), fresh[1:]
		} else {
			merged, old = append(merged, old[0]), old[1:]
		}
	}
	c.order = append(append(merged, old...), fresh...)
}

// ByPath reports whether ListLineage answers f from the path ids: a
// query with no path filter that is not the hourly reference.
func ByPath(f store.LineageFilter) bool {
	return f.Identity == "" && f.Instance == "" && f.Task == "" && f.User == "" && f.Target == "" && f.Credential == "" &&
		!f.HourlyOnly
}

// PathSumQueries are the queries reading the rows a whole-graph query f
// sums ([ByPath]): path_id, allowed, denied, held, first_seen, last_seen,
// from the all-time rollup for f.AllTime, else one query per part of f's
// window ([LineageParts]). Their bounds are integer literals.
func PathSumQueries(f store.LineageFilter) []string {
	const cols = `SELECT path_id, allowed, denied, held, first_seen, last_seen FROM `
	if f.AllTime {
		return []string{fmt.Sprintf(cols+`lineage_facts WHERE hour = %d`, store.LineageAllTime.Unix())}
	}
	var qs []string
	for _, p := range LineageParts(f) {
		table, col := "lineage_facts", "hour"
		w := []string{fmt.Sprintf("hour <> %d", store.LineageAllTime.Unix())}
		if p.Daily {
			table, col, w = "lineage_daily", "day", nil
		}
		if p.FromSet {
			w = append(w, fmt.Sprintf("%s >= %d", col, p.From))
		}
		if p.ToSet {
			w = append(w, fmt.Sprintf("%s < %d", col, p.To))
		}
		if len(w) == 0 {
			w = []string{"true"}
		}
		qs = append(qs, cols+table+` WHERE `+strings.Join(w, " AND "))
	}
	return qs
}

// Each runs the query q with args on a store and calls row with the scan
// of each row of its answer, stopping at the first error.
type Each func(ctx context.Context, q string, args []any, row func(scan func(dest ...any) error) error) error

// ListByPath answers a whole-graph query f ([ByPath]) for a store: it
// learns the dictionary rows added since the cache last looked, sums the
// (path_id, counts) rows of [PathSumQueries], learns the ids still
// unknown (written by another handle on the store, or committed out of id
// order), and names the paths. after is the store's WHERE clause for "id
// above the one argument, in id order", byIDs its clause and arguments
// for a list of ids. It returns false, and no error, when the cache is
// full: the store then sums in SQL.
func (c *LineagePaths) ListByPath(ctx context.Context, each Each, f store.LineageFilter, after string,
	byIDs func(ids []int64) (string, []any)) ([]store.LineageFact, bool, error) {
	if err := c.load(ctx, each, after, []any{c.MaxID()}); err != nil {
		return nil, false, err
	}
	if c.Full() {
		return nil, false, nil
	}
	var sums Sums
	for _, q := range PathSumQueries(f) {
		var id, allowed, denied, held, first, last int64
		err := each(ctx, q, nil, func(scan func(dest ...any) error) error {
			if err := scan(&id, &allowed, &denied, &held, &first, &last); err != nil {
				return err
			}
			if id == 0 {
				return errors.New("a lineage row has no path id (migration 0022 gives every row one; was it written by an older writ?)")
			}
			sums.Add(id, allowed, denied, held, first, last)
			return nil
		})
		if err != nil {
			return nil, false, fmt.Errorf("list lineage: %w", err)
		}
	}
	for missing := c.Missing(&sums); len(missing) > 0; {
		n := min(len(missing), 500)
		where, args := byIDs(missing[:n])
		if err := c.load(ctx, each, where, args); err != nil {
			return nil, false, err
		}
		missing = missing[n:]
	}
	if c.Full() {
		return nil, false, nil
	}
	out, err := c.Facts(&sums, f.Limit)
	if err != nil {
		return nil, false, fmt.Errorf("list lineage: %w", err)
	}
	return out, true, nil
}

// load teaches the cache the dictionary rows matching where.
func (c *LineagePaths) load(ctx context.Context, each Each, where string, args []any) error {
	var (
		ids  []int64
		keys []PathKey
	)
	errFull := errors.New("full")
	err := each(ctx, `SELECT id, `+LineagePath+` FROM lineage_paths WHERE `+where, args, func(scan func(dest ...any) error) error {
		id, k, err := ScanPath(scan)
		if err != nil {
			return err
		}
		ids, keys = append(ids, id), append(keys, k)
		if len(ids) > cmp.Or(c.limit, MaxCachedPaths) {
			return errFull // Learn marks the cache full
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return fmt.Errorf("list lineage: path dictionary: %w", err)
	}
	c.Learn(ids, keys)
	return nil
}
