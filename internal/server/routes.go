package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/httpapi"
)

// routes builds the HTTP surface. Public: health, readiness, metrics and
// the SPIFFE bundle endpoint. Everything under /v1/ requires the admin
// credential.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /bundle", s.handleBundle)

	// Admin API: every route is wrapped with the admin credential check.
	// Routes that agents call (tasks, tokens) register their own auth.
	admin := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.admin.require(h)) }
	admin("GET /v1/entries", s.handleListEntries)
	admin("POST /v1/entries", s.handleCreateEntry)
	admin("GET /v1/entries/{name}", s.handleGetEntry)
	admin("DELETE /v1/entries/{name}", s.handleDeleteEntry)
	admin("POST /v1/apply", s.handleApply)
	admin("GET /v1/resources/{kind}", s.handleListResources)
	admin("GET /v1/resources/{kind}/{name}", s.handleGetResource)
	admin("DELETE /v1/resources/{kind}/{name}", s.handleDeleteResource)
	admin("GET /v1/instances", s.handleListInstances)
	s.proxyRoutes(admin)
	s.tokenRoutes(mux, admin)
	auditAPI := auditlog.NewHandler(s.auditLog)
	mux.Handle("GET /v1/audit/key", auditAPI) // a public key: anyone may verify
	mux.Handle("/v1/audit/", s.admin.require(auditAPI))
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "no API endpoint %s %s", r.Method, r.URL.Path))
	})
	return securityHeaders(mux)
}

// securityHeaders sets strict defaults on every response.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if err := s.db.SQL().PingContext(r.Context()); err != nil {
		httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "store unavailable"})
		return
	}
	if err := s.auditLog.Failed(); err != nil {
		// Every enforcement path denies while the log refuses events.
		httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "audit log failed; restart writ", "error": err.Error()})
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// handleBundle serves the SPIFFE bundle endpoint document: a JWKS with
// use=x509-svid and use=jwt-svid keys, spiffe_sequence and
// spiffe_refresh_hint.
func (s *Server) handleBundle(w http.ResponseWriter, r *http.Request) {
	doc, err := s.authority.Bundle().Marshal()
	if err != nil {
		s.log.ErrorContext(r.Context(), "marshal bundle", "error", err)
		httpapi.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(doc)
}
