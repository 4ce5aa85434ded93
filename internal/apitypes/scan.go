package apitypes

import (
	"time"

	"github.com/writ-dev/writ/internal/scan"
)

// The findings of `writ scan` are their own wire form: scan.Finding holds
// no secret value (a keyed fingerprint, rule, place, commit), and
// scan.Ranked adds the blast radius.
type (
	ScanFinding = scan.Finding
	ScanRanked  = scan.Ranked
)

// FingerprintKey is GET /v1/scan/key: the deployment's fingerprint key
// (base64), which `writ scan --report` fingerprints under so that its
// findings join with brokered and discovered credentials, and its id.
type FingerprintKey struct {
	Key   string `json:"key"`
	KeyID string `json:"key_id"`
}

// ScanReportRequest is the body of POST /v1/scan/findings: the findings
// of one scan of Target (a repository or directory name), fingerprinted
// under the key KeyID names. A report replaces the previous one of the
// same target.
type ScanReportRequest struct {
	Target   string        `json:"target"`
	KeyID    string        `json:"key_id"`
	Findings []ScanFinding `json:"findings"`
}

// ScanReportResponse is the answer: the findings ranked by blast radius,
// widest first (docs/scan.md#blast-radius).
type ScanReportResponse struct {
	Target   string       `json:"target"`
	Time     time.Time    `json:"time"`
	Findings []ScanRanked `json:"findings"`
}
