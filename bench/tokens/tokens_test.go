// Package tokens benchmarks writ's token service: RFC 8693 exchanges end to
// end over HTTP against a real `writ serve` composition (SQLite store,
// durable audit log, policy engine, ES256 signing), in-process access token
// verification, and revocation-to-enforcement latency.
//
//	go test -run '^$' -bench . -benchtime 5s ./bench/tokens/
//
// Results and how to read them: bench/README.md ("Tokens").
package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/server"
	"github.com/writ-dev/writ/internal/servertest"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/token"
)

const policy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata:
  name: bench
spec:
  subjects: [spiffe://writ.local/bench]
  rules:
    - name: tasks
      effect: allow
      targets: [{task: {}}]
    - name: tokens
      effect: allow
      targets: [{token: {audiences: [mail-api], scopes: [mail.read, mail.draft]}}]
      max_ttl: 5m
`

type env struct {
	issuer string
	srv    *server.Server
	base   string
	svid   string
	task   string
	admin  *client.Client
	socket string
}

func setup(b *testing.B) *env {
	b.Helper()
	cfg := servertest.Config(b.TempDir())
	cfg.Server.TLSListen = "off"
	cfg.Proxy.Listen = "off"
	in := servertest.Start(b, cfg, nil)
	ctx := context.Background()
	e := &env{issuer: in.Server.PublicURL(), srv: in.Server, base: in.Addr, socket: in.WorkloadAddr, admin: in.Client}
	if _, err := e.admin.CreateEntry(ctx, apitypes.Entry{Name: "bench", SpiffeID: "spiffe://writ.local/bench",
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}}); err != nil {
		b.Fatal(err)
	}
	if _, err := e.admin.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "p.yaml", Content: policy}}}); err != nil {
		b.Fatal(err)
	}
	// The issuer is server.public_url (the bound address); JWT-SVIDs
	// carry it as their audience.
	s, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: e.issuer}, workloadapi.WithAddr(e.socket))
	if err != nil {
		b.Fatal(err)
	}
	e.svid = s.Marshal()
	agent, _ := client.New(e.base, e.svid)
	t, err := agent.OpenTask(ctx, apitypes.OpenTaskRequest{Purpose: "bench", Audiences: []string{"mail-api"},
		Scopes: []string{"mail.read", "mail.draft"}, MaxDuration: "1h"})
	if err != nil {
		b.Fatal(err)
	}
	e.task = t.ID
	return e
}

func (e *env) form(extra ...string) string {
	v := url.Values{"grant_type": {token.GrantExchange}, "subject_token": {e.svid}, "subject_token_type": {token.TypeJWT},
		"audience": {"mail-api"}, "task": {e.task}, "scope": {"mail.read"}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v.Encode()
}

func exchange(hc *http.Client, base, form string) (string, error) {
	resp, err := hc.Post(base+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r token.Response
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint answered %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "", err
	}
	return r.AccessToken, nil
}

// BenchmarkExchange: concurrent HTTP clients (keep-alive) exchanging a
// JWT-SVID for an access token: SVID authentication, task check, policy
// decision, ES256 signing, and a durable audit event per exchange (the
// answer waits for the audit commit, so throughput grows with concurrency
// as commits batch).
func BenchmarkExchange(b *testing.B) {
	e := setup(b)
	form := e.form()
	for _, clients := range []int{8, 64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
				for pb.Next() {
					if _, err := exchange(hc, e.base, form); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
		})
	}
}

// BenchmarkVerify: in-process verification of a bearer access token by
// the verifier resource servers embed (signature, claims, revocation).
func BenchmarkVerify(b *testing.B) {
	e := setup(b)
	raw, err := exchange(http.DefaultClient, e.base, e.form())
	if err != nil {
		b.Fatal(err)
	}
	v := e.srv.TokenVerifier()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, raw, token.VerifyOptions{Audience: "mail-api"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkVerifyCold: verification as a resource server outside the
// writ process does it for a token it sees for the first time: keys from
// /jwks.json (token.RemoteKeys), no signature cache, so every call does
// the ES256 verification and claim decoding.
func BenchmarkVerifyCold(b *testing.B) {
	e := setup(b)
	raw, err := exchange(http.DefaultClient, e.base, e.form())
	if err != nil {
		b.Fatal(err)
	}
	v, err := token.NewVerifier(token.VerifierConfig{Issuer: e.issuer, Keys: &token.RemoteKeys{URL: e.base + "/jwks.json"}, CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, raw, token.VerifyOptions{Audience: "mail-api"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkRevocationToEnforcement: the kill switch on a task, measured
// two ways per revocation: from an operator's POST /v1/revoke (HTTP, store
// commit, audit event) until the in-process verifier refuses the task's
// token ("api-to-verifier"), and from the start of the in-process
// revoke.List.Revoke call (which commits to the store durably first) until
// a watcher goroutine's verifier refuses the token
// ("revoke-call-to-watcher").
func BenchmarkRevocationToEnforcement(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	v := e.srv.TokenVerifier()
	agent, _ := client.New(e.base, e.svid)
	var api, commit []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		t, err := agent.OpenTask(ctx, apitypes.OpenTaskRequest{Purpose: "r", Audiences: []string{"mail-api"}, Scopes: []string{"mail.read"}})
		if err != nil {
			b.Fatal(err)
		}
		raw, err := exchange(http.DefaultClient, e.base, url.Values{"grant_type": {token.GrantExchange}, "subject_token": {e.svid},
			"subject_token_type": {token.TypeJWT}, "audience": {"mail-api"}, "task": {t.ID}}.Encode())
		if err != nil {
			b.Fatal(err)
		}
		// A watcher goroutine stands in for an enforcement point.
		seen := make(chan time.Time, 1)
		ch, stop := e.srv.Revocations().Watch()
		go func() {
			for range ch {
				if _, err := v.Verify(ctx, raw, token.VerifyOptions{Audience: "mail-api"}); errors.Is(err, token.ErrRevoked) {
					seen <- time.Now()
					return
				}
			}
		}()
		b.StartTimer()
		start := time.Now()
		if _, err := e.admin.Revoke(ctx, apitypes.RevokeRequest{Kind: store.RevokeTask, Value: t.ID, Reason: "bench"}); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := v.Verify(ctx, raw, token.VerifyOptions{Audience: "mail-api"}); errors.Is(err, token.ErrRevoked) {
				break
			}
		}
		api = append(api, time.Since(start))
		b.StopTimer()
		// CreatedAt is stamped when Revoke starts, before the commit.
		var committed time.Time
		for _, r := range e.srv.Revocations().All() {
			if r.Kind == store.RevokeTask && r.Value == t.ID {
				committed = r.CreatedAt
			}
		}
		commit = append(commit, (<-seen).Sub(committed))
		stop()
		b.StartTimer()
	}
	slices.Sort(api)
	slices.Sort(commit)
	b.ReportMetric(float64(api[len(api)/2].Microseconds()), "p50-µs-api-to-verifier")
	b.ReportMetric(float64(api[len(api)-1].Microseconds()), "max-µs-api-to-verifier")
	b.ReportMetric(float64(commit[len(commit)/2].Microseconds()), "p50-µs-revoke-call-to-watcher")
	b.ReportMetric(float64(commit[len(commit)-1].Microseconds()), "max-µs-revoke-call-to-watcher")
}

// BenchmarkRevocationToStream: time from revoking an instance (in process)
// to its Workload API X.509 stream being withdrawn.
func BenchmarkRevocationToStream(b *testing.B) {
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := setup(b)
		ctx, cancel := context.WithCancel(context.Background())
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(e.socket)))
		if err != nil {
			b.Fatal(err)
		}
		svid, _ := src.GetX509SVID()
		inst := svid.Certificates[0].Subject.SerialNumber
		updates := make(chan error, 16)
		go func() {
			err := workloadapi.WatchX509Context(ctx, watcher{updates}, workloadapi.WithAddr(e.socket))
			_ = err
		}()
		<-updates // first state
		b.StartTimer()
		start := time.Now()
		if _, _, err := e.srv.Revocations().Revoke(ctx, store.Revocation{Kind: store.RevokeInstance, Value: inst}); err != nil {
			b.Fatal(err)
		}
		<-updates // withdrawn: an error (no identity) or an empty update
		lat = append(lat, time.Since(start))
		b.StopTimer()
		src.Close()
		cancel()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs-to-stream")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}

type watcher struct{ ch chan error }

func (w watcher) OnX509ContextUpdate(*workloadapi.X509Context) { w.ch <- nil }
func (w watcher) OnX509ContextWatchError(err error)            { w.ch <- err }
