// Package scaleout benchmarks the server side of scale-out (#17) with many
// lightweight node clients in one process: each joins with its own join
// token, holds its own HTTP/2 TLS connection with its node SVID and reads
// its change stream, as a `writ serve --role node` does. See
// bench/README.md, "Scale-out (#17)".
package scaleout

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/node/nodeserver"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/postgres"
	"github.com/writ-dev/writ/internal/store/postgres/pgtest"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

var td = spiffeid.RequireTrustDomainFromString("writ.local")

// nodeStore is what a server needs of its store here (SQLite or
// PostgreSQL).
type nodeStore interface {
	store.Store
	store.NodeStore
}

// counting counts the node-facing store calls (the queries a node link
// costs the store).
type counting struct {
	nodeStore
	n atomic.Int64
}

func (c *counting) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	c.n.Add(1)
	return c.nodeStore.ChangesSince(ctx, after, limit)
}
func (c *counting) OldestChange(ctx context.Context) (int64, error) {
	c.n.Add(1)
	return c.nodeStore.OldestChange(ctx)
}
func (c *counting) TouchNode(ctx context.Context, id string, at time.Time, seq int64) error {
	c.n.Add(1)
	return c.nodeStore.TouchNode(ctx, id, at, seq)
}
func (c *counting) AppendChange(ctx context.Context, ch store.Change) (int64, error) {
	c.n.Add(1)
	return c.nodeStore.AppendChange(ctx, ch)
}

type server struct {
	db    *counting
	hub   *nodeserver.Hub
	ca    *ca.Authority
	reg   *registry.Registry
	rev   *revoke.List
	nodes *nodeserver.Registry
	srv   *httptest.Server
}

func newServer(b testing.TB, entries int) *server {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	// The entries in one transaction (setup, not measured).
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixNano()
	for i := range entries {
		if _, err := tx.ExecContext(ctx, `INSERT INTO identities (name, spiffe_id, selectors, x509_ttl, jwt_ttl, labels, revision, created_at, updated_at)
			VALUES (?, ?, ?, 0, 0, '{}', 1, ?, ?)`, fmt.Sprintf("w%d", i), fmt.Sprintf("spiffe://writ.local/agent/w%d", i),
			fmt.Sprintf(`[{"type":"unix","value":"uid:%d"}]`, 10000+i), now, now); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	kek := make([]byte, 32)
	rand.Read(kek)
	sealer, _ := keys.NewSealer(kek)
	return startServer(b, db, sealer)
}

// startServer runs the server side of the node link over db: CA,
// registry, kill switch, hub, publisher and node API on an HTTPS test
// server. Servers over one PostgreSQL database share the CA (same
// sealer).
func startServer(b testing.TB, db nodeStore, sealer *keys.Sealer) *server {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	s := &server{db: &counting{nodeStore: db}}
	var err error
	if s.ca, err = ca.New(ctx, ca.Config{TrustDomain: td, Keys: db, Resources: db, Sealer: sealer, Emitter: audit.Discard}); err != nil {
		b.Fatal(err)
	}
	if s.reg, err = registry.New(ctx, registry.Config{TrustDomain: td, Store: db, Emitter: audit.Discard}); err != nil {
		b.Fatal(err)
	}
	if s.rev, err = revoke.New(ctx, revoke.Config{Store: db, Emitter: audit.Discard}); err != nil {
		b.Fatal(err)
	}
	hub, err := nodeserver.NewHub(ctx, s.db)
	if err != nil {
		b.Fatal(err)
	}
	s.hub = hub
	if s.nodes, err = nodeserver.NewRegistry(ctx, nodeserver.RegistryConfig{TrustDomain: td, Store: s.db, Emitter: audit.Discard,
		Changed: func(ctx context.Context) { hub.Poke(ctx) }}); err != nil {
		b.Fatal(err)
	}
	pub := &nodeserver.Publisher{Store: s.db, Hub: hub, Entries: s.reg, Revocations: s.rev, Bundles: s.ca}
	if err := pub.Start(ctx); err != nil {
		b.Fatal(err)
	}
	go pub.Run(ctx)
	vs, _ := nodeattest.NewVerifiers(nodeattest.JoinTokens{Store: db})
	api, err := nodeserver.NewAPI(nodeserver.Config{TrustDomain: td, Registry: s.nodes, Verifiers: vs, Authority: s.ca,
		Publisher: pub, Store: s.db, Heartbeat: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, err := s.ca.SignX509SVID(ctx, ca.X509SVIDParams{ID: spiffeid.RequireFromPath(td, "/writ/server"), PublicKey: &key.PublicKey})
	if err != nil {
		b.Fatal(err)
	}
	cert := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.EnableHTTP2 = true
	s.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			_, _, err := x509svid.ParseAndVerify(raw, s.ca.X509Bundle())
			return err
		},
	}
	s.srv.StartTLS()
	b.Cleanup(func() { api.End(); s.srv.Close() })
	return s
}

// nodeClient is a lightweight node: its own connection and node SVID.
type nodeClient struct {
	name string
	hc   *http.Client
	base string
}

func (s *server) join(b testing.TB, name string) *nodeClient {
	n, err := s.tryJoin(name)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// tryJoin joins a node (safe outside the benchmark's goroutine).
func (s *server) tryJoin(name string) (*nodeClient, error) {
	ctx := context.Background()
	secret, _, err := s.nodes.CreateJoinToken(ctx, time.Hour, "", "bench")
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	for _, c := range s.ca.X509Bundle().X509Authorities() {
		roots.AddCert(c)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	n := &nodeClient{name: name, base: s.srv.URL}
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots, InsecureSkipVerify: true}}
	n.hc = &http.Client{Transport: tr}
	var ch nodeapi.Challenge
	if err := n.tryPost(nodeapi.PathChallenge, struct{}{}, &ch); err != nil {
		return nil, err
	}
	payload, _ := nodeattest.JoinTokenProver{Token: secret}.Prove(ctx, nodeattest.Challenge{})
	var ans nodeapi.SVIDAnswer
	if err := n.tryPost(nodeapi.PathAttest, nodeapi.AttestRequest{Nonce: ch.Nonce, PublicKey: pub, Attestor: "join_token", Payload: payload, Name: name}, &ans); err != nil {
		return nil, err
	}
	cert := tls.Certificate{PrivateKey: key, Certificate: ans.Chain}
	tr2 := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}
	n.hc = &http.Client{Transport: tr2}
	tr.CloseIdleConnections()
	return n, nil
}

func (n *nodeClient) post(b testing.TB, path string, in, out any) {
	if err := n.tryPost(path, in, out); err != nil {
		b.Fatal(err)
	}
}

func (n *nodeClient) tryPost(path string, in, out any) error {
	body, _ := json.Marshal(in)
	resp, err := n.hc.Post(n.base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s %s", path, resp.Status, msg)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// follow reads the node's stream and reports every change key with the
// time it arrived. It is a cheap reader so that thousands of clients fit
// in one process: a snapshot line (megabytes at 20,000 entries) is
// recognised by its first bytes and skipped in 64 KiB pieces, never held
// or decoded; only change lines (small) are decoded.
func (n *nodeClient) follow(ctx context.Context, got func(key string, at time.Time)) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", n.base+nodeapi.PathStream, nil)
	resp, err := n.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rd := bufio.NewReaderSize(resp.Body, 64<<10)
	snapshot := []byte(`{"type":"` + nodeapi.MsgSnapshot + `"`)
	for {
		line, err := rd.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !bytes.HasPrefix(line, snapshot) {
				return fmt.Errorf("a stream line over 64 KiB that is not a snapshot")
			}
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = rd.ReadSlice('\n')
			}
			if err != nil {
				return err
			}
			got("snapshot", time.Now())
			continue
		}
		if err != nil {
			return err
		}
		if bytes.HasPrefix(line, snapshot) {
			got("snapshot", time.Now())
			continue
		}
		m, err := nodeapi.DecodeMessage(line)
		if err != nil {
			return err
		}
		if m.Type == nodeapi.MsgChange {
			got(m.Change.Key, time.Now())
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkFanout: the time for one revocation made on the server to
// reach every node's stream (per change: the slowest node), and the
// node-facing store calls per second while nothing changes (steady
// state: heartbeats only). WRIT_BENCH_NODES (default 200) nodes,
// WRIT_BENCH_ENTRIES (default 2000, at least 100) entries.
func BenchmarkFanout(b *testing.B) {
	fanout(b, []*server{newServer(b, envInt("WRIT_BENCH_ENTRIES", 2000))}, envInt("WRIT_BENCH_NODES", 200))
}

// BenchmarkFanoutPostgres is BenchmarkFanout with two servers on one
// PostgreSQL database (nodes join them alternately; revocations are made
// on the first, and reach the second's nodes through LISTEN/NOTIFY).
// WRIT_BENCH_NODES (default 200), WRIT_BENCH_ENTRIES (default 2000).
func BenchmarkFanoutPostgres(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := pgtest.DSN(b)
	kek := make([]byte, 32)
	rand.Read(kek)
	sealer, _ := keys.NewSealer(kek)
	var servers []*server
	for i := range 2 {
		db, err := postgres.Open(ctx, dsn, postgres.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		if i == 0 {
			fillPostgres(b, db, envInt("WRIT_BENCH_ENTRIES", 2000))
		}
		s := startServer(b, db, sealer)
		go db.Listen(ctx, postgres.ChangesChannel, func(string) { s.hub.Poke(ctx) })
		servers = append(servers, s)
	}
	fanout(b, servers, envInt("WRIT_BENCH_NODES", 200))
}

// fillPostgres inserts entries with COPY (setup, not measured).
func fillPostgres(b testing.TB, db *postgres.DB, entries int) {
	now := time.Now().UnixNano()
	rows := make([][]any, entries)
	for i := range entries {
		rows[i] = []any{fmt.Sprintf("w%d", i), fmt.Sprintf("spiffe://writ.local/agent/w%d", i),
			fmt.Sprintf(`[{"type":"unix","value":"uid:%d"}]`, 10000+i), int64(0), int64(0), "{}", int64(1), now, now}
	}
	if _, err := db.Pool().CopyFrom(context.Background(), pgx.Identifier{"identities"},
		[]string{"name", "spiffe_id", "selectors", "x509_ttl", "jwt_ttl", "labels", "revision", "created_at", "updated_at"},
		pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
}

// fanout joins nodes to servers in turn, then revokes on the first.
func fanout(b *testing.B, servers []*server, nodes int) {
	s := servers[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	arrivals := map[string][]time.Time{}
	snapshots := 0
	var wg sync.WaitGroup
	joined := make([]*nodeClient, nodes)
	var jwg sync.WaitGroup
	errs := make(chan error, nodes)
	for w := range 16 {
		jwg.Add(1)
		go func() {
			defer jwg.Done()
			for i := w; i < nodes; i += 16 {
				n, err := servers[i%len(servers)].tryJoin(fmt.Sprintf("n%d", i))
				if err != nil {
					errs <- err
					return
				}
				joined[i] = n
			}
		}()
	}
	jwg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var reconnects atomic.Int64
	for _, n := range joined {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snapped := false
			// As a node does: a broken stream is opened again (a
			// loaded machine drops some connections at this size).
			for ctx.Err() == nil {
				err := n.follow(ctx, func(key string, at time.Time) {
					mu.Lock()
					if key == "snapshot" {
						if !snapped {
							snapshots++
						}
						snapped = true
					} else {
						arrivals[key] = append(arrivals[key], at)
					}
					mu.Unlock()
				})
				if ctx.Err() == nil {
					reconnects.Add(1)
					b.Logf("node %s: stream: %v; reconnecting", n.name, err)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	waitFor := func(cond func() bool) {
		for !cond() {
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return snapshots == nodes })

	// Steady state: nothing changes for two heartbeats.
	queries := func() (n int64) {
		for _, s := range servers {
			n += s.db.n.Load()
		}
		return n
	}
	before := queries()
	idle := 10 * time.Second
	time.Sleep(idle)
	steady := float64(queries()-before) / idle.Seconds()

	var worst, all []time.Duration
	b.ResetTimer()
	for i := range b.N {
		key := nodeapi.RevocationKey(store.RevokeSpiffeID, fmt.Sprintf("spiffe://writ.local/agent/w%d", i%100))
		mu.Lock()
		delete(arrivals, key)
		mu.Unlock()
		start := time.Now()
		if _, _, err := s.rev.Revoke(ctx, store.Revocation{Kind: store.RevokeSpiffeID, Value: fmt.Sprintf("spiffe://writ.local/agent/w%d", i%100)}); err != nil {
			b.Fatal(err)
		}
		waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return len(arrivals[key]) == nodes })
		mu.Lock()
		var last time.Duration
		for _, at := range arrivals[key] {
			d := at.Sub(start)
			all = append(all, d)
			last = max(last, d)
		}
		mu.Unlock()
		worst = append(worst, last)
		s.rev.Lift(ctx, store.RevokeSpiffeID, fmt.Sprintf("spiffe://writ.local/agent/w%d", i%100), "bench", "")
	}
	b.StopTimer()
	slices.Sort(worst)
	slices.Sort(all)
	q := func(ds []time.Duration, p float64) float64 {
		return float64(ds[min(len(ds)-1, int(float64(len(ds))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(q(worst, 0.5), "ms-all-nodes-p50")
	b.ReportMetric(q(worst, 0.99), "ms-all-nodes-p99")
	b.ReportMetric(q(all, 0.99), "ms-per-node-p99")
	b.ReportMetric(steady, "store-queries/s-steady")
	b.ReportMetric(float64(nodes), "nodes")
	b.ReportMetric(float64(len(servers)), "servers")
	b.ReportMetric(float64(reconnects.Load()), "reconnects")
	cancel()
	for _, s := range servers {
		s.srv.CloseClientConnections()
	}
	wg.Wait()
}

// BenchmarkNodeSVID: X.509-SVIDs signed by the server for workloads of a
// node (the node's signing request over its mTLS connection, with the
// workload's key made on the node), in parallel.
func BenchmarkNodeSVID(b *testing.B) {
	s := newServer(b, 100)
	n := s.join(b, "n0")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
			var ans nodeapi.SVIDAnswer
			n.post(b, nodeapi.PathX509SVID, nodeapi.X509SVIDRequest{SpiffeID: fmt.Sprintf("spiffe://writ.local/agent/w%d", i%100), PublicKey: pub}, &ans)
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "SVIDs/s")
}
