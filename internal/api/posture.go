package api

import (
	"context"
	"net/http"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/posture"
	"github.com/writ-dev/writ/internal/tier"
)

// Posture evaluates posture findings and the tier report over the
// running deployment.
type Posture interface {
	// Findings evaluates the checks; unusedAfter is the window of the
	// unused_grant check (0: posture.DefaultUnusedAfter).
	Findings(ctx context.Context, unusedAfter time.Duration) ([]posture.Finding, error)
	Tier(ctx context.Context) (tier.Report, error)
}

// noParams refuses any query parameter.
func noParams(w http.ResponseWriter, r *http.Request) bool {
	for k := range r.URL.Query() {
		WriteError(w, badRequest("unknown query parameter %q; this endpoint takes none", k))
		return false
	}
	return true
}

// postureAnswer answers GET /v1/posture.
func (a *API) postureAnswer(w http.ResponseWriter, r *http.Request) {
	if a.c.Posture == nil {
		WriteError(w, notFound("this server evaluates no posture"))
		return
	}
	var unusedAfter time.Duration
	for k, v := range r.URL.Query() {
		if k != "unused_after" || len(v) != 1 {
			WriteError(w, badRequest("query parameter %q: this endpoint takes unused_after (once) only", k))
			return
		}
		d, err := time.ParseDuration(v[0])
		if err != nil || d < time.Second || d > 10*365*24*time.Hour {
			WriteError(w, badRequest("unused_after %q: a duration from 1s to 87600h (e.g. 720h for 30 days)", v[0]))
			return
		}
		unusedAfter = d
	}
	fs, err := a.c.Posture.Findings(r.Context(), unusedAfter)
	if err != nil {
		a.fail(w, r, "posture", err)
		return
	}
	out := apitypes.Posture{Findings: make([]apitypes.PostureFinding, 0, len(fs)), Checks: posture.Checks}
	for _, f := range fs {
		out.Findings = append(out.Findings, apitypes.PostureFinding{ID: f.ID, Check: f.Check, Severity: f.Severity, Title: f.Title,
			Evidence: f.Evidence, Nodes: f.Nodes, Reaches: f.Reaches, CrownJewels: f.CrownJewels, BlastRadius: f.BlastRadius(), Fix: f.Fix})
	}
	WriteJSON(w, http.StatusOK, out)
}

// tierAnswer answers GET /v1/tier.
func (a *API) tierAnswer(w http.ResponseWriter, r *http.Request) {
	if a.c.Posture == nil {
		WriteError(w, notFound("this server evaluates no tier report"))
		return
	}
	if !noParams(w, r) {
		return
	}
	rep, err := a.c.Posture.Tier(r.Context())
	if err != nil {
		a.fail(w, r, "tier report", err)
		return
	}
	out := apitypes.TierReport{Reached: rep.Reached, Rows: make([]apitypes.TierRow, 0, len(rep.Rows))}
	for _, row := range rep.Rows {
		out.Rows = append(out.Rows, apitypes.TierRow{Tier: row.Tier, ID: row.ID, Requirement: row.Requirement, Verdict: row.Verdict,
			Evidence: row.Evidence, ToMeet: row.ToMeet})
	}
	WriteJSON(w, http.StatusOK, out)
}
