package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
)

func newApprovalCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approval",
		Short: "List and decide pending approval requests",
	}
	cmd.AddCommand(newApprovalListCmd(g), newApprovalDecideCmd(g, true), newApprovalDecideCmd(g, false))
	return cmd
}

func newApprovalListCmd(g *globals) *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List approval requests (pending by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			if state == "all" {
				state = ""
			}
			list, err := c.ListApprovals(cmd.Context(), state)
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tKIND\tSPIFFE ID\tTASK\tTARGET\tAPPROVERS\tEXPIRES")
			for _, a := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.State, a.Kind, a.SpiffeID, dash(a.Task), a.Target,
					dash(strings.Join(a.Approvers, ",")), a.ExpiresAt.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&state, "state", apitypes.ApprovalPending, "pending, approved, denied, expired or all")
	outputFlag(cmd)
	return cmd
}

func newApprovalDecideCmd(g *globals, approve bool) *cobra.Command {
	verb, short := "deny", "Deny a pending request"
	if approve {
		verb, short = "approve", "Approve a pending request"
	}
	var comment string
	cmd := &cobra.Command{
		Use:   verb + " APPROVAL_ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			a, err := c.DecideApproval(cmd.Context(), args[0], approve, comment)
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, a)
			}
			fmt.Fprintf(g.stdout, "%s %s\n", a.ID, a.State)
			return nil
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "note recorded with the decision")
	outputFlag(cmd)
	return cmd
}
