package mcplint

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Output formats of [Run].
const (
	FormatText  = "text"
	FormatJSON  = "json"
	FormatSARIF = "sarif"
)

// Run lints the tools/list document read from r and writes the report to w
// in format ("" or "text", "json", "sarif"). It reports whether any finding
// is high: the CLI exits 1 then. For SARIF, the artifact is named after r
// when r has a Name method (an *os.File), else "tools.json".
func Run(ctx context.Context, r io.Reader, format string, w io.Writer) (highFound bool, err error) {
	switch format {
	case "", FormatText, FormatJSON, FormatSARIF:
	default:
		return false, fmt.Errorf("lint mcp tools: unknown output format %q (use text, json or sarif)", format)
	}
	tools, err := Parse(r)
	if err != nil {
		return false, fmt.Errorf("lint mcp tools: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	l, err := New(Options{})
	if err != nil {
		return false, err
	}
	rep := l.Lint(tools)
	if err := ctx.Err(); err != nil {
		return false, err
	}
	switch format {
	case FormatJSON:
		err = rep.WriteJSON(w)
	case FormatSARIF:
		uri := "tools.json"
		if n, ok := r.(interface{ Name() string }); ok && n.Name() != "" {
			uri = n.Name()
		}
		err = rep.WriteSARIF(w, uri)
	default:
		err = rep.WriteText(w)
	}
	if err != nil {
		return false, fmt.Errorf("write lint report: %w", err)
	}
	return rep.HasHigh(), nil
}

// WriteText writes the report for a person: one line per finding and a
// summary.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%-6s %s  tool %q  %s [%d:%d]  %s\n", strings.ToUpper(string(f.Severity)), f.RuleID, f.Tool, f.Field, f.Start, f.End, f.Evidence)
	}
	fmt.Fprintf(&b, "tools: %d, flagged: %d; findings: %d high, %d medium, %d low\n",
		r.Tools, len(r.Flagged()), r.Count(High), r.Count(Medium), r.Count(Low))
	_, err := io.WriteString(w, b.String())
	return err
}

// jsonReport is the --output json document.
type jsonReport struct {
	Tools    int            `json:"tools"`
	Flagged  []string       `json:"flagged"`
	Summary  map[string]int `json:"summary"`
	Findings []Finding      `json:"findings"`
}

// WriteJSON writes the report as one JSON document: the number of tools,
// the names of the flagged ones (a high finding), counts by severity and
// the findings.
func (r Report) WriteJSON(w io.Writer) error {
	doc := jsonReport{
		Tools:    r.Tools,
		Flagged:  sortedKeys(r.Flagged()),
		Summary:  map[string]int{"high": r.Count(High), "medium": r.Count(Medium), "low": r.Count(Low)},
		Findings: r.Findings,
	}
	if doc.Findings == nil {
		doc.Findings = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

// SARIF 2.1.0 (OASIS), the parts written here.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		InformationURI string      `json:"informationUri,omitempty"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string         `json:"id"`
		Name                 string         `json:"name"`
		ShortDescription     sarifMessage   `json:"shortDescription"`
		FullDescription      sarifMessage   `json:"fullDescription"`
		DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
		Properties           map[string]any `json:"properties,omitempty"`
	}
	sarifConfig struct {
		Level string `json:"level"`
	}
	sarifMessage struct {
		Text string `json:"text"`
	}
	sarifResult struct {
		RuleID              string            `json:"ruleId"`
		RuleIndex           int               `json:"ruleIndex"`
		Level               string            `json:"level"`
		Message             sarifMessage      `json:"message"`
		Locations           []sarifLocation   `json:"locations"`
		PartialFingerprints map[string]string `json:"partialFingerprints,omitempty"`
	}
	sarifLocation struct {
		PhysicalLocation sarifPhysical  `json:"physicalLocation"`
		LogicalLocations []sarifLogical `json:"logicalLocations"`
	}
	sarifPhysical struct {
		ArtifactLocation sarifArtifact `json:"artifactLocation"`
		Region           *sarifRegion  `json:"region,omitempty"`
	}
	sarifArtifact struct {
		URI string `json:"uri"`
	}
	sarifRegion struct {
		StartLine int          `json:"startLine"`
		Snippet   sarifMessage `json:"snippet"`
	}
	sarifLogical struct {
		Name               string `json:"name"`
		FullyQualifiedName string `json:"fullyQualifiedName"`
		Kind               string `json:"kind"`
	}
)

// sarifLevel maps a severity to a SARIF level.
func sarifLevel(s Severity) string {
	switch s {
	case High:
		return "error"
	case Medium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the score GitHub code scanning reads from a rule's
// properties.
func securitySeverity(s Severity) string {
	switch s {
	case High:
		return "8.0"
	case Medium:
		return "5.0"
	}
	return "2.0"
}

// WriteSARIF writes the report as a SARIF 2.1.0 log. Each result is located
// in the artifact uri (the tools/list document) at the line of its tool's
// name, and logically at tools/NAME plus the field's pointer.
func (r Report) WriteSARIF(w io.Writer, uri string) error {
	rules := Rules()
	index := map[string]int{}
	driver := sarifDriver{Name: "writ mcp lint", InformationURI: "https://github.com/writ-dev/writ/blob/main/docs/mcp-lint.md"}
	for i, rule := range rules {
		index[rule.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID:                   rule.ID,
			Name:                 sarifName(rule.ID),
			ShortDescription:     sarifMessage{rule.ID},
			FullDescription:      sarifMessage{rule.Description},
			DefaultConfiguration: sarifConfig{sarifLevel(rule.Severity)},
			Properties: map[string]any{
				"tags":              []string{"security", "mcp", rule.Family},
				"security-severity": securitySeverity(rule.Severity),
			},
		})
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	for _, f := range r.Findings {
		loc := sarifLocation{
			PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: uri}},
			LogicalLocations: []sarifLogical{{
				Name:               f.Tool,
				FullyQualifiedName: "tools/" + pointerToken(f.Tool) + f.Field,
				Kind:               "member",
			}},
		}
		line := f.toolLine
		if line < 1 {
			line = 1
		}
		loc.PhysicalLocation.Region = &sarifRegion{StartLine: line, Snippet: sarifMessage{f.Evidence}}
		run.Results = append(run.Results, sarifResult{
			RuleID:    f.RuleID,
			RuleIndex: index[f.RuleID],
			Level:     sarifLevel(f.Severity),
			Message:   sarifMessage{fmt.Sprintf("tool %q, %s: %s", f.Tool, f.Field, f.Message)},
			Locations: []sarifLocation{loc},
			PartialFingerprints: map[string]string{
				"toolField/v1": f.Tool + "|" + f.Field + "|" + f.RuleID,
			},
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(sarifLog{
		Schema:  "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{run},
	})
}

// sarifName turns a rule id into a SARIF rule name (PascalCase words).
func sarifName(id string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(id, func(c rune) bool { return c == '/' || c == '-' }) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func pointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
