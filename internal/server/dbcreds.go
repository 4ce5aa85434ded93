package server

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/writ-dev/writ/internal/dbcreds"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/proxy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/tier"
)

// dbcredsPart is the issuer of dynamic PostgreSQL roles and, when
// proxy.postgres_listen is set, the PostgreSQL wire proxy.
type dbcredsPart struct {
	issuer *dbcreds.Issuer
	proxy  *dbcreds.Proxy
	ln     net.Listener
}

// initDBCreds builds the issuer (always: it reaps roles a previous run
// left, even when the wire proxy is now off) and the wire proxy.
func (s *Server) initDBCreds(sealer *keys.Sealer, closers *[]func()) error {
	d := &s.dbc
	var err error
	d.issuer, err = dbcreds.New(dbcreds.Config{Store: s.db, Sealer: sealer, Credentials: s.px.broker, Tasks: s.tok.tasks,
		Revocations: s.tok.revoke, Emitter: s.emit, Log: s.log.With("component", "dbcreds"), Now: s.now})
	if err != nil {
		return err
	}
	*closers = append(*closers, d.issuer.Close)
	addr := s.cfg.Proxy.PostgresListen
	if addr == "" || addr == "off" {
		return nil
	}
	d.proxy, err = dbcreds.NewProxy(dbcreds.ProxyConfig{Enforcer: s.px.enforcer, Issuer: d.issuer, Log: s.log.With("component", "postgres-proxy")})
	if err != nil {
		return err
	}
	if d.ln, err = net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("listen on %s: %w (choose another address with proxy.postgres_listen, or \"off\")", addr, err)
	}
	*closers = append(*closers, func() { d.ln.Close() })
	return nil
}

// setDBServices hands the wire proxy the Services of kind postgres.
func (s *Server) setDBServices(svcs []*proxy.Service) {
	if s.dbc.proxy == nil {
		return
	}
	m := map[string]*dbcreds.Service{}
	for _, svc := range svcs {
		if svc.Postgres != nil {
			m[svc.Name] = svc.Postgres
		}
	}
	s.dbc.proxy.SetServices(m)
}

// startDBCreds runs the sweeper (roles of ended tasks dropped as soon as
// the kill switch changes: every task close revokes the task) and the wire
// proxy; the returned function stops both.
func (s *Server) startDBCreds(ctx context.Context, errc chan<- error) func() {
	d := &s.dbc
	ch, stopWatch := s.tok.revoke.Watch()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.issuer.Run(ctx, ch, 0); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("database role sweeper", "error", err)
		}
	}()
	if d.proxy != nil {
		go func() {
			if err := d.proxy.Serve(d.ln); err != nil {
				select {
				case errc <- fmt.Errorf("PostgreSQL proxy: %w", err):
				default:
				}
			}
		}()
	}
	return func() {
		if d.proxy != nil {
			d.proxy.Close()
		}
		stopWatch()
		<-done
		d.issuer.Close()
	}
}

// closeDBCreds releases what a server that will not Run holds.
func (s *Server) closeDBCreds() {
	if s.dbc.ln != nil {
		s.dbc.ln.Close()
	}
	if s.dbc.issuer != nil {
		s.dbc.issuer.Close()
	}
}

// PostgresProxyAddr is the PostgreSQL wire proxy's address ("" when off).
func (s *Server) PostgresProxyAddr() string {
	if s.dbc.ln == nil {
		return ""
	}
	return s.dbc.ln.Addr().String()
}

// credentialFacts fills the tier report's facts about how Services get
// their upstream credentials and whether any database role outlives its
// task.
func (s *Server) credentialFacts(ctx context.Context, f *tier.Facts) error {
	rs, err := s.db.ListResources(ctx, resource.KindService)
	if err != nil {
		return err
	}
	for _, r := range rs {
		svc, err := proxy.CompileService(r)
		if err != nil {
			continue
		}
		switch {
		case svc.Postgres != nil || svc.Spec.Token != nil:
			f.DynamicServices++
		case svc.Spec.Credential != nil:
			f.StaticServices++
		}
	}
	roles, err := s.db.ListDBRoles(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	for _, r := range roles {
		f.DBRoles++
		t, err := s.tok.tasks.Get(ctx, r.Task)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err != nil || t.State != store.TaskOpen || !now.Before(t.ExpiresAt) {
			f.DBRolesOverdue++
		}
	}
	return nil
}
