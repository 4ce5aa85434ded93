package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
)

// clientNoAuth is a client that sends no credential (the identity travels
// in the request).
func clientNoAuth(g *globals) (*client.Client, error) { return client.New(g.addr, "") }

func newRevokeCmd(g *globals) *cobra.Command {
	var (
		spiffeID, instance, task, tok, reason string
		list                                  bool
	)
	cmd := &cobra.Command{
		Use:   "revoke (--spiffe-id ID | --instance ID | --task ID | --token JTI) [--reason TEXT]",
		Short: "Kill switch: revoke every credential derived from an identity, instance, task or token",
		Long: `Revoke at once every credential derived from the target: its access tokens
are refused by verification and introspection, and (for --spiffe-id and
--instance) its X.509-SVIDs are withdrawn from Workload API streams and
new ones refused. Open tasks of the target close. Revocations are
permanent and audited; --list shows those in force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			if list {
				rs, err := c.ListRevocations(cmd.Context())
				if err != nil {
					return err
				}
				if out == "json" {
					return printJSON(g.stdout, rs)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KIND\tVALUE\tBY\tAT\tREASON")
				for _, r := range rs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Value, dash(r.Actor), r.CreatedAt.Local().Format(time.DateTime), r.Reason)
				}
				return tw.Flush()
			}
			var kind, value string
			n := 0
			for _, x := range []struct{ k, v string }{{apitypes.RevokeSpiffeID, spiffeID}, {apitypes.RevokeInstance, instance},
				{apitypes.RevokeTask, task}, {apitypes.RevokeToken, tok}} {
				if x.v != "" {
					kind, value = x.k, x.v
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("give exactly one of --spiffe-id, --instance, --task, --token")
			}
			r, err := c.Revoke(cmd.Context(), kind, value, reason)
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, r)
			}
			fmt.Fprintf(g.stdout, "revoked %s %s\n", r.Kind, r.Value)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spiffeID, "spiffe-id", "", "revoke everything of this SPIFFE ID")
	f.StringVar(&instance, "instance", "", "revoke everything of this agent instance (inst_...)")
	f.StringVar(&task, "task", "", "revoke every token minted under this task")
	f.StringVar(&tok, "token", "", "revoke this access token (its jti)")
	f.StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	f.BoolVar(&list, "list", false, "list the revocations in force instead")
	outputFlag(cmd)
	return cmd
}
