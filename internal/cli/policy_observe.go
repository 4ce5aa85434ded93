package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
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
	var digest string
	cmd := &cobra.Command{
		Use:   "promote NAME --expect-digest sha256:...",
		Short: "Make a policy in observe mode enforcing (exactly the version reviewed)",
		Long: `Make the AccessPolicy NAME, applied with spec.mode: observe, enforcing: the
server stores it as its next version without mode and replaces, deletes the
policies it replaced (spec.replaces), records a policy.promoted audit event
with what was observed, and installs the new set. Nothing changes unless
the set compiles and the observed version's digest is --expect-digest, which
` + "`writ policy observe NAME`" + ` shows beside the counts you review: a version
applied after your review is refused. Run ` + "`writ policy replay -f FILE`" + ` on
the policy file first to see what it would have changed on the recorded
traffic. See docs/policy-learning.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			if digest == "" {
				return errors.New("--expect-digest is required: the digest `writ policy observe " + args[0] + "` shows for the version you reviewed")
			}
			resp, err := c.PromotePolicy(cmd.Context(), args[0], digest)
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, resp)
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
	outputFlag(cmd)
	return cmd
}
