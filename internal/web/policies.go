package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/learn"
	"github.com/writ-dev/writ/internal/store"
)

// History returns up to limit stored versions of kind/name, newest first
// (store.Resources.ResourceHistory).
type History func(ctx context.Context, kind, name string, limit int) ([]store.Resource, error)

// historyDepth is how many versions of a policy the page shows.
const historyDepth = 10

// diffLine is one line of a diff: Op is ' ', '-' or '+'.
type diffLine struct {
	Op   string
	Text string
}

// maxDiffLines bounds the diff's quadratic table; longer specs are shown
// whole instead.
const maxDiffLines = 2000

// lineDiff is the line diff of a and b (longest common subsequence), or
// nil when either is longer than maxDiffLines.
func lineDiff(a, b string) []diffLine {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(x) > maxDiffLines || len(y) > maxDiffLines {
		return nil
	}
	// lcs[i][j] is the LCS length of x[i:] and y[j:].
	lcs := make([][]int32, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []diffLine
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		switch {
		case x[i] == y[j]:
			out = append(out, diffLine{" ", x[i]})
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, diffLine{"-", x[i]})
			i++
		default:
			out = append(out, diffLine{"+", y[j]})
			j++
		}
	}
	for ; i < len(x); i++ {
		out = append(out, diffLine{"-", x[i]})
	}
	for ; j < len(y); j++ {
		out = append(out, diffLine{"+", y[j]})
	}
	return out
}

// prettySpec indents a stored spec's JSON (as is when it is not JSON).
func prettySpec(spec []byte) string {
	var v any
	if json.Unmarshal(spec, &v) != nil {
		return string(spec)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// policyVersion is one version in a policy's history, with its diff
// from the version before.
type policyVersion struct {
	store.Resource
	Diff []diffLine
	// Added and Removed count the diff's lines.
	Added, Removed int
}

func (w *Console) policies(rw http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ps, err := w.c.Resources.ListResources(ctx, "AccessPolicy")
	if err != nil {
		w.fail(rw, r, "list policies", err)
		return
	}
	status := map[string]apitypes.PolicyStatus{}
	if w.c.Policies != nil {
		list, err := w.c.Policies.ListPolicies(ctx)
		if err != nil {
			w.fail(rw, r, "policy status", err)
			return
		}
		for _, p := range list {
			status[p.Name] = p
		}
	}
	type pol struct {
		apitypes.Resource
		Spec    string
		Status  apitypes.PolicyStatus
		Known   bool
		History []policyVersion
	}
	out := make([]pol, 0, len(ps))
	observed := 0
	for _, p := range ps {
		st, ok := status[p.Name]
		if ok && st.Observe != nil {
			observed++
		}
		pv := pol{Resource: p, Spec: prettySpec(p.Spec), Status: st, Known: ok}
		if w.c.History != nil {
			hist, err := w.c.History(ctx, "AccessPolicy", p.Name, historyDepth+1)
			if err != nil {
				w.fail(rw, r, "policy history", err)
				return
			}
			for i, v := range hist {
				if i == historyDepth {
					break
				}
				ver := policyVersion{Resource: v}
				if i+1 < len(hist) {
					ver.Diff = lineDiff(prettySpec(hist[i+1].Spec), prettySpec(v.Spec))
					for _, d := range ver.Diff {
						switch d.Op {
						case "+":
							ver.Added++
						case "-":
							ver.Removed++
						}
					}
				}
				pv.History = append(pv.History, ver)
			}
		}
		out = append(out, pv)
	}
	data := map[string]any{"Policies": out, "Observed": observed}
	// ?replay=NAME: what promoting the observed policy NAME would have
	// changed on the traffic recorded since it was applied.
	if name := r.URL.Query().Get("replay"); name != "" {
		st, ok := status[name]
		if !ok || st.Observe == nil {
			w.errorPage(rw, r, http.StatusBadRequest, "Only a policy in observe mode is replayed here; "+shorten(60, name)+" is not one. Replay candidate files with writ policy replay -f.")
			return
		}
		rep, err := w.c.Policies.Replay(ctx, name, apitypes.PolicyReplayRequest{ExpectDigest: st.Digest})
		var he *apitypes.Error
		if errors.As(err, &he) {
			w.errorPage(rw, r, he.Status, he.Msg)
			return
		}
		if err != nil {
			w.fail(rw, r, "replay", err)
			return
		}
		data["Replay"] = rep
		data["NewlyDenied"] = rep.Report.Count(learn.NewlyDenied)
		data["NewlyAllowed"] = rep.Report.Count(learn.NewlyAllowed)
		data["NewlyHeld"] = rep.Report.Count(learn.ApprovalRequired)
	}
	w.render(rw, r, http.StatusOK, "policies", data)
}
