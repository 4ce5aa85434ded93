package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/writ-dev/writ/internal/alert"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/store"
)

// Alerts lists alerts and records a human's decision on one.
type Alerts interface {
	// List evaluates the events appended since the last evaluation, then
	// returns the alerts f selects and their summary.
	List(ctx context.Context, f store.AlertFilter) ([]store.Alert, alert.Summary, error)
	SetState(ctx context.Context, id, state, who, note string) (store.Alert, error)
	// Enabled returns the ids of the enabled rules.
	Enabled() []string
}

// listAlerts answers GET /v1/alerts?state=&rule=&severity=&since=.
func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	if a.c.Alerts == nil {
		WriteError(w, notFound("this server raises no alerts"))
		return
	}
	var f store.AlertFilter
	for k, vals := range r.URL.Query() {
		if len(vals) != 1 {
			WriteError(w, badRequest("query parameter %s is given %d times; give it once", k, len(vals)))
			return
		}
		v := vals[0]
		switch k {
		case "state":
			if !slices.Contains([]string{store.AlertOpen, store.AlertAcknowledged, store.AlertResolved}, v) {
				WriteError(w, badRequest("state %q: use open, acknowledged or resolved", v))
				return
			}
			f.State = v
		case "rule":
			if _, ok := alert.RuleByID(v); !ok {
				WriteError(w, badRequest("rule %q: not a rule of the catalogue (writ alert list --catalogue)", v))
				return
			}
			f.Rule = v
		case "severity":
			if alert.SeverityRank(v) < 0 {
				WriteError(w, badRequest("severity %q: use one of %v", v, alert.Severities))
				return
			}
			f.Severity = v
		case "since":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				WriteError(w, badRequest("since %q: want an RFC 3339 time", v))
				return
			}
			f.RaisedSince = t
		default:
			WriteError(w, badRequest("unknown query parameter %q; use state, rule, severity or since", k))
			return
		}
	}
	list, sum, err := a.c.Alerts.List(r.Context(), f)
	if err != nil {
		a.fail(w, r, "list alerts", err)
		return
	}
	out := apitypes.AlertList{Alerts: make([]apitypes.Alert, 0, len(list)), Summary: AlertSummaryToAPI(sum)}
	for _, al := range list {
		out.Alerts = append(out.Alerts, AlertToAPI(al))
	}
	enabled := a.c.Alerts.Enabled()
	for _, rl := range alert.Catalogue {
		out.Catalogue = append(out.Catalogue, apitypes.AlertRuleDoc{ID: rl.ID, Title: rl.Title, Severity: rl.Severity,
			Description: rl.Description, Fix: rl.Fix, Enabled: slices.Contains(enabled, rl.ID)})
	}
	WriteJSON(w, http.StatusOK, out)
}

// decideAlert answers POST /v1/alerts/{id}/ack and /resolve.
func (a *API) decideAlert(w http.ResponseWriter, r *http.Request, state string) {
	if a.c.Alerts == nil {
		WriteError(w, notFound("this server raises no alerts"))
		return
	}
	var req apitypes.AlertDecision
	if r.ContentLength != 0 {
		if err := DecodeJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
	}
	id := r.PathValue("id")
	al, err := a.c.Alerts.SetState(r.Context(), id, state, Actor(r.Context()), req.Note)
	switch {
	case errors.Is(err, store.ErrNotFound):
		WriteError(w, notFound("alert %q: not found", id))
	case errors.Is(err, store.ErrExists):
		WriteError(w, apitypes.Errorf(http.StatusConflict, apitypes.CodeConflict, "%v", err))
	case err != nil:
		a.fail(w, r, "decide alert", err)
	default:
		WriteJSON(w, http.StatusOK, AlertToAPI(al))
	}
}

// AlertToAPI maps a stored alert to its wire form.
func AlertToAPI(al store.Alert) apitypes.Alert {
	out := apitypes.Alert{ID: al.ID, Rule: al.Rule, Severity: al.Severity, Title: al.Title, Subject: al.Subject, Count: al.Count,
		State: al.State, Evidence: make([]apitypes.AlertEvidence, 0, len(al.Evidence)), FirstEvidence: al.FirstEvidence.UTC(),
		LastEvidence: al.LastEvidence.UTC(), RaisedAt: al.RaisedAt.UTC(), AckedAt: timePtr(al.AckedAt), AckedBy: al.AckedBy,
		ResolvedAt: timePtr(al.ResolvedAt), ResolvedBy: al.ResolvedBy, Note: al.Note}
	for _, e := range al.Evidence {
		out.Evidence = append(out.Evidence, apitypes.AlertEvidence{Event: e.Event, Index: e.Index, Time: e.Time.UTC(), Summary: e.Summary})
	}
	if !al.AckedAt.IsZero() {
		d := max(al.AckedAt.Sub(al.FirstEvidence), 0).Seconds()
		out.DwellSeconds = &d
	}
	if rl, ok := alert.RuleByID(al.Rule); ok {
		out.Fix = rl.Fix
	}
	return out
}

// AlertSummaryToAPI maps a summary to its wire form.
func AlertSummaryToAPI(s alert.Summary) apitypes.AlertSummary {
	nz := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	return apitypes.AlertSummary{Total: s.Total, Open: s.Open, Acknowledged: s.Acknowledged, Resolved: s.Resolved,
		DwellMedianSeconds: s.DwellMedian.Seconds(), DwellP90Seconds: s.DwellP90.Seconds(), DwellMaxSeconds: s.DwellMax.Seconds(),
		RaiseMedianSeconds: s.RaiseMedian.Seconds(), AckWithinSeconds: s.AckWithin.Seconds(), Coverage: s.Coverage,
		AckedInTime: s.AckedInTime, Due: s.Due, Pending: s.Pending, RulesEnabled: nz(s.RulesEnabled), RulesDisabled: nz(s.RulesDisabled),
		DetectionCoverage: s.DetectionCoverage, BySeverity: s.BySeverity, ByRule: s.ByRule}
}
