package server

import (
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/scan"
)

const testKeyID = "fpk_0011223344556677"

func goodReport() apitypes.ScanReportRequest {
	return apitypes.ScanReportRequest{Target: "repo", KeyID: testKeyID, Findings: []apitypes.ScanFinding{{
		RuleID: "github-pat", Severity: "high", Path: "a.env", Line: 1, Fingerprint: strings.Repeat("ab", 32), Hosts: []string{"api.github.com"}}}}
}

// Reports writ cannot join or store safely are refused, naming what is
// wrong.
func TestCheckScanReportHostile(t *testing.T) {
	if err := checkScanReport(ptr(goodReport()), testKeyID); err != nil {
		t.Fatalf("good report: %v", err)
	}
	validated := goodReport()
	validated.Findings[0].Validation = &scan.Validation{State: scan.Invalid, Provider: "github", Reason: "HTTP 401: bad credentials"}
	if err := checkScanReport(&validated, testKeyID); err != nil {
		t.Fatalf("validated report: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*apitypes.ScanReportRequest)
		want string
	}{
		{"no target", func(r *apitypes.ScanReportRequest) { r.Target = "" }, "target"},
		{"multi-line target", func(r *apitypes.ScanReportRequest) { r.Target = "a\nb" }, "target"},
		{"long target", func(r *apitypes.ScanReportRequest) { r.Target = strings.Repeat("x", 300) }, "target"},
		{"other key", func(r *apitypes.ScanReportRequest) { r.KeyID = "fpk_ffff" }, "not this deployment's"},
		{"no key id", func(r *apitypes.ScanReportRequest) { r.KeyID = "" }, "not this deployment's"},
		{"value as fingerprint", func(r *apitypes.ScanReportRequest) { r.Findings[0].Fingerprint = "ghp_notafingerprint" }, "not a hex HMAC-SHA256"},
		{"short fingerprint", func(r *apitypes.ScanReportRequest) { r.Findings[0].Fingerprint = "abcd" }, "not a hex HMAC-SHA256"},
		{"huge path", func(r *apitypes.ScanReportRequest) { r.Findings[0].Path = strings.Repeat("p", maxScanText+1) }, "over"},
		{"invalid UTF-8", func(r *apitypes.ScanReportRequest) { r.Findings[0].Author = "\xff\xfe" }, "UTF-8"},
		{"many hosts", func(r *apitypes.ScanReportRequest) { r.Findings[0].Hosts = make([]string, 17) }, "hosts"},
		{"unknown validation state", func(r *apitypes.ScanReportRequest) {
			r.Findings[0].Validation = &scan.Validation{State: "maybe", Reason: "x"}
		}, "validation state"},
		{"huge validation reason", func(r *apitypes.ScanReportRequest) {
			r.Findings[0].Validation = &scan.Validation{State: scan.Valid, Reason: strings.Repeat("r", maxScanText+1)}
		}, "validation's reason"},
		{"too many findings", func(r *apitypes.ScanReportRequest) {
			r.Findings = make([]scan.Finding, maxScanFindings+1)
		}, "at most"},
	} {
		r := goodReport()
		tc.edit(&r)
		err := checkScanReport(&r, testKeyID)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func FuzzCheckScanReport(f *testing.F) {
	f.Add("repo", testKeyID, "github-pat", "a.env", strings.Repeat("ab", 32), "api.github.com")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, target, keyID, rule, path, fp, host string) {
		r := apitypes.ScanReportRequest{Target: target, KeyID: keyID, Findings: []apitypes.ScanFinding{{RuleID: rule, Path: path, Fingerprint: fp, Hosts: []string{host}}}}
		if checkScanReport(&r, testKeyID) != nil {
			return
		}
		// What passes is storable: one-line bounded target, the key, a
		// 64-hex fingerprint, bounded UTF-8 fields.
		if target == "" || len(target) > 256 || strings.ContainsAny(target, "\x00\n") || keyID != testKeyID || len(fp) != 64 ||
			len(path) > maxScanText || len(host) > maxScanText {
			t.Fatalf("accepted %+v", r)
		}
	})
}
