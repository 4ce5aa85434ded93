package mcp

import (
	"fmt"
	"strings"

	"github.com/writ-dev/writ/internal/mcplint"
)

// LintWith returns a [Pinner.Lint] function over l: a tool with a high
// finding is quarantined, its findings (rule and field; not the evidence,
// which may hold a secret) the reason.
func LintWith(l *mcplint.Linter) func(Descriptor) (bool, string) {
	return func(d Descriptor) (bool, string) {
		fs := l.LintTool(&mcplint.Tool{Name: d.Name, Title: d.Title, Description: d.Description,
			InputSchema: d.InputSchema, OutputSchema: d.OutputSchema, Annotations: d.Annotations})
		var high []string
		for _, f := range fs {
			if f.Severity == mcplint.High {
				high = append(high, fmt.Sprintf("%s in %s", f.RuleID, f.Field))
			}
		}
		return len(high) > 0, strings.Join(high, "; ")
	}
}
