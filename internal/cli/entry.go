package cli

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
)

// client returns an admin API client from the shared flags.
func (g *globals) client() (*client.Client, error) {
	tok, err := g.adminToken()
	if err != nil {
		return nil, err
	}
	return client.New(g.addr, tok)
}

// outputClient validates cmd's --output flag and returns it with an admin
// API client: the start of every command that prints server data.
func (g *globals) outputClient(cmd *cobra.Command) (string, *client.Client, error) {
	out := cmd.Flag("output").Value.String()
	if err := checkOutput(out); err != nil {
		return "", nil, err
	}
	c, err := g.client()
	return out, c, err
}

func newEntryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "entry",
		Short: "Manage registration entries (Identity resources), SPIRE-style",
	}
	cmd.AddCommand(newEntryCreateCmd(g), newEntryListCmd(g), newEntryDeleteCmd(g), newEntryExplainCmd(g))
	return cmd
}

func newEntryCreateCmd(g *globals) *cobra.Command {
	var (
		e      apitypes.Entry
		labels []string
	)
	out := new(string)
	cmd := &cobra.Command{
		Use:   "create --spiffe-id ID --selector TYPE:KEY:VALUE [--selector ...]",
		Short: "Register a workload identity",
		Long: `Register a workload identity. A process receives the SPIFFE ID when its
attested selectors include every --selector given. Selectors:

  unix:uid:N         unix:user:NAME      unix:gid:N     unix:group:NAME
  unix:path:/abs/exe unix:sha256:HEX     (digest of the executable)

Example:
  writ entry create --spiffe-id spiffe://writ.local/agent/me --selector unix:uid:$(id -u)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			if e.SpiffeID == "" {
				return fmt.Errorf("--spiffe-id is required, e.g. --spiffe-id spiffe://writ.local/agent/name")
			}
			if len(e.Selectors) == 0 {
				return fmt.Errorf("at least one --selector is required, e.g. --selector unix:uid:1000")
			}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: write key=value", l)
				}
				if e.Labels == nil {
					e.Labels = map[string]string{}
				}
				e.Labels[k] = v
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			got, err := c.CreateEntry(cmd.Context(), e)
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, got)
			}
			printEntries(g, []apitypes.Entry{got})
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&e.Name, "name", "", "entry name (default: derived from the SPIFFE ID path)")
	f.StringVar(&e.SpiffeID, "spiffe-id", "", "SPIFFE ID to issue, e.g. spiffe://writ.local/agent/name")
	f.StringArrayVar(&e.Selectors, "selector", nil, "selector the workload must have (repeatable)")
	f.StringVar(&e.X509TTL, "x509-ttl", "", "X.509-SVID lifetime (default: server's ca.x509_svid_ttl)")
	f.StringVar(&e.JWTTTL, "jwt-ttl", "", "JWT-SVID lifetime (default: server's ca.jwt_svid_ttl)")
	f.StringArrayVar(&labels, "label", nil, "label key=value (repeatable)")
	out = outputFlag(cmd)
	return cmd
}

func newEntryListCmd(g *globals) *cobra.Command {
	var out *string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List registration entries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.ListEntries(cmd.Context())
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, list)
			}
			printEntries(g, list)
			return nil
		},
	}
	out = outputFlag(cmd)
	return cmd
}

func newEntryDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME|SPIFFE-ID",
		Short: "Delete a registration entry; its SVIDs are withdrawn from open streams",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			got, err := c.DeleteEntry(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "deleted entry %s (%s)\n", got.Name, got.SpiffeID)
			return nil
		},
	}
}

func printEntries(g *globals, list []apitypes.Entry) {
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSPIFFE ID\tSELECTORS\tX509 TTL\tJWT TTL\tLABELS")
	for _, e := range list {
		var ls []string
		for k, v := range e.Labels {
			ls = append(ls, k+"="+v)
		}
		slices.Sort(ls)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.SpiffeID, strings.Join(e.Selectors, ","),
			orDash(e.X509TTL), orDash(e.JWTTTL), orDash(strings.Join(ls, ",")))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
