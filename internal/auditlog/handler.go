package auditlog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/writ-dev/writ/internal/httpapi"
	"github.com/writ-dev/writ/internal/store"
)

// NewHandler returns the /v1/audit API of l. It does no authentication:
// the server mounts it behind the admin credential check.
//
//	GET /v1/audit/key                  KeyInfo: the public verifier key
//	GET /v1/audit/checkpoint           SignedCheckpoint: the latest (?fresh=1 signs one now)
//	GET /v1/audit/events               SearchResult, filtered by the Query parameters
//	GET /v1/audit/events/{id}          Entry
//	GET /v1/audit/events/{id}/proof    InclusionProof against a checkpoint that covers it
//	GET /v1/audit/consistency?from=N   ConsistencyProof from tree size N to the log now
//	GET /v1/audit/tail                 server-sent events, one "audit" event per entry
//	GET /v1/audit/export?format=jsonl  every matching entry as JSON lines, oldest first
func NewHandler(l *Log) http.Handler {
	h := &handler{l: l, heartbeat: 15 * time.Second}
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
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "no audit API endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

type handler struct {
	l         *Log
	heartbeat time.Duration
}

// fail writes err; an error that is not an *httpapi.Error is logged and
// answered with a generic 500.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpapi.Error
	if !errors.As(err, &he) {
		h.l.log.ErrorContext(r.Context(), "audit API", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	httpapi.WriteError(w, err)
}

func badRequest(format string, args ...any) error {
	return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, format, args...)
}

func (h *handler) key(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, KeyInfo{Origin: h.l.origin, VerifierKey: h.l.vkey})
}

func (h *handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	stored, cp := h.l.LatestCheckpoint()
	if r.URL.Query().Get("fresh") != "" || stored.Note == nil {
		var err error
		if stored, cp, err = h.l.Checkpoint(r.Context()); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, SignedCheckpoint{Checkpoint: cp, Note: string(stored.Note)})
}

func (h *handler) search(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r.URL.Query())
	if err != nil {
		h.fail(w, r, badRequest("%v", err))
		return
	}
	if q.Limit == 0 {
		q.Limit = 100
	}
	recs, err := h.l.b.SearchRecords(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res := SearchResult{Events: make([]Entry, 0, len(recs))}
	for _, rec := range recs {
		e, err := rec.Event()
		if err != nil {
			h.fail(w, r, err)
			return
		}
		res.Events = append(res.Events, Entry{Index: rec.Index, Event: e})
	}
	if len(recs) == q.Limit && !q.Ascending {
		res.NextBefore = recs[len(recs)-1].Index
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

func (h *handler) record(ctx context.Context, id string) (Record, error) {
	rec, err := h.l.b.RecordByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return rec, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "no audit event with id %q (find ids with `writ audit search`)", id)
	}
	return rec, err
}

func (h *handler) event(w http.ResponseWriter, r *http.Request) {
	rec, err := h.record(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	e, err := rec.Event()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, Entry{Index: rec.Index, Event: e})
}

func (h *handler) proof(w http.ResponseWriter, r *http.Request) {
	rec, err := h.record(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	stored, cp := h.l.LatestCheckpoint()
	if stored.Note == nil || cp.Size <= rec.Index {
		// The event is newer than the latest checkpoint: sign one.
		if stored, _, err = h.l.Checkpoint(r.Context()); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	p, err := ProveInclusion(r.Context(), h.l.b, rec, stored.Note, h.l.trusted)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
}

func (h *handler) consistency(w http.ResponseWriter, r *http.Request) {
	from, err := parseIndex(r.URL.Query().Get("from"))
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
		h.fail(w, r, httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict,
			"the log holds %d events, fewer than the %d of the checkpoint you have: it was truncated or is another log", cp.Size, from))
		return
	}
	p, err := ProveTreeConsistency(r.Context(), h.l.b, from, stored.Note)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
}

// tail streams entries as server-sent events: "id: <index>", "event:
// audit", "data: <Entry JSON>". It starts after the Last-Event-ID the
// client sends, else at ?after=N, else with the next event appended, and
// follows the log until the client goes away or the log closes.
func (h *handler) tail(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r.URL.Query())
	if err != nil {
		h.fail(w, r, badRequest("%v", err))
		return
	}
	next := q.After
	if r.URL.Query().Get("after") == "" {
		next = h.l.Size()
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := parseIndex(id)
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
	ctx := r.Context()
	for {
		changed := h.l.Changed()
		recs, err := h.l.b.ReadRecords(ctx, next, 500)
		if err != nil {
			if ctx.Err() == nil {
				h.l.log.ErrorContext(ctx, "audit tail", "error", err)
				fmt.Fprintf(bw, "event: error\ndata: %s\n\n", jsonString("reading the log failed; see the server log"))
				bw.Flush()
			}
			return
		}
		for _, rec := range recs {
			e, err := rec.Event()
			if err != nil {
				h.l.log.ErrorContext(ctx, "audit tail", "error", err)
				fmt.Fprintf(bw, "event: error\ndata: %s\n\n", jsonString(err.Error()))
				bw.Flush()
				return
			}
			next = rec.Index + 1
			if !q.Match(rec.Index, &e) {
				continue
			}
			b, _ := json.Marshal(Entry{Index: rec.Index, Event: e})
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
func (h *handler) export(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r.URL.Query(), "format")
	if err != nil {
		h.fail(w, r, badRequest("%v", err))
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
		recs, err := h.l.b.SearchRecords(r.Context(), q)
		if err != nil {
			if sent == 0 {
				h.fail(w, r, err)
			} else {
				// Headers are gone; cut the stream short so the
				// client sees an incomplete last line.
				h.l.log.ErrorContext(r.Context(), "audit export", "error", err)
				bw.WriteString(`{"error":"export failed; see the server log"`)
				bw.Flush()
			}
			return
		}
		for _, rec := range recs {
			e, err := rec.Event()
			if err != nil {
				h.l.log.ErrorContext(r.Context(), "audit export", "error", err)
				bw.WriteString(`{"error":` + string(jsonString(err.Error())))
				bw.Flush()
				return
			}
			if err := enc.Encode(Entry{Index: rec.Index, Event: e}); err != nil {
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
