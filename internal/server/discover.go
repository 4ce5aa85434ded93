package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/alert"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/discover"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/proxy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/secrets"
	"github.com/writ-dev/writ/internal/store"
)

// discoverPart is the runtime sensor: a watcher that scans the host, and
// the inventory it records into.
type discoverPart struct {
	watcher *discover.Watcher
	// fpKey is the deployment's fingerprint key, which nodes' sensors
	// receive too.
	fpKey []byte
	// findings are the high posture findings already recorded.
	findings *seenFindings
}

// seenFindings remembers which high and critical posture findings have
// been recorded as posture.finding events (seeded at the first use from
// the posture_finding alerts the store holds, so a restart does not
// record them again).
type seenFindings struct {
	mu  sync.Mutex
	ids map[string]bool
}

// recordPostureFindings evaluates posture and records each high or
// critical finding not recorded before as a posture.finding event, from
// which the alert engine raises posture_finding. It runs after every
// discovery scan (continuous, a node's, or writ discover).
func (s *Server) recordPostureFindings(ctx context.Context) error {
	sf := s.disc.findings
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if sf.ids == nil {
		known, err := s.db.ListAlerts(ctx, store.AlertFilter{Rule: alert.RulePostureFinding})
		if err != nil {
			return err
		}
		sf.ids = map[string]bool{}
		for _, a := range known {
			sf.ids[a.Subject] = true
		}
	}
	fs, err := postureService{s}.Findings(ctx, 0)
	if err != nil {
		return err
	}
	var evs []audit.Event
	for _, f := range fs {
		if (f.Severity != alert.SeverityCritical && f.Severity != alert.SeverityHigh) || sf.ids[f.ID] {
			continue
		}
		evs = append(evs, audit.Event{Type: audit.PostureFinding, Target: f.ID, Action: string(audit.PostureFinding),
			Details: map[string]string{"check": f.Check, "severity": f.Severity, "title": f.Title, "fix": f.Fix,
				"reaches": strings.Join(f.Reaches, ","), "blast_radius": strconv.Itoa(f.BlastRadius())}})
	}
	if len(evs) == 0 {
		return nil
	}
	if err := audit.EmitBatch(ctx, s.emit, evs); err != nil {
		return err
	}
	for _, e := range evs {
		sf.ids[e.Target] = true
	}
	return nil
}

// fingerprintKey is the deployment's key for secret fingerprints
// (secrets.DeploymentKey of the KEK).
func fingerprintKey(kek []byte) []byte { return secrets.DeploymentKey(kek) }

// initDiscover builds the sensor. It scans nothing until Run.
func (s *Server) initDiscover(ctx context.Context, kek []byte) error {
	det, err := secrets.New(secrets.Config{FingerprintKey: fingerprintKey(kek)})
	if err != nil {
		return err
	}
	sc, err := discover.New(discover.Config{
		Detector:  det,
		Host:      s.cfg.NodeName,
		Now:       s.now,
		Log:       s.log.With("component", "discover"),
		WritAddrs: s.writAddrs,
		Upstreams: s.serviceUpstreams,
		Matcher:   s.registry,
	})
	if err != nil {
		return err
	}
	w, err := discover.NewWatcher(discover.WatcherConfig{
		Scanner:  sc,
		Emitter:  s.emit,
		Interval: s.cfg.Discovery.Interval,
		Log:      s.log.With("component", "discover"),
		Record: func(ctx context.Context, r *discover.Report) error {
			if err := s.db.RecordInventory(ctx, r.Time, discover.InventoryItems(r)); err != nil {
				return err
			}
			return s.recordPostureFindings(ctx)
		},
	})
	if err != nil {
		return err
	}
	// What the inventory already holds was reported before a restart.
	items, err := s.db.ListInventory(ctx, store.InventoryFilter{})
	if err != nil {
		return err
	}
	for _, it := range items {
		switch it.Kind {
		case store.InventoryAgent, store.InventoryMCPServer:
			w.Seen(it.Key)
		case store.InventoryCredential:
			w.Seen("credential/" + it.Key)
		}
	}
	s.disc = discoverPart{watcher: w, fpKey: fingerprintKey(kek), findings: &seenFindings{}}
	return nil
}

// startDiscovery runs the watcher until ctx ends, unless discovery is
// disabled; the returned function waits for it to stop.
func (s *Server) startDiscovery(ctx context.Context) func() {
	if s.cfg.Discovery.Disabled {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.disc.watcher.Run(ctx)
	}()
	return wg.Wait
}

// Scan runs one discovery scan now (writ discover), records it like a
// continuous one, and returns the report.
func (s *Server) Scan(ctx context.Context) (*discover.Report, error) {
	return s.disc.watcher.Step(ctx)
}

// writAddrs are writ's own listeners: a connection to one is through writ.
func (s *Server) writAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, ln := range []net.Listener{s.px.ln, s.px.tlsLn, s.httpLn} {
		if ln == nil {
			continue
		}
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			out = append(out, a.AddrPort())
		}
	}
	return out
}

// serviceUpstreams resolves the upstream address of every stored Service.
func (s *Server) serviceUpstreams(ctx context.Context) []discover.Upstream {
	rs, err := s.db.ListResources(ctx, resource.KindService)
	if err != nil {
		s.log.WarnContext(ctx, "discovery: load services", "error", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []discover.Upstream
	for _, r := range rs {
		svc, err := proxy.CompileService(r)
		if err != nil {
			continue
		}
		u := svc.Upstream
		port, _ := strconv.Atoi(u.Port())
		if port == 0 {
			port = 80
			if u.Scheme == "https" {
				port = 443
			}
		}
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
		if err != nil {
			s.log.DebugContext(ctx, "discovery: resolve service upstream", "service", r.Name, "error", err)
			continue
		}
		for _, a := range addrs {
			out = append(out, discover.Upstream{Service: r.Name, Addr: netip.AddrPortFrom(a.Unmap(), uint16(port))})
		}
	}
	return out
}

// nodeDiscovery serves the runtime sensors of nodes
// (nodeserver.Discovery): the same upstreams, listeners and fingerprint
// key as this server's sensor, and their inventories into this server's.
type nodeDiscovery struct{ s *Server }

func (d nodeDiscovery) DiscoveryConfig(ctx context.Context) (nodeapi.DiscoveryConfig, error) {
	if d.s.disc.fpKey == nil {
		return nodeapi.DiscoveryConfig{}, errors.New("the server's sensor is not initialised yet")
	}
	dc := nodeapi.DiscoveryConfig{FingerprintKey: d.s.disc.fpKey, Upstreams: []nodeapi.Upstream{}, WritAddrs: []string{}}
	for _, u := range d.s.serviceUpstreams(ctx) {
		dc.Upstreams = append(dc.Upstreams, nodeapi.Upstream{Service: u.Service, Addr: u.Addr.String()})
	}
	for _, a := range d.s.writAddrs() {
		dc.WritAddrs = append(dc.WritAddrs, a.String())
	}
	return dc, nil
}

func (d nodeDiscovery) RecordNodeInventory(ctx context.Context, node string, items []store.InventoryItem) error {
	if err := d.s.db.RecordInventory(ctx, d.s.now(), items); err != nil {
		return err
	}
	if err := d.s.recordPostureFindings(ctx); err != nil {
		// The inventory is stored; the findings are recorded after the
		// next scan.
		d.s.log.WarnContext(ctx, "posture findings after a node's scan", "node", node, "error", err)
	}
	return nil
}
