package api

import (
	"testing"

	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/store"
)

// TestProcessExplanationGolden pins GET /v1/processes/{pid}.
func TestProcessExplanationGolden(t *testing.T) {
	uid := store.Selector{Type: "unix", Value: "uid:1000"}
	path := store.Selector{Type: "unix", Value: "path:/usr/bin/python3"}
	broad := store.Entry{Name: "any", SpiffeID: "spiffe://writ.local/agent/any", Selectors: []store.Selector{uid}}
	res := attest.Result{PID: 42, UID: 1000, Exe: "/usr/bin/python3", Selectors: []store.Selector{uid, path},
		Instance: store.Instance{ID: "inst_1"}}
	ex := registry.Explanation{
		Entries: []registry.EntryMatch{
			{Entry: fixIdentity, Matched: true, Outranks: []string{"any"}},
			{Entry: broad, Matched: true},
			{Entry: store.Entry{Name: "node", SpiffeID: "spiffe://writ.local/agent/node", Selectors: []store.Selector{uid, {Type: "unix", Value: "path:/usr/bin/node"}}},
				Missing: []store.Selector{{Type: "unix", Value: "path:/usr/bin/node"}}},
		},
		Chosen: fixIdentity,
		Reason: "entry agent.a is the most specific match: its selectors include those of every other match",
	}
	golden(t, "process-explanation", explanationToAPI(res, ex))
	golden(t, "process-explanation-none", explanationToAPI(attest.Result{PID: 7}, registry.Explanation{Reason: "no entry matches"}))
}
