package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/access"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/journal"
	"github.com/writ-dev/writ/internal/policy"
)

// journaled returns the decisions in the journal file as events.
func journaled(t *testing.T, path string) []audit.Event {
	t.Helper()
	recs, damaged, err := journal.Recover(path)
	if err != nil || damaged {
		t.Fatalf("Recover: %v, damaged %v", err, damaged)
	}
	var out []audit.Event
	for _, r := range recs {
		var e audit.Event
		if err := json.Unmarshal(r, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestDecisionJournaledBeforeForwarding: when the upstream sees the
// request, its decision is already in the journal, under the id the
// request's one event is recorded with afterwards.
func TestDecisionJournaledBeforeForwarding(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.journal")
	var during []audit.Event
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		during = journaled(t, path)
		w.Write([]byte("ok"))
	}))
	defer up.Close()
	f := newFixture(t, up.URL, "", func(c *fixtureConfig) { c.Journal = path })
	if resp, body := f.get(t, "/svc/up/x/y?secret=1"); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if len(during) != 1 {
		t.Fatalf("%d decisions in the journal while the upstream answered, want 1", len(during))
	}
	d := during[0]
	if d.Type != audit.AccessAllowed || d.Decision != "allow" || d.Details["path"] != "/x/y" || d.Details["status"] != "" || strings.Contains(d.Details["query"], "1") {
		t.Errorf("journaled decision %+v", d)
	}
	e := f.events.Latest()
	if e.ID != d.ID || e.RequestID != d.RequestID || e.Details["status"] != "200" {
		t.Errorf("event %+v does not continue the journaled decision %s/%s", e, d.ID, d.RequestID)
	}
	if f.enf.Pending() != 0 {
		t.Error("decision still pending after its event was recorded")
	}
	// A clean stop leaves no journal behind.
	f.front.Close()
	if err := f.enf.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal after a clean stop: %v", err)
	}
}

// TestRecoverAfterCrash: a proxy that stops without recording a request's
// event (a crash mid-request) leaves its decision in the journal; the
// next proxy on that journal records it as an access whose outcome is
// unknown before it serves, once, and not the ones the log already holds.
func TestRecoverAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.journal")
	entered, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			close(entered)
			<-release
		}
	}))
	defer up.Close()
	defer close(release)
	f := newFixture(t, up.URL, "", func(c *fixtureConfig) { c.Journal = path })
	if resp, _ := f.get(t, "/svc/up/done"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	go f.send("GET", "/svc/up/hang", nil)
	<-entered
	// The crash: nothing more of the first proxy runs. Its journal holds
	// the finished request (already recorded) and the hanging one.
	if n := len(journaled(t, path)); n != 2 {
		t.Fatalf("%d decisions in the journal, want 2", n)
	}
	first := f.events.Latest()
	sink := &audittest.Recorder{}
	recorded := func(_ context.Context, id string) (bool, error) { return id == first.ID, nil }
	pol := policy.NewEngine(policy.Config{}, compilePolicy(t, allowAll))
	p2, err := access.New(context.Background(), access.Config{Policy: pol, Emitter: sink, Journal: path, Recorded: recorded})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	evs := sink.Events()
	if len(evs) != 1 {
		t.Fatalf("recovery recorded %d events, want 1: %+v", len(evs), evs)
	}
	e := evs[0]
	if e.Type != audit.AccessAllowed || e.Details["path"] != "/hang" || e.Details["outcome"] != "unknown" || !strings.Contains(e.Reason, "journal") || e.ID == "" || e.ID == first.ID {
		t.Errorf("recovered event %+v", e)
	}
	if n := len(journaled(t, path)); n != 0 {
		t.Errorf("%d decisions still in the journal after recovery", n)
	}
	// A third start finds nothing to recover.
	sink3 := &audittest.Recorder{}
	p3, err := access.New(context.Background(), access.Config{Policy: pol, Emitter: sink3, Journal: path + "x"})
	if err != nil {
		t.Fatal(err)
	}
	p3.Close()
	if n := len(sink3.Events()); n != 0 {
		t.Errorf("a fresh journal recovered %d events", n)
	}
}
