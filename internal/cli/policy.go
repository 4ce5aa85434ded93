package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
)

// newPolicyCmd is `writ policy`: offline tools over AccessPolicy and
// PolicyTest files. None of them needs a server.
func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Validate, test, evaluate, explain, learn and replay least-agency policies; observe and promote",
		Long: `Work with AccessPolicy and PolicyTest documents locally, without a server
(validate, test, eval, explain), learn policy from and replay it against the
audit log of a data directory (learn, replay), and see and promote policies
in observe mode on a running server (observe, promote).
See docs/policy.md for the policy schema and the request format, and
docs/policy-learning.md for learning, replay and observe mode.`,
	}
	cmd.AddCommand(newPolicyValidateCmd(g), newPolicyTestCmd(g), newPolicyEvalCmd(g), newPolicyExplainCmd(g),
		newPolicyLearnCmd(g), newPolicyReplayCmd(g), newPolicyObserveCmd(g), newPolicyPromoteCmd(g))
	return cmd
}

// validateReport is the JSON output of `writ policy validate`.
type validateReport struct {
	Valid    bool                `json:"valid"`
	Errors   []string            `json:"errors"`
	Warnings []policy.Warning    `json:"warnings"`
	Policies []policy.PolicyInfo `json:"policies"`
	Tests    int                 `json:"tests"`
}

func newPolicyValidateCmd(g *globals) *cobra.Command {
	var out *string
	cmd := &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check policy files: schema, patterns, CEL conditions, labels",
		Long: `Check every AccessPolicy and PolicyTest document in the files and
directories given. Each problem is printed as FILE:LINE:COLUMN: FIELD: MESSAGE.
Warnings (rules that can never apply, constant conditions) do not fail.
Exit status 1 when any document has an error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			rep := validateReport{Errors: []string{}, Warnings: []policy.Warning{}, Policies: []policy.PolicyInfo{}}
			var all []resource.Document
			for _, p := range args {
				docs, err := resource.Load(p)
				if err != nil {
					rep.Errors = append(rep.Errors, err.Error())
					continue
				}
				for _, d := range docs {
					switch d.Kind {
					case resource.KindAccessPolicy:
						warns, err := policy.CheckDocument(d)
						rep.Warnings = append(rep.Warnings, warns...)
						if err != nil {
							rep.Errors = append(rep.Errors, splitErrors(err)...)
							continue
						}
						all = append(all, d)
					case resource.KindPolicyTest:
						if err := policy.ValidateTestDocument(d); err != nil {
							rep.Errors = append(rep.Errors, splitErrors(err)...)
							continue
						}
						rep.Tests++
					}
				}
			}
			if len(rep.Errors) == 0 {
				// Problems between documents, such as duplicate names.
				snap, err := policy.Compile(all, nil)
				if err != nil {
					rep.Errors = append(rep.Errors, splitErrors(err)...)
				} else {
					rep.Policies = snap.Policies()
				}
			}
			rep.Valid = len(rep.Errors) == 0
			if *out == "json" {
				if err := printJSON(g.stdout, rep); err != nil {
					return err
				}
			} else {
				for _, e := range rep.Errors {
					fmt.Fprintln(g.stderr, e)
				}
				for _, w := range rep.Warnings {
					fmt.Fprintln(g.stderr, "warning: "+w.String())
				}
				if rep.Valid {
					rules := 0
					for _, p := range rep.Policies {
						rules += p.Rules
					}
					fmt.Fprintf(g.stdout, "ok: %s (%s), %s, %s\n", plural(len(rep.Policies), "policy", "policies"),
						plural(rules, "rule", "rules"), plural(rep.Tests, "test document", "test documents"), plural(len(rep.Warnings), "warning", "warnings"))
				}
			}
			if !rep.Valid {
				return exitCode(1, fmt.Errorf("%s", plural(len(rep.Errors), "error", "errors")))
			}
			return nil
		},
	}
	out = outputFlag(cmd)
	return cmd
}

func newPolicyTestCmd(g *globals) *cobra.Command {
	var out *string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test PATH...",
		Short: "Run PolicyTest documents against the AccessPolicies beside them",
		Long: `Load every document from the files and directories given, compile the
AccessPolicy documents, and run each case of every PolicyTest document: its
request must get the expected effect (and rule, policy, reason, approvers or
max_ttl when given). Prints a line per failing case (-v: every case) and a
summary; exit status 1 when any case fails.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			docs, err := resource.Load(args...)
			if err != nil {
				return exitCode(1, err)
			}
			results, err := policy.RunTests(docs, time.Now())
			if err != nil {
				return exitCode(1, err)
			}
			if len(results) == 0 {
				return exitCode(1, fmt.Errorf("no PolicyTest documents in %s", strings.Join(args, ", ")))
			}
			failed := 0
			for _, r := range results {
				if !r.Pass {
					failed++
				}
			}
			if *out == "json" {
				if err := printJSON(g.stdout, results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					if r.Pass && !verbose {
						continue
					}
					status := "PASS"
					if !r.Pass {
						status = "FAIL"
					}
					fmt.Fprintf(g.stdout, "--- %s: %s/%s (%s)\n", status, r.Suite, r.Case, r.Position())
					for _, f := range r.Failures {
						fmt.Fprintf(g.stdout, "    %s\n", f)
					}
				}
				if failed == 0 {
					fmt.Fprintf(g.stdout, "PASS: %s\n", plural(len(results), "case", "cases"))
				} else {
					fmt.Fprintf(g.stdout, "FAIL: %d of %s failed\n", failed, plural(len(results), "case", "cases"))
				}
			}
			if failed > 0 {
				return exitCode(1, fmt.Errorf("%s failed", plural(failed, "policy test case", "policy test cases")))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print passing cases too")
	out = outputFlag(cmd)
	return cmd
}

// policyInputs are the flags eval and explain share.
type policyInputs struct {
	files []string
	input string
}

func (in *policyInputs) flags(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&in.files, "filename", "f", nil, "policy file or directory (repeatable)")
	cmd.Flags().StringVar(&in.input, "input", "", "request JSON file, or - for stdin (schema: docs/policy.md)")
}

// load compiles the policies and reads the request; a request without a
// time is asked about now.
func (in *policyInputs) load(g *globals) (*policy.Snapshot, *policy.Request, error) {
	if len(in.files) == 0 {
		return nil, nil, errors.New("-f PATH is required: the policy files to evaluate")
	}
	if in.input == "" {
		return nil, nil, errors.New("--input REQUEST.json is required (- reads stdin); see docs/policy.md for the format")
	}
	docs, err := resource.Load(in.files...)
	if err != nil {
		return nil, nil, err
	}
	snap, err := policy.Compile(docs, nil)
	if err != nil {
		return nil, nil, err
	}
	name, data := in.input, []byte(nil)
	if in.input == "-" {
		name = "<stdin>"
		data, err = io.ReadAll(io.LimitReader(g.stdin, policy.MaxRequestSize+1))
	} else {
		data, err = readFileLimited(in.input, policy.MaxRequestSize+1)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read request %s: %w", name, err)
	}
	req, err := policy.ParseRequest(name, data)
	if err != nil {
		return nil, nil, err
	}
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	return snap, req, nil
}

func newPolicyEvalCmd(g *globals) *cobra.Command {
	var in policyInputs
	cmd := &cobra.Command{
		Use:   "eval -f PATH --input REQUEST.json",
		Short: "Decide one request and print the decision as JSON",
		Long: `Compile the policies, decide the request, and print the decision as JSON:
effect (allow, deny or approval_required), policy, rule, reasons and
obligations. Rate limits are reported, not charged. The exit status is 0
whatever the effect; it is 1 when the policies or the request are invalid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			snap, req, err := in.load(g)
			if err != nil {
				return exitCode(1, err)
			}
			return printJSON(g.stdout, snap.Decide(req))
		},
	}
	in.flags(cmd)
	return cmd
}

func newPolicyExplainCmd(g *globals) *cobra.Command {
	var in policyInputs
	var out *string
	cmd := &cobra.Command{
		Use:   "explain -f PATH --input REQUEST.json",
		Short: "Show every rule considered for a request and why it matched or not",
		Long: `Decide the request like eval, then list every policy (whether its subjects
match the caller or the on-behalf-of user) and every rule of the policies
that apply, with its outcome: match, no-target (and which part of the target
differs), flow-not-met, condition-false or condition-error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			snap, req, err := in.load(g)
			if err != nil {
				return exitCode(1, err)
			}
			ex := snap.Explain(req)
			if *out == "json" {
				return printJSON(g.stdout, ex)
			}
			return ex.WriteText(g.stdout)
		},
	}
	in.flags(cmd)
	out = outputFlag(cmd)
	return cmd
}

// splitErrors turns a joined error into its lines.
func splitErrors(err error) []string {
	var out []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
