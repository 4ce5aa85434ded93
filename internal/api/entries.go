package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/store"
)

// Entries is the registry of identities (registration entries).
type Entries interface {
	List() []store.Entry
	Get(name string) (store.Entry, bool)
	Create(ctx context.Context, actor string, id store.Entry) (store.Entry, error)
	Delete(ctx context.Context, actor, name string) error
}

// Instances lists attested process instances.
type Instances interface {
	ListInstances(ctx context.Context) ([]store.Instance, error)
}

// EntryToAPI maps a stored identity to its wire form.
func EntryToAPI(id store.Entry) apitypes.Entry {
	e := apitypes.Entry{Name: id.Name, SpiffeID: id.SpiffeID, Labels: id.Labels, Revision: id.Revision}
	for _, s := range id.Selectors {
		e.Selectors = append(e.Selectors, s.String())
	}
	if id.X509TTL > 0 {
		e.X509TTL = id.X509TTL.String()
	}
	if id.JWTTTL > 0 {
		e.JWTTTL = id.JWTTTL.String()
	}
	if !id.CreatedAt.IsZero() {
		c, u := id.CreatedAt, id.UpdatedAt
		e.CreatedAt, e.UpdatedAt = &c, &u
	}
	return e
}

// entryFromAPI converts a request; errors name the field.
func entryFromAPI(e apitypes.Entry) (store.Entry, error) {
	id := store.Entry{Name: e.Name, SpiffeID: e.SpiffeID, Labels: e.Labels}
	for i, s := range e.Selectors {
		typ, val, ok := strings.Cut(s, ":")
		if !ok {
			return id, badRequest("selectors[%d] %q: write type:key:value, e.g. unix:uid:1000", i, s)
		}
		id.Selectors = append(id.Selectors, store.Selector{Type: typ, Value: val})
	}
	var err error
	if id.X509TTL, err = parseTTL("x509_ttl", e.X509TTL); err != nil {
		return id, err
	}
	if id.JWTTTL, err = parseTTL("jwt_ttl", e.JWTTTL); err != nil {
		return id, err
	}
	return id, nil
}

func parseTTL(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badRequest("%s %q: write a duration like 30m or 1h", field, s)
	}
	return d, nil
}

func (a *API) listEntries(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, mapList(a.c.Entries.List(), EntryToAPI))
}

func (a *API) getEntry(w http.ResponseWriter, r *http.Request) {
	id, ok := a.findEntry(r.PathValue("name"))
	if !ok {
		WriteError(w, notFound("entry %q: not found (list entries with `writ entry list`)", r.PathValue("name")))
		return
	}
	WriteJSON(w, http.StatusOK, EntryToAPI(id))
}

// findEntry looks an entry up by name, or by SPIFFE ID when exactly one
// entry has it.
func (a *API) findEntry(key string) (store.Entry, bool) {
	if id, ok := a.c.Entries.Get(key); ok {
		return id, true
	}
	var found []store.Entry
	for _, id := range a.c.Entries.List() {
		if id.SpiffeID == key {
			found = append(found, id)
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return store.Entry{}, false
}

func (a *API) createEntry(w http.ResponseWriter, r *http.Request) {
	var req apitypes.Entry
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	id, err := entryFromAPI(req)
	if err != nil {
		WriteError(w, err)
		return
	}
	if id.Name == "" {
		id.Name = DefaultEntryName(id.SpiffeID)
	}
	out, err := a.c.Entries.Create(r.Context(), Actor(r.Context()), id)
	if err != nil {
		a.fail(w, r, "create entry", storeError(fmt.Sprintf("entry %q", id.Name), err))
		return
	}
	WriteJSON(w, http.StatusCreated, EntryToAPI(out))
}

// DefaultEntryName derives an entry name from a SPIFFE ID's path:
// spiffe://writ.local/agent/email-drafter -> agent.email-drafter.
func DefaultEntryName(spiffeID string) string {
	_, path, ok := strings.Cut(strings.TrimPrefix(spiffeID, "spiffe://"), "/")
	if !ok {
		return ""
	}
	return strings.ToLower(strings.ReplaceAll(strings.Trim(path, "/"), "/", "."))
}

func (a *API) deleteEntry(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("name")
	id, ok := a.findEntry(key)
	if !ok {
		WriteError(w, notFound("entry %q: not found by name, or the SPIFFE ID names several entries (delete by name; see `writ entry list`)", key))
		return
	}
	if err := a.c.Entries.Delete(r.Context(), Actor(r.Context()), id.Name); err != nil {
		a.fail(w, r, "delete entry", storeError(fmt.Sprintf("entry %q", id.Name), err))
		return
	}
	WriteJSON(w, http.StatusOK, EntryToAPI(id))
}

func instanceToAPI(i store.Instance) apitypes.Instance {
	return apitypes.Instance{ID: i.ID, PID: i.PID, UID: i.UID, Exe: i.Exe, FirstSeen: i.FirstSeen, LastSeen: i.LastSeen}
}

func (a *API) listInstances(w http.ResponseWriter, r *http.Request) {
	list, err := a.c.Instances.ListInstances(r.Context())
	writeList(a, w, r, "list instances", mapList(list, instanceToAPI), err)
}
