package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/writ-dev/writ/internal/secrets"
)

// Report is what a scan prints as JSON, and what --baseline reads back.
type Report struct {
	Target   string    `json:"target"`
	Findings []Finding `json:"findings"`
}

// WriteTable prints findings as an aligned table, one line each.
func WriteTable(w io.Writer, fs []Finding) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	history := false
	for _, f := range fs {
		if f.Commit != "" {
			history = true
		}
	}
	validated := anyValidated(fs)
	valid := func(f *Finding) string {
		if !validated {
			return ""
		}
		return "\t" + f.Validation.String()
	}
	head := "SEVERITY\tRULE\tLOCATION\tKIND\tFINGERPRINT"
	if history {
		head = "SEVERITY\tRULE\tLOCATION\tCOMMIT\tAUTHOR\tDATE\tAT HEAD\tFINGERPRINT"
	}
	if validated {
		head += "\tVALIDITY"
	}
	fmt.Fprintln(tw, head)
	for _, f := range fs {
		sev := string(f.Severity)
		if f.New {
			sev += " (new)"
		}
		loc := fmt.Sprintf("%s:%d", f.Path, f.Line)
		if history {
			at := "no"
			if f.AtHEAD != nil && *f.AtHEAD {
				at = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s%s\n", sev, f.RuleID, loc, short(f.Commit), f.Author,
				f.Date.UTC().Format("2006-01-02"), at, short(f.Fingerprint), valid(&f))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s%s\n", sev, f.RuleID, loc, f.Kind, short(f.Fingerprint), valid(&f))
	}
	if len(fs) == 0 {
		fmt.Fprintln(tw, "no secrets found")
	}
	return tw.Flush()
}

// anyValidated reports whether a finding carries a live validation (the
// tables then have a VALIDITY column).
func anyValidated(fs []Finding) bool {
	for i := range fs {
		if fs[i].Validation != nil {
			return true
		}
	}
	return false
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// WriteJSON prints the report as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// SARIF 2.1.0, as much of it as a scan's results need.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	SemVer         string      `json:"semanticVersion,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string       `json:"id"`
	ShortDescription sarifMessage `json:"shortDescription"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	Level               string            `json:"level"`
	Message             sarifMessage      `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Properties          map[string]any    `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           sarifRegion   `json:"region"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

// WriteSARIF prints findings as a SARIF 2.1.0 log with one run. Each
// result's partialFingerprints holds the keyed fingerprint, so that code
// scanning services track a secret across scans.
func WriteSARIF(w io.Writer, fs []Finding, rules []secrets.RuleInfo) error {
	desc := map[string]string{}
	for _, r := range rules {
		desc[r.ID] = r.Description
	}
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "writ scan", Version: numericVersion(toolVersion()), SemVer: toolVersion(), InformationURI: "https://github.com/writ-dev/writ"}}}
	seen := map[string]bool{}
	run.Results = []sarifResult{}
	run.Tool.Driver.Rules = []sarifRule{}
	for _, f := range fs {
		if !seen[f.RuleID] {
			seen[f.RuleID] = true
			d := desc[f.RuleID]
			if d == "" {
				d = f.Description
			}
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{ID: f.RuleID, ShortDescription: sarifMessage{Text: d}})
		}
		level := "warning"
		switch f.Severity {
		case secrets.SeverityHigh:
			level = "error"
		case secrets.SeverityLow:
			level = "note"
		}
		msg := fmt.Sprintf("%s secret (%s) in %s", f.RuleID, f.Severity, f.Kind)
		props := map[string]any{"kind": string(f.Kind)}
		if f.Validation != nil {
			props["validity"] = string(f.Validation.State)
			props["validity_reason"] = f.Validation.Reason
			if f.Validation.Provider != "" {
				props["validity_provider"] = f.Validation.Provider
			}
		}
		if f.Commit != "" {
			msg += " first written in commit " + f.Commit
			props["commit"] = f.Commit
			props["author"] = f.Author
			props["date"] = f.Date
			props["last_commit"] = f.LastCommit
			if f.AtHEAD != nil {
				props["at_head"] = *f.AtHEAD
			}
		}
		run.Results = append(run.Results, sarifResult{
			RuleID:  f.RuleID,
			Level:   level,
			Message: sarifMessage{Text: msg},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
				ArtifactLocation: sarifArtifact{URI: sarifURI(f.Path)},
				Region:           sarifRegion{StartLine: max(f.Line, 1), StartColumn: f.Column},
			}}},
			PartialFingerprints: map[string]string{"writSecret/v1": f.Fingerprint},
			Properties:          props,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{run},
	})
}

// sarifURI escapes a relative path as a URI reference.
func sarifURI(p string) string {
	r := strings.NewReplacer("%", "%25", " ", "%20", "#", "%23", "?", "%3F")
	return r.Replace(p)
}

// toolVersion is writ's module version without its "v" ("0.0.0-devel"
// for a build from a work tree): SARIF consumers compare logs of the
// same tool version.
func toolVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return "0.0.0-devel"
}

// numericVersion is v up to its pre-release or build suffix ("1.2.3").
func numericVersion(v string) string {
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		return v[:i]
	}
	return v
}
