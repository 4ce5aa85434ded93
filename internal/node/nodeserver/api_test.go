package nodeserver_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/node/nodeserver"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

var td = spiffeid.RequireTrustDomainFromString("writ.local")

// env is a server side of the node link over real components.
type env struct {
	db    *sqlite.DB
	ca    *ca.Authority
	reg   *registry.Registry
	rev   *revoke.List
	nodes *nodeserver.Registry
	hub   *nodeserver.Hub
	pub   *nodeserver.Publisher
	api   *nodeserver.API
	mux   *http.ServeMux
	rec   *audittest.Recorder
	// skew is added to the wall clock the node API sees (challenge
	// expiry).
	skew time.Duration
}

func (e *env) now() time.Time { return time.Now().Add(e.skew) }

func newEnv(t testing.TB, extra ...nodeattest.Verifier) *env {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{db: openStore(t), rec: &audittest.Recorder{}}
	kek := make([]byte, 32)
	rand.Read(kek)
	sealer, _ := keys.NewSealer(kek)
	var err error
	if e.ca, err = ca.New(ctx, ca.Config{TrustDomain: td, Keys: e.db, Resources: e.db, Sealer: sealer, Emitter: audit.Discard}); err != nil {
		t.Fatal(err)
	}
	if e.reg, err = registry.New(ctx, registry.Config{TrustDomain: td, Store: e.db, Emitter: audit.Discard}); err != nil {
		t.Fatal(err)
	}
	if e.rev, err = revoke.New(ctx, revoke.Config{Store: e.db, Emitter: audit.Discard}); err != nil {
		t.Fatal(err)
	}
	if e.hub, err = nodeserver.NewHub(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	if e.nodes, err = nodeserver.NewRegistry(ctx, nodeserver.RegistryConfig{TrustDomain: td, Store: e.db, Emitter: e.rec,
		Changed: func(ctx context.Context) { e.hub.Poke(ctx) }}); err != nil {
		t.Fatal(err)
	}
	e.pub = &nodeserver.Publisher{Store: e.db, Hub: e.hub, Entries: e.reg, Revocations: e.rev, Bundles: e.ca,
		Pins: func(ctx context.Context) ([]store.Pin, error) { return e.db.ListPins(ctx, "") }}
	if err := e.pub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go e.pub.Run(ctx)
	vs, err := nodeattest.NewVerifiers(append([]nodeattest.Verifier{nodeattest.JoinTokens{Store: e.db}}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	if e.api, err = nodeserver.NewAPI(nodeserver.Config{TrustDomain: td, Registry: e.nodes, Verifiers: vs, Authority: e.ca,
		Publisher: e.pub, Store: e.db, Emitter: e.rec, Audit: e.rec, Heartbeat: time.Hour, Now: e.now}); err != nil {
		t.Fatal(err)
	}
	e.mux = http.NewServeMux()
	e.api.Register(e.mux)
	return e
}

// do calls the node API as a TLS peer presenting chain (nil: none).
func (e *env) do(ctx context.Context, method, path string, body any, chain []*x509.Certificate) *httptest.ResponseRecorder {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	r := httptest.NewRequestWithContext(ctx, method, path, rd)
	r.TLS = &tls.ConnectionState{PeerCertificates: chain}
	w := httptest.NewRecorder()
	e.mux.ServeHTTP(w, r)
	return w
}

func pubKey(t testing.TB) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return der
}

// join joins a node with a fresh join token and returns its node SVID.
func (e *env) join(t testing.TB, name string) []*x509.Certificate {
	ctx := context.Background()
	secret, _, err := e.nodes.CreateJoinToken(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	var ch nodeapi.Challenge
	w := e.do(ctx, "POST", nodeapi.PathChallenge, struct{}{}, nil)
	json.Unmarshal(w.Body.Bytes(), &ch)
	payload, _ := nodeattest.JoinTokenProver{Token: secret}.Prove(ctx, nodeattest.Challenge{})
	req := nodeapi.AttestRequest{Nonce: ch.Nonce, PublicKey: pubKey(t), Attestor: "join_token", Payload: payload, Name: name}
	w = e.do(ctx, "POST", nodeapi.PathAttest, req, nil)
	if w.Code != 200 {
		t.Fatalf("attest: %d %s", w.Code, w.Body)
	}
	var ans nodeapi.SVIDAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Name != name || len(ans.Bundle) == 0 {
		t.Fatalf("attest answer: name %q, bundle %d bytes", ans.Name, len(ans.Bundle))
	}
	chain := parseChain(t, ans.Chain)
	// The same nonce is good once.
	if w := e.do(ctx, "POST", nodeapi.PathAttest, req, nil); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "nonce") {
		t.Errorf("replayed attestation: %d %s", w.Code, w.Body)
	}
	return chain
}

func parseChain(t testing.TB, ders [][]byte) []*x509.Certificate {
	var chain []*x509.Certificate
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	return chain
}

// stream reads the stream of a node after seq until stop returns true for
// the messages read so far (or the handler ends).
func (e *env) stream(t *testing.T, chain []*x509.Certificate, after int64, stop func([]nodeapi.Message) bool) ([]nodeapi.Message, int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	r := httptest.NewRequestWithContext(ctx, "GET", nodeapi.PathStream+"?after="+itoa(after), nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: chain}
	w := &pipeWriter{h: http.Header{}, w: pw}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.mux.ServeHTTP(w, r); pw.Close() }()
	var got []nodeapi.Message
	rd := nodeapi.NewReader(pr)
	for !stop(got) {
		m, err := rd.Next()
		if err != nil {
			break
		}
		got = append(got, m)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	wg.Wait()
	return got, w.code
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

type pipeWriter struct {
	h    http.Header
	w    io.Writer
	code int
}

func (p *pipeWriter) Header() http.Header { return p.h }
func (p *pipeWriter) Write(b []byte) (int, error) {
	if p.code == 0 {
		p.code = 200
	}
	return p.w.Write(b)
}
func (p *pipeWriter) WriteHeader(c int) { p.code = c }
func (p *pipeWriter) Flush()            {}

func TestStream(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.reg.Create(ctx, "test", store.Entry{Name: "a", SpiffeID: "spiffe://writ.local/agent/a",
		Selectors: []store.Selector{{Type: "unix", Value: "uid:1"}}}); err != nil {
		t.Fatal(err)
	}
	chain := e.join(t, "n1")

	// A new node starts from a snapshot holding the entry.
	msgs, _ := e.stream(t, chain, 0, func(m []nodeapi.Message) bool { return len(m) >= 1 })
	if len(msgs) != 1 || msgs[0].Type != nodeapi.MsgSnapshot || len(msgs[0].Snapshot.Entries) != 1 || len(msgs[0].Snapshot.Bundle) == 0 {
		t.Fatalf("first message = %+v", msgs)
	}
	seq := msgs[0].Seq

	// Resuming from it, the node gets the revocation made since.
	if _, _, err := e.rev.Revoke(ctx, store.Revocation{Kind: store.RevokeSpiffeID, Value: "spiffe://writ.local/agent/a", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	msgs, _ = e.stream(t, chain, seq, func(m []nodeapi.Message) bool {
		return len(m) > 0 && m[len(m)-1].Type == nodeapi.MsgChange && m[len(m)-1].Change.Kind == nodeapi.KindRevocation
	})
	last := msgs[len(msgs)-1]
	if last.Change.Op != store.ChangePut || last.Change.Key != "spiffe_id/spiffe://writ.local/agent/a" || last.Seq <= seq {
		t.Fatalf("revocation change = %+v", last)
	}
	for _, m := range msgs {
		if m.Type == nodeapi.MsgSnapshot {
			t.Errorf("a node resuming within the window got a snapshot")
		}
	}

	// Signing: a registered, unrevoked identity only.
	if w := e.do(ctx, "POST", nodeapi.PathX509SVID, nodeapi.X509SVIDRequest{SpiffeID: "spiffe://writ.local/agent/a", PublicKey: pubKey(t)}, chain); w.Code != http.StatusForbidden {
		t.Errorf("SVID for a revoked identity: %d %s", w.Code, w.Body)
	}
	if w := e.do(ctx, "POST", nodeapi.PathX509SVID, nodeapi.X509SVIDRequest{SpiffeID: "spiffe://writ.local/agent/other", PublicKey: pubKey(t)}, chain); w.Code != http.StatusForbidden {
		t.Errorf("SVID for an unregistered identity: %d %s", w.Code, w.Body)
	}
	if _, err := e.rev.Lift(ctx, store.RevokeSpiffeID, "spiffe://writ.local/agent/a", "test", ""); err != nil {
		t.Fatal(err)
	}
	if w := e.do(ctx, "POST", nodeapi.PathX509SVID, nodeapi.X509SVIDRequest{SpiffeID: "spiffe://writ.local/agent/a", PublicKey: pubKey(t)}, chain); w.Code != 200 {
		t.Errorf("SVID for a registered identity: %d %s", w.Code, w.Body)
	}
	// Without a node SVID, or with a workload's SVID: refused.
	if w := e.do(ctx, "POST", nodeapi.PathAck, nodeapi.AckRequest{Seq: 1}, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("ack without a certificate: %d", w.Code)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wl, _ := e.ca.SignX509SVID(ctx, ca.X509SVIDParams{ID: spiffeid.RequireFromString("spiffe://writ.local/agent/a"), PublicKey: &k.PublicKey})
	if w := e.do(ctx, "POST", nodeapi.PathAck, nodeapi.AckRequest{Seq: 1}, wl); w.Code != http.StatusForbidden {
		t.Errorf("ack with a workload SVID: %d", w.Code)
	}
	if w := e.do(ctx, "POST", nodeapi.PathAck, nodeapi.AckRequest{Seq: last.Seq}, chain); w.Code != http.StatusNoContent || e.api.Acked(chain[0].Subject.SerialNumber) != last.Seq {
		t.Errorf("ack: %d, acked %d", w.Code, e.api.Acked(chain[0].Subject.SerialNumber))
	}

	// Eviction ends the stream and refuses the node from then on.
	done := make(chan struct{})
	go func() {
		e.stream(t, chain, last.Seq, func([]nodeapi.Message) bool { return false })
		close(done)
	}()
	if _, err := e.nodes.Evict(ctx, "n1", "test", ""); err != nil {
		t.Fatal(err)
	}
	<-done
	if w := e.do(ctx, "POST", nodeapi.PathRenew, nodeapi.RenewRequest{PublicKey: pubKey(t)}, chain); w.Code != http.StatusForbidden {
		t.Errorf("renew after eviction: %d", w.Code)
	}
}

// TestResync: a server restart (its resync marker) sends a node that
// resumes from before it a snapshot.
func TestResync(t *testing.T) {
	e := newEnv(t)
	chain := e.join(t, "n1")
	seq := e.hub.Last()
	if err := e.pub.Start(context.Background()); err != nil { // as a restarted server does
		t.Fatal(err)
	}
	msgs, _ := e.stream(t, chain, seq-1, func(m []nodeapi.Message) bool { return len(m) >= 1 })
	if len(msgs) != 1 || msgs[0].Type != nodeapi.MsgSnapshot {
		t.Fatalf("after a restart marker: %+v", msgs)
	}
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	chain := e.join(t, "n1")
	before := len(e.rec.Events())
	es := []audit.Event{{ID: "evt_1", Type: audit.SVIDIssued, Node: "someone-else"}, {ID: "evt_2", Type: audit.SVIDIssued}}
	if w := e.do(ctx, "POST", nodeapi.PathAudit, es, chain); w.Code != http.StatusNoContent {
		t.Fatalf("audit: %d %s", w.Code, w.Body)
	}
	got := e.rec.Events()[before:]
	if len(got) != 2 || got[0].Node != "n1" {
		t.Errorf("recorded %+v; want two events attributed to n1", got)
	}
	for name, body := range map[string]string{
		"no id":        `[{"type":"svid.issued"}]`,
		"no type":      `[{"id":"evt_3"}]`,
		"trailing":     `[] []`,
		"not an array": `{}`,
	} {
		if w := e.do(ctx, "POST", nodeapi.PathAudit, json.RawMessage(body), chain); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d", name, w.Code)
		}
	}
}

func TestDedup(t *testing.T) {
	ctx := context.Background()
	rec := &audittest.Recorder{}
	d := &nodeserver.Dedup{Log: rec, Has: func(_ context.Context, id string) (bool, error) {
		for _, e := range rec.Events() {
			if e.ID == id {
				return true, nil
			}
		}
		return false, nil
	}}
	batch := []audit.Event{{ID: "evt_1", Type: "x"}, {ID: "evt_2", Type: "x"}, {ID: "evt_1", Type: "x"}}
	for range 3 { // resent twice: its acknowledgement was lost
		if err := d.EmitBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(rec.Events()); n != 2 {
		t.Errorf("%d events recorded, want 2", n)
	}
}

// FuzzAttest: whatever a joining node sends, the server answers without
// panicking and issues no SVID.
func FuzzAttest(f *testing.F) {
	e := newEnv(f)
	ctx := context.Background()
	f.Add([]byte(`{"nonce":"AAAA","public_key":"AAAA","attestor":"join_token","payload":"e30="}`))
	f.Add([]byte(`{"attestor":"x509pop","name":"../x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequestWithContext(ctx, "POST", nodeapi.PathAttest, bytes.NewReader(body))
		r.TLS = &tls.ConnectionState{}
		w := httptest.NewRecorder()
		e.mux.ServeHTTP(w, r)
		if w.Code == 200 {
			t.Fatalf("fuzzed attestation %q was accepted", body)
		}
	})
}
