package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/httpapi"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/store"
)

func entryToAPI(id store.Identity) httpapi.Entry {
	e := httpapi.Entry{Name: id.Name, SpiffeID: id.SpiffeID, Labels: id.Labels, Revision: id.Revision}
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
func entryFromAPI(e httpapi.Entry) (store.Identity, error) {
	id := store.Identity{Name: e.Name, SpiffeID: e.SpiffeID, Labels: e.Labels}
	for i, s := range e.Selectors {
		typ, val, ok := strings.Cut(s, ":")
		if !ok {
			return id, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"selectors[%d] %q: write type:key:value, e.g. unix:uid:1000", i, s)
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
		return 0, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%s %q: write a duration like 30m or 1h", field, s)
	}
	return d, nil
}

// storeError maps store and validation errors to API errors.
func storeError(what string, err error) error {
	var fe *registry.FieldError
	switch {
	case errors.As(err, &fe):
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%s: %v", what, err)
	case errors.Is(err, store.ErrNotFound):
		return httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "%s: not found", what)
	case errors.Is(err, store.ErrExists):
		return httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict, "%s: already exists; delete it first or use `writ apply` to change it", what)
	}
	return err
}

func (s *Server) handleListEntries(w http.ResponseWriter, r *http.Request) {
	out := []httpapi.Entry{}
	for _, id := range s.registry.List() {
		out = append(out, entryToAPI(id))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetEntry(w http.ResponseWriter, r *http.Request) {
	id, ok := s.findEntry(r.PathValue("name"))
	if !ok {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "entry %q: not found (list entries with `writ entry list`)", r.PathValue("name")))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, entryToAPI(id))
}

// findEntry looks an entry up by name, or by SPIFFE ID when exactly one
// entry has it.
func (s *Server) findEntry(key string) (store.Identity, bool) {
	if id, ok := s.registry.Get(key); ok {
		return id, true
	}
	var found []store.Identity
	for _, id := range s.registry.List() {
		if id.SpiffeID == key {
			found = append(found, id)
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return store.Identity{}, false
}

func (s *Server) handleCreateEntry(w http.ResponseWriter, r *http.Request) {
	var req httpapi.Entry
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	id, err := entryFromAPI(req)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if id.Name == "" {
		id.Name = defaultEntryName(id.SpiffeID)
	}
	out, err := s.registry.Create(r.Context(), actor(r.Context()), id)
	if err != nil {
		s.logInternal(r, "create entry", err)
		httpapi.WriteError(w, storeError(fmt.Sprintf("entry %q", id.Name), err))
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, entryToAPI(out))
}

// defaultEntryName derives a name from a SPIFFE ID's path:
// spiffe://writ.local/agent/email-drafter -> agent.email-drafter.
func defaultEntryName(spiffeID string) string {
	_, path, ok := strings.Cut(strings.TrimPrefix(spiffeID, "spiffe://"), "/")
	if !ok {
		return ""
	}
	name := strings.ToLower(strings.ReplaceAll(strings.Trim(path, "/"), "/", "."))
	return name
}

func (s *Server) handleDeleteEntry(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("name")
	id, ok := s.findEntry(key)
	if !ok {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
			"entry %q: not found by name, or the SPIFFE ID names several entries (delete by name; see `writ entry list`)", key))
		return
	}
	if err := s.registry.Delete(r.Context(), actor(r.Context()), id.Name); err != nil {
		s.logInternal(r, "delete entry", err)
		httpapi.WriteError(w, storeError(fmt.Sprintf("entry %q", id.Name), err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, entryToAPI(id))
}

func (s *Server) handleListInstances(w http.ResponseWriter, r *http.Request) {
	list, err := s.db.ListInstances(r.Context())
	out := make([]httpapi.Instance, 0, len(list))
	for _, i := range list {
		out = append(out, httpapi.Instance{ID: i.ID, PID: i.PID, UID: i.UID, Exe: i.Exe, FirstSeen: i.FirstSeen, LastSeen: i.LastSeen})
	}
	writeList(s, w, r, "list instances", out, err)
}

// writeList answers a list request: err (logged unless it is the client's)
// or the list as a JSON array, never null.
func writeList[T any](s *Server, w http.ResponseWriter, r *http.Request, what string, list []T, err error) {
	if err != nil {
		s.logInternal(r, what, err)
		httpapi.WriteError(w, err)
		return
	}
	if list == nil {
		list = []T{}
	}
	httpapi.WriteJSON(w, http.StatusOK, list)
}

// logInternal logs err if it is not a client error.
func (s *Server) logInternal(r *http.Request, what string, err error) {
	var he *httpapi.Error
	var fe *registry.FieldError
	if errors.As(err, &he) || errors.As(err, &fe) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) {
		return
	}
	s.log.ErrorContext(r.Context(), what, "path", r.URL.Path, "error", err)
}
