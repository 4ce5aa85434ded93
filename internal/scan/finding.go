package scan

import (
	"time"

	"github.com/writ-dev/writ/internal/secrets"
)

// Finding is one secret found. It never holds the secret's value.
type Finding struct {
	RuleID      string           `json:"rule_id"`
	Description string           `json:"description"`
	Severity    secrets.Severity `json:"severity"`
	Kind        Kind             `json:"kind"`
	Path        string           `json:"path"`
	Line        int              `json:"line"`
	Column      int              `json:"column"`
	// EndLine and EndColumn are where the value ends (inclusive, 1-based;
	// in the manifest for a Kubernetes Secret's base64 value).
	EndLine   int `json:"end_line"`
	EndColumn int `json:"end_column"`
	// Encoding is "base64" when the value is written base64-encoded (a
	// Kubernetes Secret's data), else empty.
	Encoding string `json:"encoding,omitempty"`
	// Fingerprint is hex HMAC-SHA256 of the value under the scan's key.
	Fingerprint string `json:"fingerprint"`
	// Hosts are the host names written within hostWindow lines of the
	// secret (URLs, host: and *_HOST= settings), at most maxHosts: what it
	// may authenticate to, for its blast radius.
	Hosts []string `json:"hosts,omitempty"`
	// Validation is the live validation's answer (with --validate only).
	Validation *Validation `json:"validation,omitempty"`
	// New is set when a baseline was given and does not hold the finding.
	New bool `json:"new,omitempty"`

	// History fields, set by [Scanner.Git]. Commit, Author and Date are
	// the first commit that wrote the secret (Path and Line are in its
	// blob); LastCommit is the last commit that wrote a blob holding it.
	Commit     string    `json:"commit,omitempty"`
	Author     string    `json:"author,omitempty"`
	Date       time.Time `json:"date,omitzero"`
	LastCommit string    `json:"last_commit,omitempty"`
	// AtHEAD reports whether HEAD's tree still holds the secret.
	AtHEAD *bool `json:"at_head,omitempty"`
	// Paths counts the distinct paths whose blobs held the secret.
	Paths int `json:"paths,omitempty"`
}

// severityRank orders severities; unknown ones rank lowest.
func severityRank(s secrets.Severity) int {
	switch s {
	case secrets.SeverityHigh:
		return 3
	case secrets.SeverityMedium:
		return 2
	case secrets.SeverityLow:
		return 1
	}
	return 0
}

// AtLeast reports whether f's severity is at or above min.
func (f Finding) AtLeast(min secrets.Severity) bool {
	return severityRank(f.Severity) >= severityRank(min)
}

// ParseSeverity parses a --fail-on value: high, medium, low or none (which
// returns "" and fails on nothing).
func ParseSeverity(s string) (secrets.Severity, bool) {
	switch s {
	case "high", "medium", "low":
		return secrets.Severity(s), true
	case "none", "":
		return "", true
	}
	return "", false
}
