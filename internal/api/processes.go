package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/registry"
)

// Processes explains how a running process is identified: it attests the
// process and matches it to the entries.
type Processes interface {
	ExplainPID(ctx context.Context, pid int) (attest.Result, registry.Explanation, error)
}

// explainProcess answers GET /v1/processes/{pid}.
func (a *API) explainProcess(w http.ResponseWriter, r *http.Request) {
	if a.c.Processes == nil {
		WriteError(w, notFound("this server does not attest local processes"))
		return
	}
	pid, err := strconv.Atoi(r.PathValue("pid"))
	if err != nil || pid <= 0 {
		WriteError(w, badRequest("pid %q: write a process id, e.g. 1234", r.PathValue("pid")))
		return
	}
	res, ex, err := a.c.Processes.ExplainPID(r.Context(), pid)
	if errors.Is(err, attest.ErrProcessGone) {
		WriteError(w, notFound("pid %d: no such process (or it exited while writ looked at it)", pid))
		return
	}
	if err != nil {
		a.c.Log.WarnContext(r.Context(), "explain process", "pid", pid, "error", err)
		WriteError(w, badRequest("pid %d: cannot attest it: %v", pid, err))
		return
	}
	WriteJSON(w, http.StatusOK, explanationToAPI(res, ex))
}

func explanationToAPI(res attest.Result, ex registry.Explanation) apitypes.ProcessExplanation {
	out := apitypes.ProcessExplanation{PID: res.PID, UID: res.UID, Exe: res.Exe, Instance: res.Instance.ID,
		Selectors: []string{}, Entries: []apitypes.EntryMatch{}, Chosen: ex.Chosen.Name, ChosenSpiffeID: ex.Chosen.SpiffeID, Reason: ex.Reason}
	for _, s := range res.Selectors {
		out.Selectors = append(out.Selectors, s.String())
	}
	for _, m := range ex.Entries {
		em := apitypes.EntryMatch{Name: m.Entry.Name, SpiffeID: m.Entry.SpiffeID, Matched: m.Matched, Outranks: m.Outranks}
		for _, s := range m.Entry.Selectors {
			em.Selectors = append(em.Selectors, s.String())
		}
		for _, s := range m.Missing {
			em.Missing = append(em.Missing, s.String())
		}
		out.Entries = append(out.Entries, em)
	}
	return out
}
