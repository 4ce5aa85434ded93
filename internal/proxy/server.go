package proxy

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ServerConfig are the limits of a proxy listener. Zero fields take the
// documented defaults.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers (default 10s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (default
	// 5m); slow clients are cut off.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response (default 5m).
	WriteTimeout time.Duration
	// IdleTimeout bounds keep-alive idleness (default 2m).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds request headers (default 64 KiB).
	MaxHeaderBytes int
}

// NewServer returns the http.Server of a proxy listener: p as the
// handler, its ConnContext hook (for process attribution) and cfg's limits.
func (p *Proxy) NewServer(cfg ServerConfig) *http.Server {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.ReadHeaderTimeout, 10*time.Second)
	def(&cfg.ReadTimeout, 5*time.Minute)
	def(&cfg.WriteTimeout, 5*time.Minute)
	def(&cfg.IdleTimeout, 2*time.Minute)
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	return &http.Server{
		Handler:           p,
		ConnContext:       p.ConnContext,
		ConnState:         p.ConnState,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(p.c.Log.Handler(), slog.LevelDebug),
	}
}

// TLSConfig is the configuration of the proxy's TLS listener: a leaf from
// the proxy CA for the name the client asks for (or the listener's
// address), and a request (not a requirement) for a client certificate,
// which is verified as an X.509-SVID per request. listenHost names the
// certificate when the client sends no SNI.
func (p *Proxy) TLSConfig(listenHost string) (*tls.Config, error) {
	if p.c.CA == nil {
		return nil, errors.New("configure proxy TLS listener: no proxy CA")
	}
	if listenHost == "" || listenHost == "0.0.0.0" || listenHost == "::" {
		listenHost = "127.0.0.1"
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequestClientCert,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := h.ServerName
			if name == "" {
				name = listenHost
				if a, ok := h.Conn.LocalAddr().(*net.TCPAddr); ok && listenHost == "127.0.0.1" {
					name = a.IP.String()
				}
			}
			return p.c.CA.Leaf(name)
		},
	}, nil
}
