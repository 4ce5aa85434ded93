package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/learn"
)

func newAlertCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "alert",
		Aliases: []string{"alerts"},
		Short:   "List, acknowledge and resolve alerts; dwell time and coverage",
		Long: `Alerts are raised by rules over writ's event stream (shadow agents and
credentials found by discovery, repeated denials, quarantined MCP tools, use of
something revoked, policy bypass attempts, admin authentication failures,
approvals waiting). A human acknowledges and resolves them; dwell time is first
evidence → acknowledgement, coverage the share acknowledged within
alerts.ack_within. See docs/alerts.md.`,
	}
	cmd.AddCommand(newAlertListCmd(g), newAlertDecideCmd(g, false), newAlertDecideCmd(g, true))
	return cmd
}

func newAlertListCmd(g *globals) *cobra.Command {
	var q client.AlertQuery
	var since string
	var catalogue bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List alerts with dwell time and coverage",
		Example: `  writ alert list
  writ alert list --state open --severity high
  writ alert list --since 7d -o json
  writ alert list --catalogue`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			if since != "" {
				t, err := learn.ParseSince(since, time.Now())
				if err != nil {
					return fmt.Errorf("--since %q: want a number of days back such as 7d, a duration back such as 12h or an RFC 3339 time", since)
				}
				q.Since = t.UTC().Format(time.RFC3339Nano)
			}
			list, err := c.Alerts(cmd.Context(), q)
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(g.stdout, list)
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			if catalogue {
				fmt.Fprintln(w, "RULE\tSEVERITY\tENABLED\tTITLE")
				for _, r := range list.Catalogue {
					fmt.Fprintf(w, "%s\t%s\t%v\t%s\n", r.ID, r.Severity, r.Enabled, r.Title)
				}
				return w.Flush()
			}
			fmt.Fprintln(w, "ID\tSEVERITY\tSTATE\tRULE\tSUBJECT\tCOUNT\tFIRST EVIDENCE\tDWELL")
			for _, a := range list.Alerts {
				dwell := "-"
				if a.DwellSeconds != nil {
					dwell = (time.Duration(*a.DwellSeconds) * time.Second).String()
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.ID, a.Severity, a.State, a.Rule, a.Subject, a.Count,
					a.FirstEvidence.Format(time.RFC3339), dwell)
			}
			w.Flush()
			s := list.Summary
			sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)).Round(time.Second) }
			fmt.Fprintf(g.stdout, "\n%d alerts: %d open, %d acknowledged, %d resolved\n", s.Total, s.Open, s.Acknowledged, s.Resolved)
			fmt.Fprintf(g.stdout, "dwell time (first evidence → acknowledged): median %s, p90 %s, max %s\n",
				sec(s.DwellMedianSeconds), sec(s.DwellP90Seconds), sec(s.DwellMaxSeconds))
			fmt.Fprintf(g.stdout, "coverage: %d of %d due alerts acknowledged within %s (%.0f%%), %d still within it\n",
				s.AckedInTime, s.Due, sec(s.AckWithinSeconds), 100*s.Coverage, s.Pending)
			fmt.Fprintf(g.stdout, "detections: %d of %d rules enabled", len(s.RulesEnabled), len(list.Catalogue))
			if len(s.RulesDisabled) > 0 {
				fmt.Fprintf(g.stdout, " (disabled: %v)", s.RulesDisabled)
			}
			fmt.Fprintln(g.stdout)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&q.State, "state", "", "open, acknowledged or resolved")
	fl.StringVar(&q.Rule, "rule", "", "one rule of the catalogue")
	fl.StringVar(&q.Severity, "severity", "", "critical, high, medium, low or info")
	fl.StringVar(&since, "since", "", "alerts raised from this time on: 7d, 12h or an RFC 3339 time")
	fl.BoolVar(&catalogue, "catalogue", false, "list the detections and whether each is enabled")
	outputFlag(cmd)
	return cmd
}

func newAlertDecideCmd(g *globals, resolve bool) *cobra.Command {
	var note string
	use, short := "ack ID", "Acknowledge an alert (you are recorded as having seen it)"
	if resolve {
		use, short = "resolve ID", "Resolve an alert"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			a, err := c.DecideAlert(cmd.Context(), args[0], resolve, note)
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(g.stdout, a)
			}
			fmt.Fprintf(g.stdout, "%s %s by %s\n", a.ID, a.State, map[bool]string{false: a.AckedBy, true: a.ResolvedBy}[resolve])
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "what you found or did")
	outputFlag(cmd)
	return cmd
}
