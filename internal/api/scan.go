package api

import (
	"context"
	"net/http"

	"github.com/writ-dev/writ/internal/apitypes"
)

// Scans joins `writ scan` findings with what the deployment knows.
type Scans interface {
	// FingerprintKey returns the deployment's fingerprint key.
	FingerprintKey(ctx context.Context) (apitypes.FingerprintKey, error)
	// ReportScan ranks a scan's findings by blast radius and records them
	// (posture, the lineage graph); errors are apitypes.Error for what
	// the caller must fix.
	ReportScan(ctx context.Context, actor string, req apitypes.ScanReportRequest) (apitypes.ScanReportResponse, error)
}

func (a *API) fingerprintKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.c.Scans.FingerprintKey(r.Context())
	if err != nil {
		a.fail(w, r, "fingerprint key", err)
		return
	}
	WriteJSON(w, http.StatusOK, k)
}

func (a *API) reportScan(w http.ResponseWriter, r *http.Request) {
	var req apitypes.ScanReportRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	resp, err := a.c.Scans.ReportScan(r.Context(), Actor(r.Context()), req)
	if err != nil {
		a.fail(w, r, "report scan", err)
		return
	}
	WriteJSON(w, http.StatusOK, resp)
}
