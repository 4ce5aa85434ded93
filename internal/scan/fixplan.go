package scan

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// FixStep is the plan that replaces one static secret with brokered
// injection: store the value in writ's broker, declare the Service it
// authenticates to, allow the agents that use it, and delete the line.
// It never holds the value: Extract is a shell pipeline that prints it
// from where it is written.
type FixStep struct {
	Finding    Finding
	Credential string
	// Extract prints the value (from the file, or from the commit for a
	// secret no longer at HEAD); empty when the value spans lines.
	Extract string
	// Put is the writ credential put command fed by Extract.
	Put string
	// Documents are a Service and an AccessPolicy skeleton, YAML.
	Documents string
	// Delete says which line to delete.
	Delete string
}

// upstreams maps rule id prefixes to the API host their credential opens
// and how it is sent; unknown rules get a placeholder to fill in.
var upstreams = []struct{ prefix, host, inject, header string }{
	{"github", "api.github.com", "bearer", ""},
	{"gitlab", "gitlab.com", "header", "PRIVATE-TOKEN"},
	{"stripe", "api.stripe.com", "bearer", ""},
	{"slack", "slack.com", "bearer", ""},
	{"openai", "api.openai.com", "bearer", ""},
	{"anthropic", "api.anthropic.com", "header", "x-api-key"},
}

// FixPlan returns one step per finding. repo is the repository for
// history findings no longer at HEAD ("" for a directory scan).
func FixPlan(fs []Finding, repo string) []FixStep {
	rs := make([]Ranked, len(fs))
	for i := range fs {
		rs[i].Finding = fs[i]
	}
	return FixPlanRanked(rs, repo)
}

// FixPlanRanked returns one step per ranked finding, in their order (the
// widest blast radius first): each AccessPolicy names the identities the
// blast radius found using or holding the secret.
func FixPlanRanked(rs []Ranked, repo string) []FixStep {
	steps := make([]FixStep, 0, len(rs))
	for _, r := range rs {
		f := r.Finding
		name := f.RuleID + "-" + short(f.Fingerprint)[:8]
		st := FixStep{Finding: f, Credential: name}
		if f.EndLine == f.Line && f.EndColumn >= f.Column && f.Column > 0 {
			src := "cat -- " + shellQuote(f.Path)
			if f.Commit != "" && (f.AtHEAD == nil || !*f.AtHEAD) {
				src = "git -C " + shellQuote(orDot(repo)) + " show " + f.Commit + ":" + shellQuote(f.Path)
			}
			st.Extract = fmt.Sprintf("%s | sed -n '%dp' | cut -c %d-%d | tr -d '\\n'", src, f.Line, f.Column, f.EndColumn)
			if f.Encoding == "base64" {
				st.Extract += " | base64 -d"
			}
		}
		host, inject, header := "CHANGE-ME.example", "bearer", ""
		for _, u := range upstreams {
			if strings.HasPrefix(f.RuleID, u.prefix) {
				host, inject, header = u.host, u.inject, u.header
			}
		}
		typ := "bearer"
		if inject == "header" {
			typ = "header"
		}
		subjectsNote := "The agents that use this secret: unknown without --report; name them."
		subjects := []string{"spiffe://writ.local/agent/CHANGE-ME"}
		var ids []string
		for _, id := range append(append([]string{}, r.Blast.UsedBy...), r.Blast.Holders...) {
			if strings.HasPrefix(id, "spiffe://") && !strings.ContainsAny(id, " ,[]{}#\"'") {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			slices.Sort(ids)
			subjects = slices.Compact(ids)
			subjectsNote = "The identities its blast radius found using or holding it (writ scan --report)."
		}
		st.Put = fmt.Sprintf("writ credential put %s --value-stdin --type %s", name, typ)
		cred := "{name: " + name + "}"
		if header != "" {
			cred = "{name: " + name + ", inject: header, header: " + header + "}"
		}
		st.Documents = fmt.Sprintf(`apiVersion: writ.dev/v1
kind: Service
metadata: {name: %[1]s}
spec:
  upstream: https://%[2]s
  match: {host: %[2]s}
  intercept: true
  credential: %[3]s
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: %[1]s}
spec:
  # %[4]s
  subjects: [%[5]s]
  rules:
    - name: use-%[1]s
      effect: allow
      targets:
        - http: {service: %[1]s, methods: [GET], paths: ["/**"]}
`, name, host, cred, subjectsNote, strings.Join(subjects, ", "))
		if f.AtHEAD != nil && !*f.AtHEAD {
			st.Delete = fmt.Sprintf("no longer at HEAD (written in %s): rotate it at the provider; it stays in history", short(f.Commit))
		} else {
			st.Delete = fmt.Sprintf("delete %s line %d, then rotate the secret at the provider", f.Path, f.Line)
		}
		steps = append(steps, st)
	}
	return steps
}

// WriteFixPlan prints the steps as a shell-commented plan.
func WriteFixPlan(w io.Writer, steps []FixStep) error {
	for i, st := range steps {
		f := st.Finding
		fmt.Fprintf(w, "# %d. %s (%s) in %s:%d, fingerprint %s\n", i+1, f.RuleID, f.Severity, f.Path, f.Line, short(f.Fingerprint))
		if st.Extract != "" {
			fmt.Fprintf(w, "%s | %s\n", st.Extract, st.Put)
		} else {
			fmt.Fprintf(w, "# the value spans lines: put it into a file F, then\n%s < F\n", st.Put)
		}
		fmt.Fprintf(w, "cat > %s.yaml <<'EOF'\n%sEOF\nwrit apply -f %s.yaml\n# %s\n\n", st.Credential, st.Documents, st.Credential, st.Delete)
	}
	_, err := fmt.Fprintf(w, "# %d step(s); nothing was applied.\n", len(steps))
	return err
}

func orDot(s string) string {
	if s == "" {
		return "."
	}
	return s
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
