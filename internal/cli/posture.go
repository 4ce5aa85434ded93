package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newPostureCmd(g *globals) *cobra.Command {
	var unusedAfter time.Duration
	cmd := &cobra.Command{
		Use:   "posture",
		Short: "Posture findings over the inventory, policy and lineage, ranked by blast radius",
		Long: `Evaluate writ's posture checks — agents and MCP servers without identity, static
credentials on hosts, services reached around writ, identities no policy names,
wildcard subjects, policies in observe mode, grants no request used within
--unused-after, identities whose accesses name no attested instance, entries
without an executable digest, long TTLs, identities without owner, CA keys not
hardware-backed, audit checkpoints not witnessed —
each with severity, evidence, the nodes affected, the blast radius (what the
principal or credential reaches, crown jewels first) and the fix.
See docs/posture.md.`,
		Example: `  writ posture
  writ posture --unused-after 2160h   # grants unused for 90 days
  writ posture -o json | jq '.findings[] | select(.severity=="critical")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			p, err := c.Posture(cmd.Context(), unusedAfter)
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(g.stdout, p)
			}
			for _, f := range p.Findings {
				fmt.Fprintf(g.stdout, "%-8s %s  [%s, blast radius %d]\n", strings.ToUpper(f.Severity), f.Title, f.Check, f.BlastRadius)
				for _, e := range f.Evidence {
					fmt.Fprintf(g.stdout, "         evidence: %s\n", e)
				}
				if len(f.Reaches) > 0 {
					fmt.Fprintf(g.stdout, "         reaches: %s\n", strings.Join(f.Reaches, ", "))
				}
				if len(f.CrownJewels) > 0 {
					fmt.Fprintf(g.stdout, "         crown jewels: %s\n", strings.Join(f.CrownJewels, ", "))
				}
				fmt.Fprintf(g.stdout, "         fix: %s\n", f.Fix)
			}
			fmt.Fprintf(g.stdout, "%d findings from %d checks\n", len(p.Findings), len(p.Checks))
			return nil
		},
	}
	outputFlag(cmd)
	cmd.Flags().DurationVar(&unusedAfter, "unused-after", 0, "a grant (allow or escalate rule) of a policy in force this long that decided nothing within it is a finding (default 720h, 30 days)")
	return cmd
}

func newTierCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tier",
		Short: "Which zero-trust tier for agents this deployment meets, with evidence per requirement",
		Long: `Evaluate the Foundation, Enterprise and Advanced requirements of zero trust for
agents on the running deployment: each with a met / partial / not met verdict
(not measured when nothing was observed), the evidence measured, and what would
meet it. Rows writ cannot meet yet (hardware-backed keys, hardware node
attestation) say so. See docs/tier.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			rep, err := c.Tier(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(g.stdout, rep)
			}
			tier := ""
			for _, r := range rep.Rows {
				if r.Tier != tier {
					tier = r.Tier
					fmt.Fprintf(g.stdout, "%s\n", tier)
				}
				fmt.Fprintf(g.stdout, "  %-13s %s\n                %s\n", strings.ReplaceAll(r.Verdict, "_", " "), r.Requirement, r.Evidence)
				if r.Verdict != "met" {
					fmt.Fprintf(g.stdout, "                to meet: %s\n", r.ToMeet)
				}
			}
			fmt.Fprintf(g.stdout, "tier reached: %s\n", rep.Reached)
			return nil
		},
	}
	outputFlag(cmd)
	return cmd
}
