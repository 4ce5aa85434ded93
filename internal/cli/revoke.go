package cli

import (
	"fmt"
	"strings"
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
		list, force                           bool
	)
	cmd := &cobra.Command{
		Use:   "revoke (--spiffe-id ID | --instance ID | --task ID | --token JTI|TOKEN) [--reason TEXT] [--force]",
		Short: "Kill switch: revoke every credential derived from an identity, instance, task or token",
		Long: `Revoke at once every credential derived from the target: its access tokens
are refused by verification, introspection and the proxy, and (for
--spiffe-id and --instance) its X.509-SVIDs are withdrawn from Workload API
streams and new ones refused. Open tasks of the target close.

--token takes a token's jti or the access token itself: writ checks that
it issued the token and revokes its jti.

A value that names nothing writ knows (no such task, attested instance,
entry or recently minted token) is refused, so a typo cannot "succeed";
--force revokes it anyway, before it exists. Revocations are audited and
stay until lifted: see 'writ revoke list' and 'writ revoke lift'.`,
		Example: `  writ revoke --task tsk_01JD... --reason "prompt injection"
  writ revoke --token "$LEAKED_TOKEN"
  writ revoke --spiffe-id spiffe://writ.local/agent/new --force
  writ revoke list
  writ revoke lift task tsk_01JD...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				return listRevocations(cmd, g)
			}
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
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
			r, err := c.Revoke(cmd.Context(), apitypes.RevokeRequest{Kind: kind, Value: value, Reason: reason, Force: force})
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
	f.StringVar(&tok, "token", "", "revoke this access token: its jti, or the token itself")
	f.StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	f.BoolVar(&force, "force", false, "revoke even if the value names nothing writ knows yet (pre-emptive)")
	f.BoolVar(&list, "list", false, "list the revocations in force instead (same as 'writ revoke list')")
	outputFlag(cmd)
	cmd.AddCommand(newRevokeListCmd(g), newRevokeLiftCmd(g))
	return cmd
}

func newRevokeListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the revocations in force",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return listRevocations(cmd, g) },
	}
	outputFlag(cmd)
	return cmd
}

func listRevocations(cmd *cobra.Command, g *globals) error {
	out, c, err := g.outputClient(cmd)
	if err != nil {
		return err
	}
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

// revokeKind reads a KIND argument: spiffe_id (or spiffe-id), instance,
// task or token.
func revokeKind(s string) (string, error) {
	k := strings.ReplaceAll(strings.ToLower(s), "-", "_")
	switch k {
	case apitypes.RevokeSpiffeID, apitypes.RevokeInstance, apitypes.RevokeTask, apitypes.RevokeToken:
		return k, nil
	}
	return "", fmt.Errorf("kind %q: want spiffe-id, instance, task or token", s)
}

func newRevokeLiftCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "lift KIND VALUE",
		Short: "Take back a revocation (audited as revocation.lifted)",
		Long: `Take back the revocation of VALUE: KIND is spiffe-id, instance, task or
token (a jti or the token). Verification, introspection, the proxy and the
Workload API stop refusing it at once. What the revocation already did
stays done: tasks it closed stay closed, and withdrawn SVIDs are issued
again only when the workload asks.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := revokeKind(args[0])
			if err != nil {
				return err
			}
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			r, err := c.LiftRevocation(cmd.Context(), apitypes.LiftRequest{Kind: kind, Value: args[1], Reason: reason})
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, r)
			}
			fmt.Fprintf(g.stdout, "lifted the revocation of %s %s\n", r.Kind, r.Value)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	outputFlag(cmd)
	return cmd
}
