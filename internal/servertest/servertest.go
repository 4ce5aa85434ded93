// Package servertest runs a real writ server (SQLite store in a temporary
// directory, real listeners on loopback ports chosen by the kernel) for
// tests and benchmarks, and gives them an admin client and the Workload API
// address. It is the one way tests start a server; nothing in it is faked.
package servertest

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/server"
)

// Config returns a configuration with defaults in dir whose listeners all
// bind ephemeral loopback ports (HTTP, HTTPS, proxy), so that tests running
// in parallel never collide. Callers may change it before Start.
func Config(dir string) config.Config {
	cfg := config.Config{DataDir: dir}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Proxy.Listen = "127.0.0.1:0"
	// Tests scan with writ discover (POST /v1/discover) when they mean
	// to: a continuous scan of the shared host by every test server
	// would only cost CPU.
	cfg.Discovery.Disabled = true
	cfg.Defaults()
	return cfg
}

// Instance is a running server.
type Instance struct {
	Server *server.Server
	// Client is an admin API client with the generated admin credential.
	Client *client.Client
	// Addr is the admin API base URL, e.g. http://127.0.0.1:41234.
	Addr string
	// WorkloadAddr is the Workload API address for go-spiffe
	// (unix:///...).
	WorkloadAddr string

	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

// Start runs a server with cfg until the test ends (or Stop). log may be
// nil to discard the server's log.
func Start(tb testing.TB, cfg config.Config, log *slog.Logger) *Instance {
	tb.Helper()
	return StartWith(tb, cfg, server.Options{Log: log})
}

// StartWith runs a server with cfg and opts (e.g. a cheaper password
// hash for tests that log humans in) until the test ends.
func StartWith(tb testing.TB, cfg config.Config, opts server.Options) *Instance {
	tb.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, opts)
	if err != nil {
		cancel()
		tb.Fatalf("start writ: %v", err)
	}
	tok, err := os.ReadFile(srv.AdminTokenFile)
	if err != nil {
		cancel()
		srv.Close()
		tb.Fatalf("read admin credential: %v", err)
	}
	addr := "http://" + srv.HTTPAddr()
	c, err := client.New(addr, strings.TrimSpace(string(tok)))
	if err != nil {
		cancel()
		srv.Close()
		tb.Fatal(err)
	}
	in := &Instance{Server: srv, Client: c, Addr: addr, WorkloadAddr: "unix://" + srv.SocketPath(),
		cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- srv.Run(ctx) }()
	tb.Cleanup(in.Stop)
	return in
}

// Stop shuts the server down gracefully and waits for it. It is safe to
// call more than once.
func (in *Instance) Stop() {
	in.stopOnce.Do(func() {
		in.cancel()
		<-in.done
	})
}
