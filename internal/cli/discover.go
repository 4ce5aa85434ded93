package cli

import (
	"fmt"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
)

func newDiscoverCmd(g *globals) *cobra.Command {
	var out *string
	var all bool
	cmd := &cobra.Command{
		Use:   "discover",
		Short: "Scan the server's host for agents, MCP servers, credentials and shadow access",
		Long: `Ask the running server to scan its host now with the runtime sensor and
print the agents and MCP servers it found (with the evidence), the credentials
they hold (fingerprints, never values), the MCP servers client configurations
declare, and what runs around writ (shadow). The scan is recorded in the
inventory and audit log like the server's continuous ones. --output json
prints the whole report, every process included. See docs/discover.md.`,
		Example: `  writ discover
  writ discover --output json | jq '.shadows'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			rep, err := c.Discover(cmd.Context())
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, rep)
			}
			printReport(g, rep, all)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "list every process, not only agents, MCP servers and processes reaching a Service")
	out = outputFlag(cmd)
	return cmd
}

func printReport(g *globals, rep apitypes.DiscoveryReport, all bool) {
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "host %s, scanned %s\n\n", rep.Host, rep.Time.Format(time.RFC3339))
	fmt.Fprintln(w, "PID\tKIND\tNAME\tCONFIDENCE\tUSER\tIDENTITY\tCONNECTIONS\tEVIDENCE")
	n := 0
	for _, p := range rep.Processes {
		reaches := false
		for _, c := range p.Connections {
			reaches = reaches || c.Service != ""
		}
		if !all && p.Kind == "process" && !reaches {
			continue
		}
		n++
		name := p.Name
		if name == "" {
			name = path.Base(p.Exe)
		}
		id := p.Identity
		if id == "" {
			id = "-"
		}
		var conns []string
		for _, c := range p.Connections {
			s := c.Remote + " " + c.Route
			if c.Service != "" {
				s += " (" + c.Service + ")"
			}
			conns = append(conns, s)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\n", p.PID, p.Kind, name, p.Confidence, orDash(p.User), id,
			orDash(strings.Join(conns, ", ")), orDash(strings.Join(p.Evidence, "; ")))
	}
	if n == 0 {
		fmt.Fprintln(w, "(no agents or MCP servers found)")
	}
	w.Flush()
	if len(rep.Credentials) > 0 {
		fmt.Fprintln(g.stdout)
		w = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CREDENTIAL\tKIND\tSOURCE\tWHERE\tPIDS\tFINGERPRINT")
		for _, c := range rep.Credentials {
			where := c.Name
			if c.Path != "" {
				where = c.Path
				if c.Line > 0 {
					where += fmt.Sprintf(":%d", c.Line)
				}
				if c.Name != "" {
					where += " [" + c.Name + "]"
				}
			}
			pids := make([]string, len(c.PIDs))
			for i, p := range c.PIDs {
				pids[i] = fmt.Sprint(p)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Kind, c.Source, where, orDash(strings.Join(pids, ",")), shortFP(c.Fingerprint))
		}
		w.Flush()
	}
	if len(rep.MCPConfigs) > 0 {
		fmt.Fprintln(g.stdout)
		w = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "DECLARED MCP SERVER\tCLIENT\tCOMMAND OR URL\tENV\tFILE")
		for _, d := range rep.MCPConfigs {
			what := d.URL
			if what == "" {
				what = strings.Join(append([]string{d.Command}, d.Args...), " ")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", d.Server, d.Client, what, orDash(strings.Join(d.Env, ",")), d.Path)
		}
		w.Flush()
	}
	fmt.Fprintln(g.stdout)
	if len(rep.Shadows) == 0 {
		fmt.Fprintln(g.stdout, "shadow: none")
	} else {
		fmt.Fprintf(g.stdout, "shadow (%d):\n", len(rep.Shadows))
		for _, s := range rep.Shadows {
			fmt.Fprintf(g.stdout, "  %s: %s\n", s.Kind, s.Detail)
		}
	}
	for _, l := range rep.Limits {
		fmt.Fprintf(g.stdout, "limit: %s\n", l)
	}
}

func newInventoryCmd(g *globals) *cobra.Command {
	var out *string
	var q client.InventoryQuery
	var shadow, notShadow bool
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "List identities, instances, discovered agents and processes, credentials, services, hosts and owners",
		Long: `List everything writ knows runs or ran: registration entries (identities)
with their owners, attested instances (live or past), the agents, MCP servers
and processes the runtime sensor discovered (live or past, first and last
seen), credentials (brokered by writ, or discovered static ones), Services,
MCP servers, scanned hosts, and owners from the "owner" (or "team") labels.`,
		Example: `  writ inventory
  writ inventory --kind agent --shadow
  writ inventory --identity spiffe://writ.local/agent/mailer --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			switch {
			case shadow && notShadow:
				return fmt.Errorf("--shadow and --no-shadow exclude each other; give one")
			case shadow:
				q.Shadow = "true"
			case notShadow:
				q.Shadow = "false"
			}
			inv, err := c.Inventory(cmd.Context(), q)
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, inv)
			}
			printInventory(g, inv)
			return nil
		},
	}
	cmd.Flags().StringVar(&q.Kind, "kind", "", "only one kind: identity, instance, agent, mcp_server, process, credential, mcp_config, service, host, owner")
	cmd.Flags().BoolVar(&shadow, "shadow", false, "only what runs around writ (agents without identity, static credentials, direct access)")
	cmd.Flags().BoolVar(&notShadow, "no-shadow", false, "only what writ governs")
	cmd.Flags().StringVar(&q.Identity, "identity", "", "only what runs as this SPIFFE ID")
	cmd.Flags().StringVar(&q.Host, "host", "", "only what was discovered on this host")
	out = outputFlag(cmd)
	return cmd
}

func printInventory(g *globals, inv apitypes.Inventory) {
	section := func(title string, n int, header string, rows func(w *tabwriter.Writer)) {
		if n == 0 {
			return
		}
		fmt.Fprintf(g.stdout, "%s (%d)\n", title, n)
		w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "  "+header)
		rows(w)
		w.Flush()
		fmt.Fprintln(g.stdout)
	}
	section("IDENTITIES", len(inv.Identities), "NAME\tSPIFFE ID\tOWNER\tDISCOVERED\tLIVE", func(w *tabwriter.Writer) {
		for _, i := range inv.Identities {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%d\n", i.Name, i.SpiffeID, orDash(i.Owner), i.Discovered, i.Live)
		}
	})
	section("INSTANCES", len(inv.Instances), "ID\tPID\tUID\tEXE\tLIVE\tLAST SEEN", func(w *tabwriter.Writer) {
		for _, i := range inv.Instances {
			fmt.Fprintf(w, "  %s\t%d\t%d\t%s\t%v\t%s\n", i.ID, i.PID, i.UID, i.Exe, i.Live, i.LastSeen.Format(time.RFC3339))
		}
	})
	section("DISCOVERED", len(inv.Discovered), "KIND\tNAME\tHOST\tIDENTITY\tSHADOW\tLIVE\tFIRST SEEN\tLAST SEEN", func(w *tabwriter.Writer) {
		for _, i := range inv.Discovered {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%v\t%v\t%s\t%s\n", i.Kind, i.Name, i.Host, orDash(i.Identity), i.Shadow, i.Live,
				i.FirstSeen.Format(time.RFC3339), i.LastSeen.Format(time.RFC3339))
		}
	})
	section("CREDENTIALS", len(inv.Credentials), "NAME\tSOURCE\tKIND\tHOST\tSHADOW\tFINGERPRINT", func(w *tabwriter.Writer) {
		for _, c := range inv.Credentials {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%v\t%s\n", c.Name, c.Source, c.Kind, orDash(c.Host), c.Shadow, orDash(shortFP(c.Fingerprint)))
		}
	})
	for _, s := range []struct {
		title string
		list  []apitypes.InventoryService
	}{{"SERVICES", inv.Services}, {"MCP SERVERS", inv.MCPServers}} {
		section(s.title, len(s.list), "NAME\tUPSTREAM\tOWNER", func(w *tabwriter.Writer) {
			for _, x := range s.list {
				fmt.Fprintf(w, "  %s\t%s\t%s\n", x.Name, orDash(x.Upstream), orDash(x.Owner))
			}
		})
	}
	section("HOSTS", len(inv.Hosts), "NAME\tFIRST SEEN\tLAST SCAN", func(w *tabwriter.Writer) {
		for _, h := range inv.Hosts {
			fmt.Fprintf(w, "  %s\t%s\t%s\n", h.Name, h.FirstSeen.Format(time.RFC3339), h.LastSeen.Format(time.RFC3339))
		}
	})
	section("OWNERS", len(inv.Owners), "OWNER\tIDENTITIES", func(w *tabwriter.Writer) {
		for _, o := range inv.Owners {
			fmt.Fprintf(w, "  %s\t%s\n", o.Owner, strings.Join(o.Identities, ", "))
		}
	})
}

// shortFP shortens a fingerprint for a table; --output json has it whole.
func shortFP(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}
