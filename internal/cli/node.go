package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/node/nodeattest"
)

func newNodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Manage scale-out nodes: join tokens, the list of attested nodes, eviction",
		Long: `Manage scale-out nodes (writ serve --role node on other hosts).

A node joins with a single-use join token (writ node token create), with
an x509pop machine certificate, or with its TPM (--attest tpm; writ node
tpm-ek prints the hash the server must allow), and then reaches the server with a node
SVID. See docs/scale-out.md.`,
	}
	token := &cobra.Command{Use: "token", Short: "Create, list and delete single-use node join tokens"}
	token.AddCommand(newNodeTokenCreateCmd(g), newNodeTokenListCmd(g), newNodeTokenDeleteCmd(g))
	cmd.AddCommand(token, newNodeListCmd(g), newNodeEvictCmd(g), newNodeTPMEKCmd(g))
	return cmd
}

func newNodeTPMEKCmd(g *globals) *cobra.Command {
	var device, swtpm string
	out := new(string)
	cmd := withTPMFlags(&cobra.Command{
		Use:   "tpm-ek (--tpm-device /dev/tpmrm0 | --tpm-swtpm HOST:PORT)",
		Short: "Print this host's TPM endorsement key hash, for the server's node.tpm_attestation.ek_hashes",
		Long: `Print the hash of this host's TPM 2.0 endorsement key (EK): hex SHA-256 of
the PKIX DER of its public key. List it in the server's
node.tpm_attestation.ek_hashes to let the host join with
writ serve --role node --attest tpm. Run it on the node, as the user writ
runs as. See docs/scale-out.md.

Example:
  writ node tpm-ek --tpm-device /dev/tpmrm0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			if (device == "") == (swtpm == "") {
				return fmt.Errorf("name the TPM: --tpm-device /dev/tpmrm0 or --tpm-swtpm HOST:PORT")
			}
			h, err := nodeattest.TPMEKHash(keys.TPMConfig{Device: device, TCP: swtpm})
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, map[string]string{"ek_hash": h})
			}
			fmt.Fprintln(g.stdout, h)
			return nil
		},
	}, &device, &swtpm)
	out = outputFlag(cmd)
	return cmd
}

// withTPMFlags adds --tpm-device and --tpm-swtpm to cmd.
func withTPMFlags(cmd *cobra.Command, device, swtpm *string) *cobra.Command {
	cmd.Flags().StringVar(device, "tpm-device", "", "the TPM 2.0 device, normally /dev/tpmrm0")
	cmd.Flags().StringVar(swtpm, "tpm-swtpm", "", "a swtpm simulator's command address host:port (its control port is the next one)")
	return cmd
}

func newNodeTokenCreateCmd(g *globals) *cobra.Command {
	var (
		ttl  time.Duration
		node string
	)
	out := new(string)
	cmd := &cobra.Command{
		Use:   "create [--ttl 1h] [--node NAME]",
		Short: "Create a single-use join token; the secret is printed once",
		Long: `Create a single-use join token for one node. The token is printed once
and only its hash is kept; it expires after --ttl (default 1h, at most 720h)
and works once. With --node the joining node gets that name whatever it
asks for (and may replace an attested node of that name).

Example:
  writ node token create --ttl 15m --node web-1
  writ serve --role node --server https://writ.example:8443 --join-token wjt_...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			if ttl < 0 {
				return fmt.Errorf("--ttl %v: must be positive", ttl)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			req := apitypes.JoinTokenRequest{Node: node}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			t, err := c.CreateJoinToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, t)
			}
			fmt.Fprintln(g.stdout, t.Token)
			fmt.Fprintf(g.stderr, "join token %s expires %s; it works once (writ serve --role node --join-token ...)\n",
				t.ID, t.ExpiresAt.Local().Format(time.DateTime))
			return nil
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the token may be used (default 1h)")
	cmd.Flags().StringVar(&node, "node", "", "the name the joining node gets")
	out = outputFlag(cmd)
	return cmd
}

func newNodeTokenListCmd(g *globals) *cobra.Command {
	out := new(string)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List join tokens (ids, expiry, use; never secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.ListJoinTokens(cmd.Context())
			if err != nil {
				return err
			}
			if *out == "json" {
				if list == nil {
					list = []apitypes.JoinToken{}
				}
				return printJSON(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNODE\tEXPIRES\tUSED BY")
			for _, t := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, orDash(t.Node), t.ExpiresAt.Local().Format(time.DateTime), orDash(t.UsedBy))
			}
			return tw.Flush()
		},
	}
	out = outputFlag(cmd)
	return cmd
}

func newNodeTokenDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID",
		Aliases: []string{"evict"},
		Short:   "Delete a join token so that it can no longer be used",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteJoinToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "deleted join token %s\n", args[0])
			return nil
		},
	}
}

func newNodeListCmd(g *globals) *cobra.Command {
	out := new(string)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List attested nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.ListNodes(cmd.Context())
			if err != nil {
				return err
			}
			if *out == "json" {
				if list == nil {
					list = []apitypes.Node{}
				}
				return printJSON(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tATTESTOR\tLAST SEEN\tACKED SEQ\tSTATE")
			for _, n := range list {
				state := "attested"
				if n.EvictedAt != nil {
					state = "evicted " + n.EvictedAt.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", n.Name, n.Attestor, n.LastSeen.Local().Format(time.DateTime), n.AckedSeq, state)
			}
			return tw.Flush()
		},
	}
	out = outputFlag(cmd)
	return cmd
}

func newNodeEvictCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "evict NAME [--reason TEXT]",
		Short: "Evict a node: its SVIDs stop working and it must join again with a new token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			n, err := c.EvictNode(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "evicted node %s (%s)\n", n.Name, n.SpiffeID)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}
