package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/servertest"
)

// proxyCrashEnv selects the helper mode of this test binary: run writ on
// the data directory it names, with its proxy in front of the upstream in
// WRIT_PROXY_CRASH_UP, print "proxy <addr>" and serve until killed.
const proxyCrashEnv = "WRIT_PROXY_CRASH_DIR"

const crashDocs = `apiVersion: writ.dev/v1
kind: Service
metadata: {name: crash}
spec:
  upstream: %s
  credential: {name: crash-key}
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: crash}
spec:
  subjects: [spiffe://writ.local/crash]
  rules:
    - {name: get, effect: allow, targets: [{http: {service: crash, methods: [GET]}}]}
`

// TestProxyCrashKeepsAccesses: writ is killed (SIGKILL) while requests it
// let through are at the upstream, and while the events of finished ones
// may still be on their way to the log. After a restart on the same data
// directory, the audit log holds exactly one access.allowed event for
// every request the upstream saw: the finished ones with their status,
// or as recovered, and the ones cut off as recovered with outcome
// "unknown". The log still verifies.
func TestProxyCrashKeepsAccesses(t *testing.T) {
	if dir := os.Getenv(proxyCrashEnv); dir != "" {
		proxyCrashHelper(t, dir, os.Getenv("WRIT_PROXY_CRASH_UP"))
		return
	}
	var seen sync.Map // path -> true, every request the upstream got
	var hanging atomic.Int64
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.Path, true)
		if strings.HasPrefix(r.URL.Path, "/hang/") {
			hanging.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Write([]byte("ok"))
	}))
	defer up.Close()
	defer close(release)

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestProxyCrashKeepsAccesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), proxyCrashEnv+"="+dir, "WRIT_PROXY_CRASH_UP="+up.URL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killer := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer killer.Stop()
	var proxyAddr string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "proxy "); ok {
			proxyAddr = a
			break
		}
	}
	if proxyAddr == "" {
		cmd.Wait()
		t.Fatal("the writ helper did not start its proxy")
	}
	go func() {
		for sc.Scan() {
		}
	}()

	// Requests from this process are attributed to spiffe://writ.local/crash
	// by its uid. Finished requests first, then requests the upstream holds.
	client := &http.Client{Timeout: 60 * time.Second}
	get := func(path string) {
		resp, err := client.Get("http://" + proxyAddr + "/svc/crash" + path)
		if err == nil {
			resp.Body.Close()
		}
	}
	const finished, cut = 30, 8
	for i := range finished {
		get("/done/" + strconv.Itoa(i))
	}
	for i := range cut {
		go get("/hang/" + strconv.Itoa(i))
	}
	for deadline := time.Now().Add(30 * time.Second); hanging.Load() < cut; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests reached the upstream", hanging.Load(), cut)
		}
	}
	// Refused requests (policy allows only GET), answered just before the
	// kill: their events are at most a few milliseconds old.
	const refused = 20
	for i := range refused {
		resp, err := client.Post("http://"+proxyAddr+"/svc/crash/refused/"+strconv.Itoa(i), "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("POST: %d, want 403", resp.StatusCode)
		}
	}
	// Kill at once: some finished requests' events may not be in the log.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	cfg := servertest.Config(dir)
	cfg.Server.TLSListen = "off"
	in := servertest.Start(t, cfg, nil)
	ctx := context.Background()
	res, err := in.Client.AuditSearch(ctx, apitypes.AuditQuery{Type: string(audit.AccessAllowed), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string][]apitypes.AuditEntry{}
	for _, e := range res.Events {
		byPath[e.Details["path"]] = append(byPath[e.Details["path"]], e)
	}
	n := 0
	seen.Range(func(k, _ any) bool {
		path := k.(string)
		n++
		evs := byPath[path]
		if len(evs) != 1 {
			t.Errorf("%s reached the upstream; the log has %d access.allowed events for it, want 1", path, len(evs))
			return true
		}
		e := evs[0]
		if e.SpiffeID != "spiffe://writ.local/crash" {
			t.Errorf("%s recorded for %q", path, e.SpiffeID)
		}
		if strings.HasPrefix(path, "/hang/") && e.Details["outcome"] != "unknown" {
			t.Errorf("%s was cut off by the crash, but its event says %v", path, e.Details)
		}
		if strings.HasPrefix(path, "/done/") && e.Details["status"] != "200" && e.Details["outcome"] != "unknown" {
			t.Errorf("%s finished, but its event says %v", path, e.Details)
		}
		return true
	})
	if n != finished+cut {
		t.Fatalf("the upstream saw %d requests, want %d", n, finished+cut)
	}
	if len(byPath) != n {
		t.Errorf("the log has access.allowed events for %d paths, the upstream saw %d", len(byPath), n)
	}
	// Every refused request answered before the kill is in the log, once.
	den, err := in.Client.AuditSearch(ctx, apitypes.AuditQuery{Type: string(audit.AccessDenied), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	refusals := map[string]int{}
	for _, e := range den.Events {
		refusals[e.Details["path"]]++
	}
	for i := range refused {
		if p := "/refused/" + strconv.Itoa(i); refusals[p] != 1 {
			t.Errorf("POST %s was refused before the kill; the log has %d access.denied events for it, want 1", p, refusals[p])
		}
	}
	in.Stop()
	// Recovered once: a second restart adds nothing.
	in2 := servertest.Start(t, cfg, nil)
	res2, err := in2.Client.AuditSearch(ctx, apitypes.AuditQuery{Type: string(audit.AccessAllowed), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Events) != len(res.Events) {
		t.Errorf("a second restart recorded %d more access.allowed events", len(res2.Events)-len(res.Events))
	}
	if den2, err := in2.Client.AuditSearch(ctx, apitypes.AuditQuery{Type: string(audit.AccessDenied), Limit: 1000}); err != nil || len(den2.Events) != len(den.Events) {
		t.Errorf("a second restart changed the access.denied events: %d, want %d (%v)", len(den2.Events), len(den.Events), err)
	}
	in2.Stop()
	if _, err := os.Stat(dir + "/proxy.journal"); !os.IsNotExist(err) {
		t.Errorf("journal left after a clean stop: %v", err)
	}
}

func proxyCrashHelper(t *testing.T, dir, up string) {
	cfg := servertest.Config(dir)
	cfg.Server.TLSListen = "off"
	in := servertest.Start(t, cfg, nil)
	c, ctx := in.Client, context.Background()
	if _, err := c.CreateEntry(ctx, apitypes.Entry{Name: "crash", SpiffeID: "spiffe://writ.local/crash",
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutCredential(ctx, "crash-key", "bearer", "crash-secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "crash.yaml", Content: fmt.Sprintf(crashDocs, up)}}}); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("proxy %s\n", in.Server.ProxyAddr())
	select {}
}
