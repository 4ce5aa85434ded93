// Package registry is the set of registration entries (Identity resources):
// it validates them, writes them to the store, matches attested selectors to
// the identities a workload may hold, and tells watchers when the set
// changes so the Workload API can push new state to open streams without
// polling.
//
// The store is the source of truth. The registry keeps a read-only snapshot
// of it, indexed by selector, that is replaced after every successful write;
// Match reads the snapshot without touching the store.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

	mu       sync.Mutex // serialises writes and guards watchers
	watchers map[chan struct{}]struct{}
}

type snapshot struct {
	all        []store.Entry
	bySelector map[string][]int // first selector -> indexes into all
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
	s := &snapshot{all: all, bySelector: map[string][]int{}}
	for i, id := range all {
		if len(id.Selectors) == 0 {
			continue // matches nothing; Validate refuses such entries
		}
		// Index under the first selector: every match must contain it.
		k := id.Selectors[0].String()
		s.bySelector[k] = append(s.bySelector[k], i)
	}
	r.snap.Store(s)
	return nil
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
	return out, r.changed(ctx, audit.EntryCreated, actor, out)
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
	return out, created, true, r.changed(ctx, typ, actor, out)
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
	return r.changed(ctx, audit.EntryDeleted, actor, old)
}

// changed refreshes the snapshot, notifies watchers and records the event.
// r.mu is held.
func (r *Registry) changed(ctx context.Context, typ audit.Type, actor string, id store.Entry) error {
	reloadErr := r.reload(ctx)
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

// Get returns one entry from the snapshot.
func (r *Registry) Get(name string) (store.Entry, bool) {
	for _, id := range r.snap.Load().all {
		if id.Name == name {
			return id, true
		}
	}
	return store.Entry{}, false
}

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
	var idx []int
	for k := range have {
		idx = append(idx, s.bySelector[k]...)
	}
	slices.Sort(idx)
	var out []store.Entry
	for _, i := range idx {
		id := s.all[i]
		ok := true
		for _, sel := range id.Selectors[1:] {
			if _, found := have[sel.String()]; !found {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, id)
		}
	}
	sortSpecificFirst(out)
	return out
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
