package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/writ-dev/writ/internal/auditlog"
	"net/http"
	"time"

	"log/slog"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
	"golang.org/x/mod/sumdb/note"
)

// AuditLog is the tamper-evident audit log the /v1/audit endpoints read.
type AuditLog interface {
	Origin() string
	VerifierKey() string
	Trusted() note.Verifiers
	Backend() auditlog.Backend
	Size() int64
	// Changed returns a channel closed at the next append (or close).
	Changed() <-chan struct{}
	Closed() bool
	LatestCheckpoint() (auditlog.StoredCheckpoint, auditlog.Checkpoint)
	// Checkpoint signs a checkpoint of the log as it is now.
	Checkpoint(ctx context.Context) (auditlog.StoredCheckpoint, auditlog.Checkpoint, error)
}

// AuditEventToAPI maps an event to its wire form.
func AuditEventToAPI(e audit.Event) apitypes.AuditEvent {
	return apitypes.AuditEvent{ID: e.ID, Time: e.Time, Type: string(e.Type), SpiffeID: e.SpiffeID, Instance: e.Instance,
		Task: e.Task, OnBehalfOf: e.OnBehalfOf, Actor: e.Actor, Target: e.Target, Action: e.Action, Decision: e.Decision,
		Policy: e.Policy, Rule: e.Rule, Reason: e.Reason, Credential: e.Credential, Source: e.Source, Node: e.Node,
		RequestID: e.RequestID, LatencyUS: e.LatencyUS, Details: e.Details}
}

func auditEntry(index int64, e audit.Event) apitypes.AuditEntry {
	return apitypes.AuditEntry{Index: index, AuditEvent: AuditEventToAPI(e)}
}

func checkpointToAPI(c auditlog.Checkpoint) apitypes.Checkpoint {
	return apitypes.Checkpoint{Origin: c.Origin, Size: c.Size, Hash: c.Hash}
}

// auditQuery maps the wire query to the log's.
func auditQuery(q apitypes.AuditQuery) auditlog.Query {
	return auditlog.Query{SpiffeID: q.SpiffeID, Instance: q.Instance, Task: q.Task, Type: audit.Type(q.Type), Decision: q.Decision,
		Since: q.Since, Until: q.Until, Before: q.Before, After: q.After, Ascending: q.Ascending, Limit: q.Limit}
}

func parseAuditQuery(r *http.Request, allow ...string) (auditlog.Query, error) {
	q, err := apitypes.ParseAuditQuery(r.URL.Query(), allow...)
	if err != nil {
		return auditlog.Query{}, badRequest("%v", err)
	}
	return auditQuery(q), nil
}

// NewAuditHandler returns the /v1/audit API of l. It does no
// authentication: [API.Register] mounts it behind the admin credential
// check (but GET /v1/audit/key); tests and tools may serve it alone.
//
//	GET /v1/audit/key                  KeyInfo: the public verifier key
//	GET /v1/audit/checkpoint           SignedCheckpoint: the latest (?fresh=1 signs one now)
//	GET /v1/audit/events               SearchResult, filtered by the Query parameters
//	GET /v1/audit/events/{id}          Entry
//	GET /v1/audit/events/{id}/proof    InclusionProof against a checkpoint that covers it
//	GET /v1/audit/consistency?from=N   ConsistencyProof from tree size N to the log now
//	GET /v1/audit/tail                 server-sent events, one "audit" event per entry
//	GET /v1/audit/export?format=jsonl  every matching entry as JSON lines, oldest first
func NewAuditHandler(l AuditLog, log *slog.Logger) http.Handler { return newAuditHandler(l, log) }

func newAuditHandler(l AuditLog, log *slog.Logger) *auditHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &auditHandler{l: l, b: l.Backend(), log: log, heartbeat: 15 * time.Second, streams: newStreams()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/audit/key", h.key)
	mux.HandleFunc("GET /v1/audit/checkpoint", h.checkpoint)
	mux.HandleFunc("GET /v1/audit/events", h.search)
	mux.HandleFunc("GET /v1/audit/events/{id}", h.event)
	mux.HandleFunc("GET /v1/audit/events/{id}/proof", h.proof)
	mux.HandleFunc("GET /v1/audit/consistency", h.consistency)
	mux.HandleFunc("GET /v1/audit/tail", h.tail)
	mux.HandleFunc("GET /v1/audit/export", h.export)
	mux.HandleFunc("/v1/audit/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, notFound("no audit API endpoint %s %s", r.Method, r.URL.Path))
	})
	h.mux = mux
	return h
}

type auditHandler struct {
	l         AuditLog
	b         auditlog.Backend
	log       *slog.Logger
	heartbeat time.Duration
	mux       *http.ServeMux
	streams   *streams
}

func (h *auditHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// fail writes err; an error that is not an *apitypes.Error is logged and
// answered with a generic 500.
func (h *auditHandler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *apitypes.Error
	if !errors.As(err, &he) {
		h.log.ErrorContext(r.Context(), "audit API", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	WriteError(w, err)
}

func (h *auditHandler) key(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, apitypes.AuditKey{Origin: h.l.Origin(), VerifierKey: h.l.VerifierKey()})
}

func (h *auditHandler) checkpoint(w http.ResponseWriter, r *http.Request) {
	stored, cp := h.l.LatestCheckpoint()
	if r.URL.Query().Get("fresh") != "" || stored.Note == nil {
		var err error
		if stored, cp, err = h.l.Checkpoint(r.Context()); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	WriteJSON(w, http.StatusOK, apitypes.SignedCheckpoint{Checkpoint: checkpointToAPI(cp), Note: string(stored.Note)})
}

func (h *auditHandler) search(w http.ResponseWriter, r *http.Request) {
	q, err := parseAuditQuery(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.searchQuery(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, res)
}

// searchQuery answers one page of a search (100 events when q names no
// limit).
func (h *auditHandler) searchQuery(ctx context.Context, q auditlog.Query) (apitypes.AuditSearchResult, error) {
	if q.Limit == 0 {
		q.Limit = 100
	}
	recs, err := h.b.SearchRecords(ctx, q)
	if err != nil {
		return apitypes.AuditSearchResult{}, err
	}
	res := apitypes.AuditSearchResult{Events: make([]apitypes.AuditEntry, 0, len(recs))}
	for _, rec := range recs {
		e, err := rec.Event()
		if err != nil {
			return apitypes.AuditSearchResult{}, err
		}
		res.Events = append(res.Events, auditEntry(rec.Index, e))
	}
	if len(recs) == q.Limit && !q.Ascending {
		res.NextBefore = recs[len(recs)-1].Index
	}
	return res, nil
}

func (h *auditHandler) record(ctx context.Context, id string) (auditlog.Record, error) {
	rec, err := h.b.RecordByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return rec, notFound("no audit event with id %q (find ids with `writ audit search`)", id)
	}
	return rec, err
}

func (h *auditHandler) event(w http.ResponseWriter, r *http.Request) {
	e, err := h.entry(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, e)
}

func (h *auditHandler) entry(ctx context.Context, id string) (apitypes.AuditEntry, error) {
	rec, err := h.record(ctx, id)
	if err != nil {
		return apitypes.AuditEntry{}, err
	}
	e, err := rec.Event()
	if err != nil {
		return apitypes.AuditEntry{}, err
	}
	return auditEntry(rec.Index, e), nil
}

func (h *auditHandler) proof(w http.ResponseWriter, r *http.Request) {
	p, err := h.prove(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, p)
}

// prove returns the inclusion proof of event id against a checkpoint
// that covers it (signing one when the latest does not).
func (h *auditHandler) prove(ctx context.Context, id string) (apitypes.InclusionProof, error) {
	rec, err := h.record(ctx, id)
	if err != nil {
		return apitypes.InclusionProof{}, err
	}
	stored, cp := h.l.LatestCheckpoint()
	if stored.Note == nil || cp.Size <= rec.Index {
		// The event is newer than the latest checkpoint: sign one.
		if stored, _, err = h.l.Checkpoint(ctx); err != nil {
			return apitypes.InclusionProof{}, err
		}
	}
	p, err := auditlog.ProveInclusion(ctx, h.b, rec, stored.Note, h.l.Trusted())
	if err != nil {
		return apitypes.InclusionProof{}, err
	}
	return apitypes.InclusionProof{Index: p.Index, Event: AuditEventToAPI(p.Event), Leaf: p.Leaf,
		Checkpoint: p.Checkpoint, Proof: p.Proof}, nil
}

func (h *auditHandler) consistency(w http.ResponseWriter, r *http.Request) {
	from, err := apitypes.ParseIndex(r.URL.Query().Get("from"))
	if err != nil {
		h.fail(w, r, badRequest("query parameter from=%q: %v (the size of your saved checkpoint)", r.URL.Query().Get("from"), err))
		return
	}
	// Prove up to the log as it is now, signing it if need be.
	stored, cp, err := h.l.Checkpoint(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if cp.Size < from {
		h.fail(w, r, conflict("the log holds %d events, fewer than the %d of the checkpoint you have: it was truncated or is another log", cp.Size, from))
		return
	}
	p, err := auditlog.ProveTreeConsistency(r.Context(), h.b, from, stored.Note)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, apitypes.ConsistencyProof{Old: p.Old, New: p.New, Proof: p.Proof})
}

// tail streams entries as server-sent events: "id: <index>", "event:
// audit", "data: <Entry JSON>". It starts after the Last-Event-ID the
// client sends, else at ?after=N, else with the next event appended, and
// follows the log until the client goes away or the log closes.
func (h *auditHandler) tail(w http.ResponseWriter, r *http.Request) {
	q, err := parseAuditQuery(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	next := q.After
	if r.URL.Query().Get("after") == "" {
		next = h.l.Size()
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := apitypes.ParseIndex(id)
		if err != nil {
			h.fail(w, r, badRequest("Last-Event-ID %q: %v", id, err))
			return
		}
		next = n + 1
	}
	q.After, q.Before, q.Limit = 0, 0, 0
	flusher, ok := w.(http.Flusher)
	if !ok {
		h.fail(w, r, errors.New("response writer cannot stream"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	bw := bufio.NewWriter(w)
	heartbeat := time.NewTicker(h.heartbeat)
	defer heartbeat.Stop()
	ctx, end := h.streams.begin(r)
	defer end()
	for {
		changed := h.l.Changed()
		recs, err := h.b.ReadRecords(ctx, next, 500)
		if err != nil {
			if ctx.Err() == nil {
				h.log.ErrorContext(ctx, "audit tail", "error", err)
				fmt.Fprintf(bw, "event: error\ndata: %s\n\n", jsonString("reading the log failed; see the server log"))
				bw.Flush()
			}
			return
		}
		for _, rec := range recs {
			e, err := rec.Event()
			if err != nil {
				h.log.ErrorContext(ctx, "audit tail", "error", err)
				fmt.Fprintf(bw, "event: error\ndata: %s\n\n", jsonString(err.Error()))
				bw.Flush()
				return
			}
			next = rec.Index + 1
			if !q.Match(rec.Index, &e) {
				continue
			}
			b, _ := json.Marshal(auditEntry(rec.Index, e))
			fmt.Fprintf(bw, "id: %d\nevent: audit\ndata: %s\n\n", rec.Index, b)
		}
		if err := bw.Flush(); err != nil {
			return
		}
		flusher.Flush()
		if len(recs) == 500 {
			continue
		}
		select {
		case <-changed:
			if h.l.Closed() && h.l.Size() <= next {
				return
			}
		case <-heartbeat.C:
			if _, err := bw.WriteString(": keepalive\n\n"); err != nil || bw.Flush() != nil {
				return
			}
			flusher.Flush()
		case <-ctx.Done():
			return
		}
	}
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// export streams every entry matching the query as JSON lines, oldest
// first, for SIEMs.
func (h *auditHandler) export(w http.ResponseWriter, r *http.Request) {
	q, err := parseAuditQuery(r, "format")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if f := r.URL.Query().Get("format"); f != "" && f != "jsonl" {
		h.fail(w, r, badRequest("format %q: the only export format is jsonl", f))
		return
	}
	total := q.Limit // 0: everything
	q.Ascending, q.Before = true, 0
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	sent := 0
	for {
		q.Limit = 1000
		if total > 0 {
			q.Limit = min(q.Limit, total-sent)
		}
		recs, err := h.b.SearchRecords(r.Context(), q)
		if err != nil {
			if sent == 0 {
				h.fail(w, r, err)
			} else {
				// Headers are gone; cut the stream short so the
				// client sees an incomplete last line.
				h.log.ErrorContext(r.Context(), "audit export", "error", err)
				bw.WriteString(`{"error":"export failed; see the server log"`)
				bw.Flush()
			}
			return
		}
		for _, rec := range recs {
			e, err := rec.Event()
			if err != nil {
				h.log.ErrorContext(r.Context(), "audit export", "error", err)
				bw.WriteString(`{"error":` + string(jsonString(err.Error())))
				bw.Flush()
				return
			}
			if err := enc.Encode(auditEntry(rec.Index, e)); err != nil {
				return
			}
			sent++
		}
		if len(recs) < q.Limit || (total > 0 && sent >= total) {
			bw.Flush()
			return
		}
		q.After = recs[len(recs)-1].Index + 1
	}
}

// AuditSearch answers one page of an audit search, as GET
// /v1/audit/events does (the console's audit explorer).
func (a *API) AuditSearch(ctx context.Context, q apitypes.AuditQuery) (apitypes.AuditSearchResult, error) {
	return a.audit.searchQuery(ctx, auditQuery(q))
}

// AuditEvent returns one event, as GET /v1/audit/events/{id} does.
func (a *API) AuditEvent(ctx context.Context, id string) (apitypes.AuditEntry, error) {
	return a.audit.entry(ctx, id)
}

// AuditProof returns an event's inclusion proof, as GET
// /v1/audit/events/{id}/proof does.
func (a *API) AuditProof(ctx context.Context, id string) (apitypes.InclusionProof, error) {
	return a.audit.prove(ctx, id)
}

// AuditStatus is the log's size and latest signed checkpoint.
func (a *API) AuditStatus() (size int64, checkpoint apitypes.Checkpoint, signed bool) {
	stored, cp := a.c.Audit.LatestCheckpoint()
	return a.c.Audit.Size(), checkpointToAPI(cp), stored.Note != nil
}
