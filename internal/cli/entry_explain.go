package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
)

func newEntryExplainCmd(g *globals) *cobra.Command {
	var pid int
	cmd := &cobra.Command{
		Use:   "explain --pid N",
		Short: "Show a process's selectors, the entries it matches, and the identity it gets",
		Long: `Attest a running process on the server's host and show its selectors,
the entries that match it (and those that almost do, with the selectors
they miss), and the identity the most specific entry gives it.

When several entries match, the entry whose selectors include every other
match's (and more) wins. If no entry does, the match is ambiguous: the
Workload API serves an SVID for each, and the access proxy refuses the
process's calls unless they send a Writ-Identity header naming one.`,
		Example: `  writ entry explain --pid $(pgrep -n python3)`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if pid <= 0 {
				return fmt.Errorf("--pid is required: the process id of the workload, e.g. --pid $(pgrep -n python3)")
			}
			o, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			ex, err := c.ExplainProcess(cmd.Context(), pid)
			if err != nil {
				return err
			}
			if o == "json" {
				return printJSON(g.stdout, ex)
			}
			printExplanation(g, ex)
			return nil
		},
	}
	cmd.Flags().IntVar(&pid, "pid", 0, "process id to explain")
	outputFlag(cmd)
	return cmd
}

func printExplanation(g *globals, ex apitypes.ProcessExplanation) {
	w := g.stdout
	fmt.Fprintf(w, "process %d (uid %d, %s), instance %s\n", ex.PID, ex.UID, ex.Exe, ex.Instance)
	fmt.Fprintf(w, "selectors:\n")
	for _, s := range ex.Selectors {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if len(ex.Entries) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENTRY\tSPIFFE ID\tMATCH\tWHY")
		for _, e := range ex.Entries {
			match, why := "no", "lacks "+strings.Join(e.Missing, ",")
			if e.Matched {
				match, why = "yes", "has "+strings.Join(e.Selectors, ",")
				if len(e.Outranks) > 0 {
					why += "; more specific than " + strings.Join(e.Outranks, ",")
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.SpiffeID, match, why)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if ex.Chosen != "" {
		fmt.Fprintf(w, "identity: %s (entry %s)\n", ex.ChosenSpiffeID, ex.Chosen)
	} else {
		fmt.Fprintf(w, "identity: none\n")
	}
	fmt.Fprintf(w, "reason: %s\n", ex.Reason)
}
