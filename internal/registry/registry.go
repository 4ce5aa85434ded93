// Package registry is the set of registration entries (Identity resources):
// it validates them, writes them to the store, matches attested selectors to
// the identities a workload may hold, and tells watchers when the set
// changes so the Workload API can push new state to open streams without
// polling.
//
// The store is the source of truth. The registry keeps a read-only snapshot
// of it, indexed by selector, that is replaced after every successful write;
// Match reads the snapshot without touching the store. A write through the
// registry reads back the one entry it wrote and derives the next snapshot
// from the current one (no read of every entry: creating the 10,000th
// entry costs what creating the first does, but for copying the
// snapshot's slices); Reload reads them all, for changes other servers made.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// MaxSelectors bounds the selectors of one entry.
const MaxSelectors = 32

// Config configures a Registry.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	Store       store.Entries
	Emitter     audit.Emitter
	Log         *slog.Logger
}

// Registry holds the registration entries.
type Registry struct {
	c    Config
	snap atomic.Pointer[snapshot]

	mu       sync.Mutex // serialises writes and guards watchers and the change log
	watchers map[chan struct{}]struct{}
	// gen counts the changes; log names the entries of the newest ones
	// (log[len(log)-1] is change gen), floor is the change before which
	// the log knows nothing (a Reload may have changed anything).
	gen, floor uint64
	log        []string
}

// changeLog is how many changes ChangedSince can tell apart.
const changeLog = 4096

// snapshot is one immutable state of the entry set: readers hold it
// without locks, writers replace it whole.
type snapshot struct {
	all        []store.Entry            // ordered by name, byte order
	bySelector map[string][]store.Entry // first selector -> the entries it starts
	bySpiffe   map[string][]store.Entry // SPIFFE ID -> its entries, by name
	// labels are the labels of each SPIFFE ID's entries merged (a later
	// name's value wins), for authenticating an agent without a scan.
	labels map[string]map[string]string
}

func byName(a store.Entry, name string) int { return strings.Compare(a.Name, name) }

// newSnapshot indexes all (sorting it by name: a store's collation may
// order names otherwise).
func newSnapshot(all []store.Entry) *snapshot {
	slices.SortFunc(all, func(a, b store.Entry) int { return strings.Compare(a.Name, b.Name) })
	s := &snapshot{all: all, bySelector: map[string][]store.Entry{}, bySpiffe: map[string][]store.Entry{}, labels: map[string]map[string]string{}}
	for _, e := range all {
		s.index(e)
		s.bySpiffe[e.SpiffeID] = append(s.bySpiffe[e.SpiffeID], e)
	}
	for id := range s.bySpiffe {
		s.mergeLabels(id)
	}
	return s
}

// mergeLabels recomputes the merged labels of SPIFFE ID id.
func (s *snapshot) mergeLabels(id string) {
	var m map[string]string
	for _, e := range s.bySpiffe[id] {
		if len(e.Labels) > 0 && m == nil {
			m = map[string]string{}
		}
		maps.Copy(m, e.Labels)
	}
	if m == nil {
		delete(s.labels, id)
	} else {
		s.labels[id] = m
	}
}

// setSpiffe replaces old (when it is not zero) by e (when it is not
// zero) among their SPIFFE IDs' entries, and their merged labels.
func (s *snapshot) setSpiffe(old, e store.Entry) {
	if old.Name != "" {
		l := slices.DeleteFunc(slices.Clone(s.bySpiffe[old.SpiffeID]), func(x store.Entry) bool { return x.Name == old.Name })
		if len(l) == 0 {
			delete(s.bySpiffe, old.SpiffeID)
		} else {
			s.bySpiffe[old.SpiffeID] = l
		}
		s.mergeLabels(old.SpiffeID)
	}
	if e.Name != "" {
		l := s.bySpiffe[e.SpiffeID]
		i, _ := slices.BinarySearchFunc(l, e.Name, byName)
		s.bySpiffe[e.SpiffeID] = slices.Insert(slices.Clone(l), i, e)
		s.mergeLabels(e.SpiffeID)
	}
}

// clone copies s's maps (not the lists they hold: those are replaced, not
// changed), for a writer to change.
func (s *snapshot) clone() *snapshot {
	return &snapshot{bySelector: maps.Clone(s.bySelector), bySpiffe: maps.Clone(s.bySpiffe), labels: maps.Clone(s.labels)}
}

// index adds e under its first selector (every match must contain it).
// An entry without selectors matches nothing (Validate refuses them).
func (s *snapshot) index(e store.Entry) {
	if len(e.Selectors) == 0 {
		return
	}
	k := e.Selectors[0].String()
	s.bySelector[k] = append(slices.Clip(s.bySelector[k]), e)
}

// unindex removes old (by name) from under its first selector.
func (s *snapshot) unindex(old store.Entry) {
	if len(old.Selectors) == 0 {
		return
	}
	k := old.Selectors[0].String()
	l := slices.DeleteFunc(slices.Clone(s.bySelector[k]), func(e store.Entry) bool { return e.Name == old.Name })
	if len(l) == 0 {
		delete(s.bySelector, k)
	} else {
		s.bySelector[k] = l
	}
}

// with returns a new snapshot holding e in place of the entry of its name
// (or added). s is not changed: readers may hold it.
func (s *snapshot) with(e store.Entry) *snapshot {
	i, found := slices.BinarySearchFunc(s.all, e.Name, byName)
	n := s.clone()
	var old store.Entry
	if found {
		old = s.all[i]
		n.unindex(old)
		n.all = slices.Clone(s.all)
		n.all[i] = e
	} else {
		n.all = make([]store.Entry, 0, len(s.all)+1)
		n.all = append(append(append(n.all, s.all[:i]...), e), s.all[i:]...)
	}
	n.index(e)
	n.setSpiffe(old, e)
	return n
}

// without returns a new snapshot without the entry named name.
func (s *snapshot) without(name string) *snapshot {
	i, found := slices.BinarySearchFunc(s.all, name, byName)
	if !found {
		return s
	}
	n := s.clone()
	n.unindex(s.all[i])
	n.setSpiffe(s.all[i], store.Entry{})
	n.all = slices.Concat(s.all[:i], s.all[i+1:])
	return n
}

// New loads the entries from the store.
func New(ctx context.Context, c Config) (*Registry, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Emitter == nil {
		c.Emitter = audit.SlogEmitter{Log: c.Log}
	}
	r := &Registry{c: c, watchers: map[chan struct{}]struct{}{}}
	if err := r.reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the entries from the store again and wakes the watchers:
// for a change another server on the same store made.
func (r *Registry) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reload(ctx); err != nil {
		return err
	}
	for ch := range r.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return nil
}

func (r *Registry) reload(ctx context.Context) error {
	all, err := r.c.Store.ListEntries(ctx)
	if err != nil {
		return fmt.Errorf("load identities: %w", err)
	}
	r.snap.Store(newSnapshot(all))
	r.gen++
	r.floor, r.log = r.gen, nil
	return nil
}

// logChange records that the entry name changed. r.mu is held.
func (r *Registry) logChange(name string) {
	r.gen++
	r.log = append(r.log, name)
	if len(r.log) > 2*changeLog {
		r.log = slices.Clone(r.log[len(r.log)-changeLog:])
	}
}

// ChangedSince returns the names of the entries changed (created,
// replaced or deleted) after change gen, as [Registry.Get] now tells
// them, and the current change; ok is false when the registry cannot say
// (gen is older than its log, or a Reload came between): then compare
// every entry. A watcher that diffs the set keeps the returned change for
// its next call.
func (r *Registry) ChangedSince(gen uint64) (names []string, now uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := r.gen - uint64(len(r.log)) // the log holds changes oldest+1 .. gen
	if gen < r.floor || gen < oldest || gen > r.gen {
		return nil, r.gen, false
	}
	names = slices.Clone(r.log[gen-oldest:])
	slices.Sort(names)
	return slices.Compact(names), r.gen, true
}

// FieldError is a validation error of one field of an entry.
type FieldError struct {
	Field string // e.g. "spiffe_id", "selectors[2]"
	Index int    // for list fields, the element; else -1
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field string, index int, format string, args ...any) error {
	f := field
	if index >= 0 {
		f = fmt.Sprintf("%s[%d]", field, index)
	}
	return &FieldError{Field: f, Index: index, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks id and normalises it (sorted, de-duplicated selectors).
// Errors name the field and say what to write instead.
func (r *Registry) Validate(id *store.Entry) error {
	if !resource.ValidName(id.Name) {
		return fieldErr("name", -1, "%q: use 1-128 lower-case letters, digits, '.', '_' or '-', starting and ending with a letter or digit", id.Name)
	}
	sid, err := spiffeid.FromString(id.SpiffeID)
	if err != nil {
		return fieldErr("spiffe_id", -1, "%q: %v (write it like spiffe://%s/agent/name)", id.SpiffeID, err, r.c.TrustDomain)
	}
	if sid.TrustDomain() != r.c.TrustDomain {
		return fieldErr("spiffe_id", -1, "%q: trust domain %q is not this server's %q", id.SpiffeID, sid.TrustDomain(), r.c.TrustDomain)
	}
	if sid.Path() == "" {
		return fieldErr("spiffe_id", -1, "%q: the path is empty; name the workload, e.g. spiffe://%s/agent/name", id.SpiffeID, r.c.TrustDomain)
	}
	if len(id.Selectors) == 0 {
		return fieldErr("selectors", -1, "at least one is required, e.g. unix:uid:1000 (an entry without selectors would match no workload)")
	}
	if len(id.Selectors) > MaxSelectors {
		return fieldErr("selectors", -1, "%d given, at most %d allowed", len(id.Selectors), MaxSelectors)
	}
	for i, s := range id.Selectors {
		if s.Type == nodeattest.GateType {
			// Issuance gated on the node's attestation (checked by the
			// server when a node asks for the SVID).
			if err := nodeattest.ValidateGate(s.Value); err != nil {
				return fieldErr("selectors", i, "%v", err)
			}
			continue
		}
		p, err := attest.ParseSelector(s.String())
		if err != nil {
			return fieldErr("selectors", i, "%v", err)
		}
		id.Selectors[i] = p
	}
	slices.SortFunc(id.Selectors, func(a, b store.Selector) int { return strings.Compare(a.String(), b.String()) })
	id.Selectors = slices.Compact(id.Selectors)
	if id.X509TTL < 0 || (id.X509TTL > 0 && id.X509TTL < time.Minute) {
		return fieldErr("x509_ttl", -1, "%v: must be at least 1m, or 0 for the server default", id.X509TTL)
	}
	if id.JWTTTL < 0 || (id.JWTTTL > 0 && id.JWTTTL < 10*time.Second) {
		return fieldErr("jwt_ttl", -1, "%v: must be at least 10s, or 0 for the server default", id.JWTTTL)
	}
	for k := range id.Labels {
		if k == "" || len(k) > 63 || strings.ContainsAny(k, " =,") {
			return fieldErr("labels", -1, "key %q: use 1-63 characters without spaces, '=' or ','", k)
		}
	}
	return nil
}

// Create validates and stores a new entry. actor names who asked.
func (r *Registry) Create(ctx context.Context, actor string, id store.Entry) (store.Entry, error) {
	if err := r.Validate(&id); err != nil {
		return store.Entry{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.c.Store.CreateEntry(ctx, id)
	if err != nil {
		return store.Entry{}, err
	}
	return out, r.changed(ctx, audit.EntryCreated, actor, out, false)
}

// Upsert validates and creates or replaces an entry; changed is false when
// the stored entry was already identical.
func (r *Registry) Upsert(ctx context.Context, actor string, id store.Entry) (out store.Entry, created, changed bool, err error) {
	if err := r.Validate(&id); err != nil {
		return store.Entry{}, false, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out, changed, err = r.c.Store.UpsertEntry(ctx, id)
	if err != nil || !changed {
		return out, false, false, err
	}
	typ := audit.EntryChanged
	if out.Revision == 1 {
		typ, created = audit.EntryCreated, true
	}
	return out, created, true, r.changed(ctx, typ, actor, out, false)
}

// Delete removes the entry with name.
func (r *Registry) Delete(ctx context.Context, actor, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, err := r.c.Store.GetEntry(ctx, name)
	if err != nil {
		return err
	}
	if err := r.c.Store.DeleteEntry(ctx, name); err != nil {
		return err
	}
	return r.changed(ctx, audit.EntryDeleted, actor, old, true)
}

// changed refreshes the snapshot with the entry written (id, or its
// deletion), notifies watchers and records the event. r.mu is held.
func (r *Registry) changed(ctx context.Context, typ audit.Type, actor string, id store.Entry, deleted bool) error {
	reloadErr := r.refresh(ctx, id.Name, deleted)
	for ch := range r.watchers {
		select {
		case ch <- struct{}{}:
		default: // a notification is already pending
		}
	}
	sel := make([]string, len(id.Selectors))
	for i, s := range id.Selectors {
		sel[i] = s.String()
	}
	err := r.c.Emitter.Emit(ctx, audit.Event{
		Type:     typ,
		SpiffeID: id.SpiffeID,
		Actor:    actor,
		Target:   "Identity/" + id.Name,
		Details:  map[string]string{"selectors": strings.Join(sel, ","), "revision": fmt.Sprint(id.Revision)},
	})
	return errors.Join(reloadErr, err)
}

// refresh puts the stored entry name (as the store now holds it, as a
// reload would read it) into the snapshot, or takes it out when deleted.
// Should the entry not be readable, the snapshot is reloaded whole. r.mu
// is held.
func (r *Registry) refresh(ctx context.Context, name string, deleted bool) error {
	cur := r.snap.Load()
	defer r.logChange(name)
	if deleted {
		r.snap.Store(cur.without(name))
		return nil
	}
	e, err := r.c.Store.GetEntry(ctx, name)
	switch {
	case err == nil:
		r.snap.Store(cur.with(e))
		return nil
	case errors.Is(err, store.ErrNotFound): // deleted since, by another server
		r.snap.Store(cur.without(name))
		return nil
	}
	return errors.Join(fmt.Errorf("read back identity %q: %w", name, err), r.reload(ctx))
}

// Get returns one entry from the snapshot.
func (r *Registry) Get(name string) (store.Entry, bool) {
	all := r.snap.Load().all
	if i, ok := slices.BinarySearchFunc(all, name, byName); ok {
		return all[i], true
	}
	return store.Entry{}, false
}

// BySpiffeID returns the entries that name SPIFFE ID id, ordered by name.
// The list is shared: do not change it.
func (r *Registry) BySpiffeID(id string) []store.Entry { return r.snap.Load().bySpiffe[id] }

// Labels returns the labels of the entries for SPIFFE ID id merged (where
// several name it and disagree, the later name's value), nil for none.
// The map is shared: do not change it.
func (r *Registry) Labels(id string) map[string]string { return r.snap.Load().labels[id] }

// List returns every entry, ordered by name.
func (r *Registry) List() []store.Entry {
	return slices.Clone(r.snap.Load().all)
}

// Match returns the entries whose selectors are all among attested, most
// specific first (see [Choose]): by number of selectors, then by name.
func (r *Registry) Match(attested []store.Selector) []store.Entry {
	s := r.snap.Load()
	have := make(map[string]struct{}, len(attested))
	for _, a := range attested {
		have[a.String()] = struct{}{}
	}
	var out []store.Entry
	for k := range have {
		for _, id := range s.bySelector[k] {
			if matchRest(id, have) {
				out = append(out, id)
			}
		}
	}
	sortSpecificFirst(out)
	return out
}

// matchRest reports whether every selector of id after its first (the
// one it is indexed by) is in have.
func matchRest(id store.Entry, have map[string]struct{}) bool {
	for _, sel := range id.Selectors[1:] {
		if _, found := have[sel.String()]; !found {
			return false
		}
	}
	return true
}

// Watch returns a channel that receives a value after the entry set
// changes (coalesced: one pending notification at most) and a function
// that stops the watch.
func (r *Registry) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.watchers[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.watchers, ch)
		r.mu.Unlock()
	}
}
