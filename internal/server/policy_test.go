package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/policy"
)

// policyLoads records the server's "policy loaded" log lines: whether the
// snapshot installed was the one compiled when the apply was checked.
type policyLoads struct {
	mu    sync.Mutex
	loads []bool // compiled_at_apply; false for a reload from the store
}

func (h *policyLoads) Enabled(context.Context, slog.Level) bool { return true }
func (h *policyLoads) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *policyLoads) WithGroup(string) slog.Handler            { return h }
func (h *policyLoads) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "policy loaded" {
		return nil
	}
	atApply := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "compiled_at_apply" {
			atApply = a.Value.Bool()
		}
		return true
	})
	h.mu.Lock()
	h.loads = append(h.loads, atApply)
	h.mu.Unlock()
	return nil
}

// take returns the loads since the last call.
func (h *policyLoads) take() []bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.loads
	h.loads = nil
	return out
}

func simplePolicy(name, desc string) apitypes.ApplyFile {
	return apitypes.ApplyFile{Name: name + ".yaml", Content: fmt.Sprintf(`apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: %s}
spec:
  description: %s
  subjects: [spiffe://writ.local/agent/%s]
  rules:
    - {name: open, effect: allow, targets: [{task: {}}]}
`, name, desc, name)}
}

// decidedBy returns the policy@version that allows agent NAME to open a
// task, or the effect when it is not allowed.
func decidedBy(ctx context.Context, in *instance, name string) string {
	d := in.srv.Policy().Decide(ctx, &policy.Request{Kind: policy.KindTask,
		Subject: policy.Subject{SpiffeID: "spiffe://writ.local/agent/" + name}, Task: policy.Task{Purpose: "p"}})
	if d.Effect != policy.Allow {
		return string(d.Effect)
	}
	return d.Policy
}

// TestApplyInstallsTheSetItCompiled checks that an apply compiles the
// policy set once, when it is checked, and installs that snapshot, under
// the versions the store gives; and that when the store holds something
// else by then, the server compiles what is stored instead.
func TestApplyInstallsTheSetItCompiled(t *testing.T) {
	loads := &policyLoads{}
	in := startWithLog(t, testConfig(t.TempDir()), slog.New(loads))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	loads.take() // the load at start

	apply := func(files ...apitypes.ApplyFile) []apitypes.ApplyResult {
		t.Helper()
		resp, err := in.client.Apply(ctx, apitypes.ApplyRequest{Files: files})
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		return resp.Results
	}
	expect := func(step string, loaded []bool, want map[string]string) {
		t.Helper()
		if got := loads.take(); fmt.Sprint(got) != fmt.Sprint(loaded) {
			t.Errorf("%s: snapshots installed (compiled at apply?) %v, want %v", step, got, loaded)
		}
		for name, w := range want {
			if got := decidedBy(ctx, in, name); got != w {
				t.Errorf("%s: %s decided by %s, want %s", step, name, got, w)
			}
		}
	}

	apply(simplePolicy("a", "one"))
	expect("create", []bool{true}, map[string]string{"a": "a@1"})

	if res := apply(simplePolicy("a", "one")); res[0].Action != "unchanged" || res[0].Version != 1 {
		t.Fatalf("unchanged apply: %+v", res)
	}
	expect("unchanged", nil, map[string]string{"a": "a@1"})

	apply(simplePolicy("a", "two"), simplePolicy("b", "one"))
	expect("change and create", []bool{true}, map[string]string{"a": "a@2", "b": "b@1"})

	// A policy re-created after a delete continues its version numbers,
	// which the check cannot know: the store's set is compiled instead.
	if err := in.client.DeleteResource(ctx, "AccessPolicy", "b"); err != nil {
		t.Fatal(err)
	}
	expect("delete", []bool{false}, map[string]string{"a": "a@2", "b": "deny"})
	res := apply(simplePolicy("b", "again"))
	if res[0].Version <= 1 {
		t.Fatalf("re-created b: %+v", res)
	}
	expect("re-create", []bool{false}, map[string]string{"a": "a@2", "b": fmt.Sprintf("b@%d", res[0].Version)})

	// Applies running at once each install a set that holds the others'
	// changes, or compile the store's: the last installed set is complete.
	var wg sync.WaitGroup
	for _, name := range []string{"c", "d", "e", "f"} {
		wg.Go(func() {
			if _, err := in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{simplePolicy(name, "x"), simplePolicy("a", "by "+name)}}); err != nil {
				t.Errorf("apply %s: %v", name, err)
			}
		})
	}
	wg.Wait()
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		got := decidedBy(ctx, in, name)
		r, err := in.client.GetResource(ctx, "AccessPolicy", name)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s@%d", name, r.Version); got != want {
			t.Errorf("after concurrent applies %s is decided by %s; the store holds %s", name, got, want)
		}
	}
}

// TestApplyPolicyErrorsArePositioned checks that an apply refused by the
// policy set check names the file position and field of the applied
// document.
func TestApplyPolicyErrorsArePositioned(t *testing.T) {
	in := start(t, testConfig(t.TempDir()))
	ctx := context.Background()
	bad := simplePolicy("a", "x")
	bad.Content = strings.Replace(bad.Content, "targets: [{task: {}}]", "targets: [{task: {}}], when: 'nope'", 1)
	_, err := in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{bad}})
	if err == nil || !strings.Contains(err.Error(), "a.yaml:8:") || !strings.Contains(err.Error(), "spec.rules[0].when: condition does not compile") {
		t.Fatalf("apply = %v, want a.yaml:8:COL: spec.rules[0].when: ...", err)
	}
}

// TestApplyWrongTypeIsPositioned checks that a wrong-typed field in an
// applied policy names its file position and field path.
func TestApplyWrongTypeIsPositioned(t *testing.T) {
	in := start(t, testConfig(t.TempDir()))
	wrong := simplePolicy("a", "x")
	wrong.Content = strings.Replace(wrong.Content, "targets: [{task: {}}]", "targets: [{task: {}}], budget: lots", 1)
	_, err := in.client.Apply(context.Background(), apitypes.ApplyRequest{Files: []apitypes.ApplyFile{wrong}})
	if err == nil || !strings.Contains(err.Error(), `a.yaml:8:66: spec.rules[0].budget: want an integer (int), got "lots"`) {
		t.Fatalf("apply = %v, want a.yaml:8:66: spec.rules[0].budget: ...", err)
	}
}
