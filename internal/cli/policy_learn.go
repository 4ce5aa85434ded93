package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/learn"
)

// learnWindow are the flags that select the recorded accesses learn and
// replay read. Both read the data directory's store directly (read-only,
// like `writ audit verify --db`): a 30-day window can be millions of
// events, which a local streaming read handles in seconds and an API page
// walk would not, and a candidate policy is checked before any server
// sees it.
type learnWindow struct {
	db, since, until, identity, service string
}

func (w *learnWindow) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&w.db, "db", "", "store file whose audit log to read (default DATA_DIR/writ.db)")
	cmd.Flags().StringVar(&w.since, "since", "30d", `oldest events to read: a duration before now ("30d", "12h") or an RFC 3339 time; "" for all`)
	cmd.Flags().StringVar(&w.until, "until", "", "read events before this RFC 3339 time or duration before now (default: up to now)")
	cmd.Flags().StringVar(&w.identity, "identity", "", "only SPIFFE IDs matching this pattern (* within a segment, trailing /** for a subtree)")
	cmd.Flags().StringVar(&w.service, "service", "", "only accesses to this service")
}

func (w *learnWindow) filter(now time.Time) (learn.Filter, error) {
	since, err := learn.ParseSince(w.since, now)
	if err != nil {
		return learn.Filter{}, fmt.Errorf("--since: %w", err)
	}
	until, err := learn.ParseSince(w.until, now)
	if err != nil {
		return learn.Filter{}, fmt.Errorf("--until: %w", err)
	}
	f := learn.Filter{Since: since, Until: until, Identity: w.identity, Service: w.service}
	if w.identity != "" {
		if err := learn.CheckIdentityPattern(w.identity); err != nil {
			return f, fmt.Errorf("--identity: %w", err)
		}
	}
	return f, nil
}

func newPolicyLearnCmd(g *globals) *cobra.Command {
	var (
		w        learnWindow
		dir      string
		classes  string
		minHex   int
		headroom float64
		minRate  int
		noRate   bool
		o        learn.Options
	)
	cmd := &cobra.Command{
		Use:   "learn --dir DIR [--since 30d] [--identity PATTERN] [--service NAME] [--observe [--replaces NAME]]",
		Short: "Write AccessPolicy YAML that allows the traffic the audit log recorded, and nothing more",
		Long: `Read the access events of the audit log in the data directory's store
(read-only; a running server may keep writing) and write, per identity, an
AccessPolicy file DIR/learned-NAME.yaml that allows the methods and paths it
was observed calling, with a rate limit from its busiest minute; the MCP
tools, resources and prompts it called, with conditions on their recorded
arguments (enumerations of at most --max-values values, common directories
of paths, lengths and ranges); the token audiences and scopes it asked for;
and the task purposes it opened, with a budget from the most calls a closed
task made. Path segments that are values (numbers, UUIDs, dates, long hex
strings) become "*" (--generalize); --collapse N also merges more than N
paths that differ in one segment. Every rule carries its evidence as a
comment. --observe writes the policies in observe mode (recorded, not
enforced, until ` + "`writ policy promote`" + `). Denied
traffic is never learned: DIR/LEARNED.txt lists it, with the digest of the
files. The same log gives byte-identical files; apply exactly what you
reviewed with writ apply -f DIR --expect-digest DIGEST.
See docs/policy-learning.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return errors.New("--dir DIR is required: the directory to write the policy files to")
			}
			gen, err := learn.ParseClasses(classes, minHex)
			if err != nil {
				return fmt.Errorf("--generalize: %w", err)
			}
			if headroom < 1 {
				return fmt.Errorf("--headroom %v: must be at least 1 (the limit is the observed peak times it)", headroom)
			}
			f, err := w.filter(time.Now())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			db, err := g.auditDB(ctx, w.db, "")
			if err != nil {
				return err
			}
			defer db.Close()
			if o.Collapse == 1 || o.Collapse < 0 {
				return fmt.Errorf("--collapse %d: use 0 (never) or at least 2 (merge more than N paths)", o.Collapse)
			}
			if len(o.Replaces) > 0 && !o.Observe {
				return errors.New("--replaces needs --observe: only a policy in observe mode replaces others")
			}
			o.Generalizer, o.Headroom, o.MinRate, o.NoRate = gen, headroom, minRate, noRate
			l, err := learn.Learn(ctx, db.Audit(), f, o)
			if err != nil {
				return err
			}
			files, denied := l.Files(), l.Denied()
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create directory %s: %w", dir, err)
			}
			for _, fl := range files {
				if err := os.WriteFile(filepath.Join(dir, fl.Name), fl.Content, 0o644); err != nil {
					return fmt.Errorf("write policy: %w", err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "LEARNED.txt"), learn.Report(files, denied), 0o644); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			for _, fl := range files {
				fmt.Fprintf(g.stdout, "wrote %s\n", filepath.Join(dir, fl.Name))
			}
			fmt.Fprintf(g.stdout, "%d events read, %d policies, %d denied groups listed in %s\n",
				l.Events(), len(files), len(denied), filepath.Join(dir, "LEARNED.txt"))
			fmt.Fprintf(g.stdout, "digest %s\n", learn.Digest(files))
			return nil
		},
	}
	w.flags(cmd)
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the policy files and LEARNED.txt to")
	cmd.Flags().StringVar(&classes, "generalize", "all", "path segment classes that become *: numeric, uuid, date, hex, all or none (comma-separated)")
	cmd.Flags().IntVar(&minHex, "min-hex", 16, "shortest run of hex digits the hex class generalizes")
	cmd.Flags().Float64Var(&headroom, "headroom", 2, "rate limit = observed peak calls per sliding minute times this")
	cmd.Flags().IntVar(&minRate, "min-rate", 10, "smallest rate limit per minute a rule gets")
	cmd.Flags().BoolVar(&noRate, "no-rate", false, "write rules without rate limits")
	cmd.Flags().IntVar(&o.MaxValues, "max-values", 8, "most distinct values of an MCP argument enumerated in a condition")
	cmd.Flags().IntVar(&o.MaxValueLen, "max-value-len", 128, "longest MCP argument value (bytes) enumerated")
	cmd.Flags().IntVar(&o.Collapse, "collapse", 0, "merge more than N paths of a service that differ in one segment into one rule with * (0: never)")
	cmd.Flags().BoolVar(&o.Observe, "observe", false, "write the policies with mode: observe")
	cmd.Flags().StringArrayVar(&o.Replaces, "replaces", nil, "with --observe: the enforcing policy the learned ones replace (repeatable)")
	return cmd
}

func newPolicyReplayCmd(g *globals) *cobra.Command {
	var (
		w        learnWindow
		files    []string
		examples int
		failAny  bool
		out      *string
	)
	cmd := &cobra.Command{
		Use:   "replay -f DIR [--since 30d] [--identity PATTERN] [--service NAME] [--fail-on-change]",
		Short: "Show what a candidate policy set would have changed on recorded traffic",
		Long: `Compile the AccessPolicy files given with -f exactly as the server compiles
applied policies, re-decide every recorded access of the window with them
(rate limits charged at the recorded times), and report the accesses whose
decision would change: newly denied, newly allowed and approval newly
required, per identity and deciding rule, with counts and examples.
Policies in observe mode (spec.mode: observe) decide as if promoted, with
the policies they replace left out: replay shows what promoting them would
change. Exit status 1 when anything would be newly denied, or with
--fail-on-change when any decision would change (for CI: a policy change
that is meant to change nothing). Headers, query values
and the groups of on-behalf-of users are not recorded; conditions on them
see them empty. See docs/policy-learning.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			if len(files) == 0 {
				return errors.New("-f FILE|DIR is required: the candidate AccessPolicy files")
			}
			snap, err := learn.CompileFiles(files...)
			if err != nil {
				return err
			}
			f, err := w.filter(time.Now())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			db, err := g.auditDB(ctx, w.db, "")
			if err != nil {
				return err
			}
			defer db.Close()
			rep, err := learn.Replay(ctx, db.Audit(), f, snap, examples)
			if err != nil {
				return err
			}
			if *out == "json" {
				if err := printJSON(g.stdout, rep); err != nil {
					return err
				}
			} else {
				printReplay(g, &rep)
			}
			if n := rep.Changed(); failAny && n > 0 {
				return exitCode(1, fmt.Errorf("%s would be decided differently (--fail-on-change)", plural(int(n), "recorded decision", "recorded decisions")))
			}
			if n := rep.Count(learn.NewlyDenied); n > 0 {
				return exitCode(1, fmt.Errorf("%s would be newly denied", plural(int(n), "recorded decision", "recorded decisions")))
			}
			return nil
		},
	}
	w.flags(cmd)
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "candidate policy file or directory (repeatable)")
	cmd.Flags().IntVar(&examples, "examples", 3, "examples kept per change")
	cmd.Flags().BoolVar(&failAny, "fail-on-change", false, "exit 1 when any recorded decision would change (newly allowed or held included)")
	out = outputFlag(cmd)
	return cmd
}

func printReplay(g *globals, rep *learn.ReplayReport) {
	fmt.Fprintf(g.stdout, "%d accesses, %d token exchanges and %d task openings re-decided, %d unchanged, %d newly denied, %d newly allowed, %d newly need approval, %d tasks newly over budget, %d skipped (no caller or service, or refused before policy)\n",
		rep.Accesses, rep.Tokens, rep.Tasks, rep.Unchanged, rep.Count(learn.NewlyDenied), rep.Count(learn.NewlyAllowed),
		rep.Count(learn.ApprovalRequired), rep.Count(learn.BudgetExceeded), rep.Skipped)
	for _, c := range rep.Changes {
		rule := "default deny"
		if c.Rule != "" {
			rule = c.Policy + "/" + c.Rule
		}
		fmt.Fprintf(g.stdout, "\n%s  %s  by %s: %d\n", strings.ToUpper(strings.ReplaceAll(c.Category, "_", " ")), c.SpiffeID, rule, c.Count)
		for _, e := range c.Examples {
			was := e.Was
			if e.WasRule != "" {
				was += " by " + e.WasRule
			}
			fmt.Fprintf(g.stdout, "  #%d %s %s (was %s)\n", e.Index, e.Time, replayWhat(&e), was)
			if e.Reason != "" && (c.Category == learn.NewlyDenied || c.Category == learn.BudgetExceeded) {
				fmt.Fprintf(g.stdout, "     %s\n", e.Reason)
			}
		}
	}
}

// replayWhat describes the recorded decision of e.
func replayWhat(e *learn.Example) string {
	switch e.Kind {
	case apitypes.ReplayToken:
		s := "token for " + e.Audience
		if e.Scopes != "" {
			s += " scopes " + e.Scopes
		}
		return s + " (task " + e.Task + ")"
	case apitypes.ReplayTask:
		if e.Calls > 0 {
			return fmt.Sprintf("task %s %q made %d calls, budget now %d", e.Task, e.Purpose, e.Calls, e.Budget)
		}
		s := fmt.Sprintf("open task %q for %s", e.Purpose, e.Audience)
		if e.Scopes != "" {
			s += " scopes " + e.Scopes
		}
		return s
	case apitypes.ReplayMCP:
		obj := "tools/call " + e.Tool
		switch {
		case e.Resource != "":
			obj = "resources/read " + e.Resource
		case e.Prompt != "":
			obj = "prompts/get " + e.Prompt
		}
		return "mcp " + e.Service + " " + obj
	}
	return e.Service + " " + e.Method + " " + e.Path
}
