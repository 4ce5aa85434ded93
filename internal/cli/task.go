package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
)

// agentFlags choose how a command authenticates as an agent: a JWT-SVID
// from a file, or one fetched from the Workload API socket.
type agentFlags struct {
	svidFile string
	socket   string
}

func (a *agentFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.svidFile, "svid-file", "", "act as the agent whose JWT-SVID (audience: the server's issuer URL) is in this file ('-' for stdin)")
	cmd.Flags().StringVar(&a.socket, "socket", "", "act as this process's own identity: fetch a JWT-SVID from the Workload API at this address (unix:///path; default SPIFFE_ENDPOINT_SOCKET when --svid-file is not given)")
}

func (a *agentFlags) set() bool { return a.svidFile != "" || a.socket != "" }

// svid returns the agent's JWT-SVID for the server's issuer.
func (a *agentFlags) svid(ctx context.Context, g *globals) (string, error) {
	if a.svidFile != "" {
		var b []byte
		var err error
		if a.svidFile == "-" {
			b, err = io.ReadAll(io.LimitReader(g.stdin, 64<<10))
		} else {
			b, err = os.ReadFile(a.svidFile)
		}
		if err != nil {
			return "", fmt.Errorf("read JWT-SVID: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	anon, err := client.New(g.addr, "")
	if err != nil {
		return "", err
	}
	md, err := anon.Metadata(ctx)
	if err != nil {
		return "", fmt.Errorf("read the server's issuer: %w", err)
	}
	issuer, _ := md["issuer"].(string)
	opts := []workloadapi.ClientOption{}
	if a.socket != "" {
		opts = append(opts, workloadapi.WithAddr(a.socket))
	}
	s, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: issuer}, opts...)
	if err != nil {
		return "", fmt.Errorf("fetch a JWT-SVID from the Workload API (set --socket or SPIFFE_ENDPOINT_SOCKET): %w", err)
	}
	return s.Marshal(), nil
}

// agentClient is a client that authenticates with the agent's JWT-SVID.
func (a *agentFlags) agentClient(ctx context.Context, g *globals) (*client.Client, error) {
	s, err := a.svid(ctx, g)
	if err != nil {
		return nil, err
	}
	return client.New(g.addr, s)
}

func newTaskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Open, close and inspect tasks (the unit credentials are minted under)",
	}
	cmd.AddCommand(newTaskOpenCmd(g), newTaskCloseCmd(g), newTaskListCmd(g), newTaskShowCmd(g))
	return cmd
}

func newTaskOpenCmd(g *globals) *cobra.Command {
	var (
		req   apitypes.OpenTaskRequest
		as    agentFlags
		wait  string
		asID  string
		asIns string
	)
	cmd := &cobra.Command{
		Use:   "open --purpose TEXT --audience AUD [--scope S ...] (--as SPIFFE_ID | --svid-file F | --socket ADDR)",
		Short: "Open a task for an agent",
		Long: `Open a task: policy decides whether the agent may, for this purpose, with
these audiences and scopes. A task that needs a human approval is pending
until an operator runs 'writ approval approve'; --wait waits for it.

Who the task is for:
  --as SPIFFE_ID       as an operator (admin credential), naming the agent
  --svid-file FILE     as the agent, with its JWT-SVID (audience: the issuer URL)
  --socket ADDR        as this process's own identity from the Workload API

Example:
  writ task open --as spiffe://writ.local/agent/mailer --purpose "reply to customers" \
    --audience mail-api --scope mail.read --scope mail.draft --max-duration 30m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.Flag("output").Value.String()
			if err := checkOutput(out); err != nil {
				return err
			}
			if (asID != "") == as.set() {
				return fmt.Errorf("say who the task is for: --as SPIFFE_ID (operator) or --svid-file/--socket (agent), one of them")
			}
			var c *client.Client
			var err error
			if asID != "" {
				req.SpiffeID, req.Instance = asID, asIns
				c, err = g.client()
			} else {
				c, err = as.agentClient(cmd.Context(), g)
			}
			if err != nil {
				return err
			}
			t, err := c.OpenTask(cmd.Context(), req)
			if err != nil {
				return err
			}
			if t.State == apitypes.TaskPending && wait != "" {
				if t, err = c.GetTask(cmd.Context(), t.ID, wait); err != nil {
					return err
				}
			}
			return printTask(g, out, t)
		},
	}
	f := cmd.Flags()
	f.StringVar(&asID, "as", "", "SPIFFE ID of the agent (operator only)")
	f.StringVar(&asIns, "instance", "", "agent instance id (with --as)")
	f.StringVar(&req.Purpose, "purpose", "", "what the task is for (required)")
	f.StringVar(&req.OnBehalfOf, "on-behalf-of", "", "user the task acts for")
	f.StringSliceVar(&req.Groups, "group", nil, "groups of the on-behalf-of user (repeatable)")
	f.StringArrayVar(&req.Audiences, "audience", nil, "service the task will call (repeatable, at least one)")
	f.StringArrayVar(&req.Scopes, "scope", nil, "scope the task needs (repeatable)")
	f.StringVar(&req.MaxDuration, "max-duration", "", "task lifetime, e.g. 30m (default 1h, at most 24h)")
	f.Int64Var(&req.Budget, "budget", 0, "most tokens the task may mint (0: only policy's budget)")
	f.BoolVar(&req.BindInstance, "bind-instance", false, "only the opening instance (process) may use the task; by default every process of the agent's SPIFFE ID may")
	f.StringVar(&wait, "wait", "", "when approval is needed, wait this long for it (e.g. 5m)")
	as.add(cmd)
	outputFlag(cmd)
	return cmd
}

func newTaskCloseCmd(g *globals) *cobra.Command {
	var (
		reason string
		as     agentFlags
	)
	cmd := &cobra.Command{
		Use:   "close TASK_ID",
		Short: "Close a task and revoke every token minted under it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.Flag("output").Value.String()
			if err := checkOutput(out); err != nil {
				return err
			}
			c, err := clientFor(cmd.Context(), g, &as)
			if err != nil {
				return err
			}
			t, err := c.CloseTask(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			return printTask(g, out, t)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	as.add(cmd)
	outputFlag(cmd)
	return cmd
}

// clientFor is the agent's client when agent flags are set, else the
// operator's.
func clientFor(ctx context.Context, g *globals, as *agentFlags) (*client.Client, error) {
	if as.set() {
		return as.agentClient(ctx, g)
	}
	return g.client()
}

func newTaskListCmd(g *globals) *cobra.Command {
	var f apitypes.TaskFilter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tasks, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.ListTasks(cmd.Context(), f)
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tSPIFFE ID\tINSTANCE\tPURPOSE\tAUDIENCES\tCALLS\tEXPIRES")
			for _, t := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.ID, t.State, t.SpiffeID, dash(t.Instance), t.Purpose,
					strings.Join(t.Audiences, ","), t.Calls, t.ExpiresAt.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&f.SpiffeID, "spiffe-id", "", "only this agent's tasks")
	cmd.Flags().StringVar(&f.Instance, "instance", "", "only this instance's tasks")
	cmd.Flags().StringVar(&f.State, "state", "", "only tasks in this state: pending, open, closed, denied")
	outputFlag(cmd)
	return cmd
}

func newTaskShowCmd(g *globals) *cobra.Command {
	var wait string
	cmd := &cobra.Command{
		Use:   "show TASK_ID",
		Short: "Show one task",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			t, err := c.GetTask(cmd.Context(), args[0], wait)
			if err != nil {
				return err
			}
			return printTask(g, out, t)
		},
	}
	cmd.Flags().StringVar(&wait, "wait", "", "for a pending task, wait this long for its approval")
	outputFlag(cmd)
	return cmd
}

func printTask(g *globals, out string, t apitypes.Task) error {
	if out == "json" {
		return printJSON(g.stdout, t)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("id", t.ID)
	row("state", t.State)
	row("spiffe id", t.SpiffeID)
	row("instance", t.Instance)
	if t.BindInstance {
		row("bound to", "instance "+t.Instance)
	} else {
		row("bound to", "spiffe id "+t.SpiffeID+" (any instance)")
	}
	row("purpose", t.Purpose)
	row("on behalf of", t.OnBehalfOf)
	row("audiences", strings.Join(t.Audiences, " "))
	row("scopes", strings.Join(t.Scopes, " "))
	if t.Budget > 0 {
		row("calls", fmt.Sprintf("%d of %d", t.Calls, t.Budget))
	} else {
		row("calls", fmt.Sprint(t.Calls))
	}
	row("policy", strings.Trim(t.Policy+" "+t.Rule, " "))
	row("approval", t.Approval)
	row("reason", t.Reason)
	row("expires", t.ExpiresAt.Local().Format(time.RFC3339))
	if !t.ClosedAt.IsZero() {
		row("closed", t.ClosedAt.Local().Format(time.RFC3339))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
