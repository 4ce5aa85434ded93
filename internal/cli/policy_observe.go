package cli

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/learn"
)

func newPolicyObserveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "observe [NAME]",
		Short: "Show the policies of a running server: mode, digest and what observe mode saw",
		Long: `List the AccessPolicies of the server (or one, with NAME) with their mode
and digest. For a policy in observe mode (spec.mode: observe), show what the
server observed since it installed that version: decisions whose caller the
policy names, and how many the observed set would have decided otherwise —
would_deny (allowed now, denied once promoted), would_hold (allowed now,
held for approval once promoted) and would_allow (denied now). Every such
access's audit event carries details observe, observe_policy and
observe_rule (writ audit search). See docs/policy-learning.md.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			var list []apitypes.PolicyStatus
			if len(args) == 1 {
				p, err := c.Policy(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				list = []apitypes.PolicyStatus{p}
			} else if list, err = c.Policies(cmd.Context()); err != nil {
				return err
			}
			if out == "json" {
				if len(args) == 1 {
					return printJSON(g.stdout, list[0])
				}
				return printJSON(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tMODE\tRULES\tDECISIONS\tWOULD_DENY\tWOULD_HOLD\tWOULD_ALLOW\tSINCE\tREPLACES")
			for _, p := range list {
				if o := p.Observe; o != nil {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", p.Name, p.Version, p.Mode, p.Rules,
						o.Decisions, o.WouldDeny, o.WouldHold, o.WouldAllow, o.Since.UTC().Format(time.RFC3339), dash(strings.Join(p.Replaces, ",")))
				} else {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t-\t-\t-\t-\t-\t-\n", p.Name, p.Version, p.Mode, p.Rules)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, p := range list {
				if p.Mode == "observe" {
					fmt.Fprintf(g.stdout, "\nobserving %s@%d, digest %s\n  promote with: writ policy promote %s --expect-digest %s\n",
						p.Name, p.Version, p.Digest, p.Name, p.Digest)
				}
			}
			return nil
		},
	}
	outputFlag(cmd)
	return cmd
}

func newPolicyPromoteCmd(g *globals) *cobra.Command {
	var (
		digest                     string
		yes, dryRun, acceptDenials bool
	)
	cmd := &cobra.Command{
		Use:   "promote NAME --expect-digest sha256:... [--dry-run | --yes [--accept-denials]]",
		Short: "Show what enforcing an observed policy would change, then make it enforcing (exactly the version reviewed)",
		Long: `Make the AccessPolicy NAME, applied with spec.mode: observe, enforcing.

First the server replays the traffic recorded since that version was
applied (accesses, token exchanges and task openings) with the set the
promotion would leave — NAME enforcing, the policies it replaces deleted —
and promote prints what would change: newly denied, newly held for
approval, newly allowed, tasks newly over budget (as ` + "`writ policy replay`" + `).
Then it asks for confirmation on a terminal; elsewhere it needs --yes. When
anything would be newly denied, --yes alone refuses: add --accept-denials
to break that traffic knowingly. --dry-run shows the replay and changes
nothing (exit 1 when anything would be newly denied).

Promoting stores the policy as its next version without mode and
replaces, deletes the policies it replaced, records a policy.promoted
audit event with what was observed, and installs the new set. Nothing
changes unless the set compiles and the observed version's digest is
--expect-digest, which ` + "`writ policy observe NAME`" + ` shows beside the counts
you review: a version applied after your review is refused, by the replay
and again by the promotion. See docs/policy-learning.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			name := args[0]
			if digest == "" {
				return errors.New("--expect-digest is required: the digest `writ policy observe " + name + "` shows for the version you reviewed")
			}
			if dryRun && yes {
				return errors.New("--dry-run changes nothing; drop --yes, or drop --dry-run to promote")
			}
			if acceptDenials && !yes {
				return errors.New("--accept-denials goes with --yes (on a terminal, answer the question instead)")
			}
			rp, err := c.ReplayPolicy(cmd.Context(), name, digest)
			if err != nil {
				return err
			}
			denied := rp.Report.Count(learn.NewlyDenied)
			if out != "json" {
				fmt.Fprintf(g.stdout, "replay of %s@%d (%s) on the traffic recorded since %s:\n", rp.Policy, rp.Version, rp.Digest,
					rp.Since.UTC().Format(time.RFC3339))
				printReplay(g, &rp.Report)
				fmt.Fprintln(g.stdout)
			}
			if dryRun {
				if out == "json" {
					if err := printJSON(g.stdout, rp); err != nil {
						return err
					}
				}
				if denied > 0 {
					return exitCode(1, fmt.Errorf("%s would be newly denied (--dry-run: nothing changed)", plural(int(denied), "recorded decision", "recorded decisions")))
				}
				return nil
			}
			switch {
			case yes && denied > 0 && !acceptDenials:
				return exitCode(1, fmt.Errorf("not promoted: %s would be newly denied (above); pass --accept-denials with --yes to break them knowingly, or change the policy and review again",
					plural(int(denied), "recorded decision", "recorded decisions")))
			case yes:
			case !isTerminal(g.stdin):
				return exitCode(1, errors.New("not promoted: standard input is not a terminal to confirm on; review the replay above and pass --yes"))
			default:
				q := fmt.Sprintf("Promote %s@%d to enforcing", rp.Policy, rp.Version)
				if denied > 0 {
					q += fmt.Sprintf(", newly denying %s", plural(int(denied), "recorded decision", "recorded decisions"))
				}
				fmt.Fprintf(g.stdout, "%s? [y/N] ", q)
				answer, _ := bufio.NewReader(g.stdin).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return exitCode(1, errors.New("not promoted: not confirmed"))
				}
			}
			resp, err := c.PromotePolicy(cmd.Context(), name, digest)
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, struct {
					Replay    apitypes.PolicyReplay    `json:"replay"`
					Promotion apitypes.PromoteResponse `json:"promotion"`
				}{rp, resp})
			}
			o := resp.Observed
			fmt.Fprintf(g.stdout, "promoted %s@%d (from observed version %d): enforcing\n", resp.Policy.Name, resp.Policy.Version, resp.FromVersion)
			fmt.Fprintf(g.stdout, "observed since %s: %d decisions, %d would deny, %d would hold, %d would allow\n",
				o.Since.UTC().Format(time.RFC3339), o.Decisions, o.WouldDeny, o.WouldHold, o.WouldAllow)
			for _, r := range resp.Replaced {
				fmt.Fprintf(g.stdout, "deleted %s (replaced)\n", r)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&digest, "expect-digest", "", "digest of the observed version you reviewed (required)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the replay only; change nothing")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "promote without asking (needed when standard input is not a terminal)")
	cmd.Flags().BoolVar(&acceptDenials, "accept-denials", false, "with --yes: promote even though the replay shows newly denied traffic")
	outputFlag(cmd)
	return cmd
}
