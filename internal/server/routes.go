package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/writ-dev/writ/internal/api"
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

	// The OAuth endpoints (token exchange, introspection, revocation,
	// discovery, JWKS); an operator's admin credential is accepted where
	// an agent's identity is.
	s.tok.issuer.Register(mux, s.admin.ActorOf)
	// The admin API: /v1/...
	s.api.Register(mux)
	// The node API: /node/v1/..., answered on the TLS listener only.
	s.nodes.api.Register(mux)
	// The console: /ui/... (its own stricter headers and CSRF checks).
	mux.Handle("/ui/", s.web)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
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
	if err := s.db.Ping(r.Context()); err != nil {
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "store unavailable"})
		return
	}
	if err := s.auditLog.Failed(); err != nil {
		// Every enforcement path denies while the log refuses events.
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "audit log failed; restart writ", "error": err.Error()})
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// handleBundle serves the SPIFFE bundle endpoint document: a JWKS with
// use=x509-svid and use=jwt-svid keys, spiffe_sequence and
// spiffe_refresh_hint.
func (s *Server) handleBundle(w http.ResponseWriter, r *http.Request) {
	doc, err := s.authority.Bundle().Marshal()
	if err != nil {
		s.log.ErrorContext(r.Context(), "marshal bundle", "error", err)
		api.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(doc)
}
