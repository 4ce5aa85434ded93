package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/discover"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/secrets"
)

// discoverLoop runs the runtime sensor on the node's host, as writ serve
// does on the server's: it asks the server for what the sensor needs (the
// deployment's fingerprint key, the Services' upstreams, writ's
// listeners), scans every DiscoveryInterval, reports each scan's
// inventory to the server (PathInventory) and spools the discovery.*
// events like every other event of the node. Items and events carry the
// node's name as their host.
func (n *Node) discoverLoop(ctx context.Context) {
	if n.c.NoDiscovery {
		return
	}
	log := n.c.Log.With("component", "discover")
	s := &nodeSensor{n: n}
	dc, err := s.fetch(ctx)
	for backoff := time.Second; err != nil; backoff = min(2*backoff, time.Minute) {
		var se *serverError
		if errors.As(err, &se) && se.code == http.StatusNotImplemented {
			log.Warn("the server takes no node inventories; discovery is off on this node", "error", err)
			return
		}
		log.Warn("discovery: the server's configuration is unavailable; retrying", "error", err, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		dc, err = s.fetch(ctx)
	}
	det, err := secrets.New(secrets.Config{FingerprintKey: dc.FingerprintKey})
	if err != nil {
		log.Error("discovery is off on this node", "error", err)
		return
	}
	sc, err := discover.New(discover.Config{Detector: det, Host: n.name, Now: n.c.Now, Log: log,
		WritAddrs: s.writAddrs, Upstreams: s.upstreams, Matcher: n.reg})
	if err != nil {
		log.Error("discovery is off on this node", "error", err)
		return
	}
	w, err := discover.NewWatcher(discover.WatcherConfig{Scanner: sc, Emitter: nodeEmitter{n}, Interval: n.c.DiscoveryInterval, Log: log,
		Record: func(ctx context.Context, r *discover.Report) error {
			return n.client.call(ctx, http.MethodPost, nodeapi.PathInventory, nodeapi.InventoryReport{Items: discover.InventoryItems(r)}, nil)
		}})
	if err != nil {
		log.Error("discovery is off on this node", "error", err)
		return
	}
	w.Run(ctx)
}

// nodeSensor keeps the latest discovery configuration from the server.
type nodeSensor struct {
	n  *Node
	mu sync.Mutex
	dc nodeapi.DiscoveryConfig
}

func (s *nodeSensor) fetch(ctx context.Context) (nodeapi.DiscoveryConfig, error) {
	var dc nodeapi.DiscoveryConfig
	if err := s.n.client.call(ctx, http.MethodGet, nodeapi.PathDiscovery, nil, &dc); err != nil {
		return dc, err
	}
	s.mu.Lock()
	s.dc = dc
	s.mu.Unlock()
	return dc, nil
}

// upstreams refreshes the configuration before a scan (Services change);
// without the server it keeps the last one.
func (s *nodeSensor) upstreams(ctx context.Context) []discover.Upstream {
	if _, err := s.fetch(ctx); err != nil {
		s.n.c.Log.Debug("discovery: refresh the server's configuration; using the last one", "error", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []discover.Upstream
	for _, u := range s.dc.Upstreams {
		if a, err := netip.ParseAddrPort(u.Addr); err == nil {
			out = append(out, discover.Upstream{Service: u.Service, Addr: a})
		}
	}
	return out
}

// writAddrs are the server's listeners. One bound to every address
// (0.0.0.0:8181) is reached at the server's own addresses, so those are
// added for it: the node's host name of its server (node.server).
func (s *nodeSensor) writAddrs() []netip.AddrPort {
	s.mu.Lock()
	addrs := s.dc.WritAddrs
	s.mu.Unlock()
	var server []netip.Addr
	if u, err := url.Parse(s.n.c.Server); err == nil {
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			server = []netip.Addr{a.Unmap()}
		} else if ips, err := lookup(u.Hostname()); err == nil {
			for _, a := range ips {
				server = append(server, a.Unmap())
			}
		}
	}
	var out []netip.AddrPort
	for _, raw := range addrs {
		a, err := netip.ParseAddrPort(raw)
		if err != nil {
			continue
		}
		out = append(out, a)
		if a.Addr().IsUnspecified() {
			for _, ip := range server {
				out = append(out, netip.AddrPortFrom(ip, a.Port()))
			}
		}
	}
	return out
}

func lookup(host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
