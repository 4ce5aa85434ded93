package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	workloadpb "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/server"
	"github.com/writ-dev/writ/internal/servertest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// instance is one running writ for a test.
type instance struct {
	srv    *server.Server
	client *client.Client
	addr   string // workload API address for go-spiffe
	stop   func()
}

func testConfig(dir string) config.Config { return servertest.Config(dir) }

func start(t *testing.T, cfg config.Config) *instance {
	t.Helper()
	return startWithLog(t, cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// startWithLog runs a server logging to log until the test ends.
func startWithLog(t *testing.T, cfg config.Config, log *slog.Logger) *instance {
	t.Helper()
	in := servertest.Start(t, cfg, log)
	return &instance{srv: in.Server, client: in.Client, addr: in.WorkloadAddr, stop: in.Stop}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func selfEntry(name, id string, extra ...string) apitypes.Entry {
	return apitypes.Entry{Name: name, SpiffeID: id, Selectors: append([]string{"unix:uid:" + strconv.Itoa(os.Getuid())}, extra...)}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestWorkloadAPIInterop(t *testing.T) {
	in := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := in.client.CreateEntry(ctx, selfEntry("me", "spiffe://writ.local/agent/me")); err != nil {
		t.Fatal(err)
	}

	// X.509-SVID through the official client, verified against the fetched bundle.
	x509ctx, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(in.addr))
	if err != nil {
		t.Fatalf("FetchX509Context: %v", err)
	}
	if len(x509ctx.SVIDs) != 1 || x509ctx.SVIDs[0].ID.String() != "spiffe://writ.local/agent/me" {
		t.Fatalf("SVIDs = %v", x509ctx.SVIDs)
	}
	svid := x509ctx.SVIDs[0]
	id, chains, err := x509svid.Verify(svid.Certificates, x509ctx.Bundles)
	if err != nil {
		t.Fatalf("x509svid.Verify: %v", err)
	}
	if id.String() != "spiffe://writ.local/agent/me" || len(chains) == 0 {
		t.Errorf("verified id %v with %d chains", id, len(chains))
	}
	if sn := svid.Certificates[0].Subject.SerialNumber; !strings.HasPrefix(sn, "inst_") {
		t.Errorf("subject serialNumber = %q, want the instance id inst_...", sn)
	}
	if life := svid.Certificates[0].NotAfter.Sub(svid.Certificates[0].NotBefore); life < 59*time.Minute || life > 62*time.Minute {
		t.Errorf("X.509-SVID lifetime %v, want the 1h default", life)
	}

	// Bundles stream.
	bundles, err := workloadapi.FetchX509Bundles(ctx, workloadapi.WithAddr(in.addr))
	if err != nil {
		t.Fatalf("FetchX509Bundles: %v", err)
	}
	b, err := bundles.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("writ.local"))
	if err != nil || len(b.X509Authorities()) == 0 {
		t.Fatalf("X.509 bundle: %v", err)
	}

	// JWT-SVID for an audience, validated with go-spiffe against the JWT bundle.
	jsvid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "billing"}, workloadapi.WithAddr(in.addr))
	if err != nil {
		t.Fatalf("FetchJWTSVID: %v", err)
	}
	jb, err := workloadapi.FetchJWTBundles(ctx, workloadapi.WithAddr(in.addr))
	if err != nil {
		t.Fatalf("FetchJWTBundles: %v", err)
	}
	parsed, err := jwtsvid.ParseAndValidate(jsvid.Marshal(), jb, []string{"billing"})
	if err != nil {
		t.Fatalf("jwtsvid.ParseAndValidate: %v", err)
	}
	if parsed.ID.String() != "spiffe://writ.local/agent/me" {
		t.Errorf("JWT-SVID sub = %v", parsed.ID)
	}
	if inst, _ := parsed.Claims["agent_instance"].(string); inst != svid.Certificates[0].Subject.SerialNumber {
		t.Errorf("JWT agent_instance %q != X.509 instance %q", inst, svid.Certificates[0].Subject.SerialNumber)
	}
	if _, err := jwtsvid.ParseAndValidate(jsvid.Marshal(), jb, []string{"other"}); err == nil {
		t.Error("JWT-SVID accepted for the wrong audience")
	}
	// The Workload API's own validation.
	validated, err := workloadapi.ValidateJWTSVID(ctx, jsvid.Marshal(), "billing", workloadapi.WithAddr(in.addr))
	if err != nil || validated.ID.String() != "spiffe://writ.local/agent/me" {
		t.Fatalf("ValidateJWTSVID = %v, %v", validated, err)
	}
	if _, err := workloadapi.ValidateJWTSVID(ctx, jsvid.Marshal(), "other", workloadapi.WithAddr(in.addr)); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ValidateJWTSVID wrong audience: %v, want InvalidArgument", err)
	}
	// Empty audience is refused.
	if _, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{}, workloadapi.WithAddr(in.addr)); status.Code(err) != codes.InvalidArgument {
		t.Errorf("FetchJWTSVID without audience: %v, want InvalidArgument", err)
	}
}

func TestWorkloadAPINoIdentity(t *testing.T) {
	in := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Nothing registered for this uid.
	if _, err := in.client.CreateEntry(ctx, apitypes.Entry{Name: "other-uid", SpiffeID: "spiffe://writ.local/other",
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid()+4242)}}); err != nil {
		t.Fatal(err)
	}
	// Registered for this uid, but for another executable digest.
	if _, err := in.client.CreateEntry(ctx, selfEntry("wrong-digest", "spiffe://writ.local/wrong",
		"unix:sha256:"+strings.Repeat("ab", 32))); err != nil {
		t.Fatal(err)
	}
	_, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(in.addr))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "no identity issued") {
		t.Fatalf("FetchX509SVID for an unregistered process: %v, want PermissionDenied no identity issued", err)
	}
	_, err = workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "x"}, workloadapi.WithAddr(in.addr))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("FetchJWTSVID for an unregistered process: %v, want PermissionDenied", err)
	}

	// The right digest of this very executable does match.
	exe, _ := os.Executable()
	sum := sha256File(t, exe)
	if _, err := in.client.CreateEntry(ctx, selfEntry("right-digest", "spiffe://writ.local/right", "unix:sha256:"+sum)); err != nil {
		t.Fatal(err)
	}
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(in.addr))
	if err != nil || svid.ID.String() != "spiffe://writ.local/right" {
		t.Fatalf("FetchX509SVID with the right digest: %v %v", svid, err)
	}
}

func TestWorkloadAPISecurityHeader(t *testing.T) {
	in := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(in.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := workloadpb.NewSpiffeWorkloadAPIClient(conn)
	_, err = c.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"a"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "security header") {
		t.Errorf("unary call without header: %v, want InvalidArgument", err)
	}
	stream, err := c.FetchX509SVID(ctx, &workloadpb.X509SVIDRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("stream without header: %v, want InvalidArgument", err)
	}
}

// recorder is a go-spiffe X509Context watcher that keeps every update.
type recorder struct {
	mu      sync.Mutex
	updates []*workloadapi.X509Context
	errs    []error
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 100)} }

func (r *recorder) OnX509ContextUpdate(c *workloadapi.X509Context) {
	r.mu.Lock()
	r.updates = append(r.updates, c)
	r.mu.Unlock()
	r.changed <- struct{}{}
}

func (r *recorder) OnX509ContextWatchError(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	r.changed <- struct{}{}
}

// waitFor waits until cond holds for the updates so far.
func (r *recorder) waitFor(t *testing.T, what string, d time.Duration, cond func([]*workloadapi.X509Context) bool) []*workloadapi.X509Context {
	t.Helper()
	deadline := time.After(d)
	for {
		r.mu.Lock()
		u := append([]*workloadapi.X509Context(nil), r.updates...)
		r.mu.Unlock()
		if cond(u) {
			return u
		}
		select {
		case <-r.changed:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("timed out waiting for %s; %d updates, errors %v", what, len(r.updates), r.errs)
		}
	}
}

func watch(t *testing.T, addr string) *recorder {
	ctx, cancel := context.WithCancel(context.Background())
	rec := newRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := workloadapi.WatchX509Context(ctx, rec, workloadapi.WithAddr(addr))
		if err != nil && !errors.Is(err, context.Canceled) && status.Code(err) != codes.Canceled {
			t.Logf("WatchX509Context: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return rec
}

func TestWorkloadAPIRotationAndWithdrawal(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.CA.X509SVIDTTL = 4 * time.Second
	in := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, e := range []apitypes.Entry{selfEntry("a", "spiffe://writ.local/a"), selfEntry("b", "spiffe://writ.local/b")} {
		if _, err := in.client.CreateEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	rec := watch(t, in.addr)
	first := rec.waitFor(t, "first update", 10*time.Second, func(u []*workloadapi.X509Context) bool { return len(u) >= 1 })[0]
	if len(first.SVIDs) != 2 {
		t.Fatalf("first update has %d SVIDs, want 2", len(first.SVIDs))
	}
	old := first.SVIDs[0].Certificates[0]

	// Rotation: a new SVID arrives before the old one expires.
	rotated := rec.waitFor(t, "a rotated SVID", 8*time.Second, func(u []*workloadapi.X509Context) bool {
		for _, c := range u[1:] {
			if c.SVIDs[0].Certificates[0].SerialNumber.Cmp(old.SerialNumber) != 0 {
				return true
			}
		}
		return false
	})
	if arrived := time.Now(); !arrived.Before(old.NotAfter) {
		t.Errorf("rotated SVID arrived at %v, after the old one expired at %v", arrived, old.NotAfter)
	}
	last := rotated[len(rotated)-1]
	if _, _, err := x509svid.Verify(last.SVIDs[0].Certificates, last.Bundles); err != nil {
		t.Errorf("rotated SVID does not verify: %v", err)
	}

	// Withdrawal: deleting entry b removes its SVID from the next message.
	n := len(rotated)
	if _, err := in.client.DeleteEntry(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	after := rec.waitFor(t, "b withdrawn", 5*time.Second, func(u []*workloadapi.X509Context) bool {
		return len(u) > n && len(u[len(u)-1].SVIDs) == 1
	})
	if got := after[len(after)-1].SVIDs[0].ID.String(); got != "spiffe://writ.local/a" {
		t.Errorf("remaining SVID is %s, want spiffe://writ.local/a", got)
	}
}

func TestRestartKeepsTrustAndEntries(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	in := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := in.client.CreateEntry(ctx, selfEntry("me", "spiffe://writ.local/me")); err != nil {
		t.Fatal(err)
	}
	before, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(in.addr))
	if err != nil {
		t.Fatal(err)
	}
	in.stop()

	in2 := start(t, cfg)
	list, err := in2.client.ListEntries(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "me" {
		t.Fatalf("entries after restart: %v, %v", list, err)
	}
	after, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(in2.addr))
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString("writ.local")
	b1, _ := before.Bundles.GetX509BundleForTrustDomain(td)
	b2, _ := after.Bundles.GetX509BundleForTrustDomain(td)
	if !sameAuthorities(b1, b2) {
		t.Error("trust bundle changed across a restart")
	}
	// An SVID issued before the restart still verifies against the bundle after it.
	if _, _, err := x509svid.Verify(before.SVIDs[0].Certificates, after.Bundles); err != nil {
		t.Errorf("pre-restart SVID does not verify after restart: %v", err)
	}
	// Same process, same instance id.
	if a, b := before.SVIDs[0].Certificates[0].Subject.SerialNumber, after.SVIDs[0].Certificates[0].Subject.SerialNumber; a != b {
		t.Errorf("instance id changed across restart for the same process: %s -> %s", a, b)
	}
}

func sameAuthorities(a, b *x509bundle.Bundle) bool {
	if a == nil || b == nil {
		return false
	}
	x, y := a.X509Authorities(), b.X509Authorities()
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if !x[i].Equal(y[i]) {
			return false
		}
	}
	return true
}
