package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
)

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the console's named human accounts and their roles (viewer, approver, admin)",
		Long: `Manage the console's named human accounts.

Roles, each including the one before:
  viewer    reads every console page
  approver  also approves and denies held requests, acknowledges and resolves alerts
  admin     also approves MCP tools, applies policy and revokes

A human acts as user:NAME in the audit log and may never approve a request
made on their own behalf. A policy rule naming approvers (user:NAME,
group:NAME) is decided only by a human so named or in such a group at the
moment of the decision; group names compare exactly (case-sensitive).
Accounts that log in through an OIDC provider (console.oidc in writ.yaml)
appear here after their first login, with the role and groups of their
provider's claims.`,
	}
	cmd.AddCommand(newUserAddCmd(g), newUserListCmd(g), newUserRemoveCmd(g), newUserPasswdCmd(g), newUserGroupsCmd(g))
	return cmd
}

// passwordFlags are the ways to pass a password: never as an argument.
type passwordFlags struct {
	stdin bool
	env   string
}

func (p *passwordFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&p.stdin, "password-stdin", false, "read the password from the first line of standard input")
	cmd.Flags().StringVar(&p.env, "password-env", "", "read the password from this environment variable")
}

func (p *passwordFlags) read(g *globals) (string, error) {
	switch {
	case p.stdin && p.env != "":
		return "", fmt.Errorf("pass the password with one of --password-stdin or --password-env, not both")
	case p.stdin:
		line, err := bufio.NewReader(io.LimitReader(g.stdin, 4096)).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	case p.env != "":
		v, ok := os.LookupEnv(p.env)
		if !ok {
			return "", fmt.Errorf("--password-env %s: the variable is not set", p.env)
		}
		return v, nil
	}
	return "", fmt.Errorf("pass the password with --password-stdin or --password-env VAR (never on the command line)")
}

func newUserAddCmd(g *globals) *cobra.Command {
	var (
		pf     passwordFlags
		role   string
		groups []string
	)
	out := new(string)
	cmd := &cobra.Command{
		Use:   "add NAME --role viewer|approver|admin [--group G]... (--password-stdin | --password-env VAR)",
		Short: "Create a local account (password hashed with argon2id, at least 12 characters)",
		Example: `  printf '%s\n' "$ALICE_PASSWORD" | writ user add alice --role approver --password-stdin
  printf '%s\n' "$BOB_PASSWORD" | writ user add bob --role approver --group finance --group comms-leads --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			if role == "" {
				return fmt.Errorf("--role is required: viewer, approver or admin")
			}
			pw, err := pf.read(g)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			u, err := c.AddUser(cmd.Context(), args[0], role, pw, groups...)
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, u)
			}
			fmt.Fprintf(g.stdout, "added user %s (%s)", u.Name, u.Role)
			if len(u.Groups) > 0 {
				fmt.Fprintf(g.stdout, " in groups %s", strings.Join(u.Groups, ", "))
			}
			fmt.Fprintln(g.stdout)
			return nil
		},
	}
	pf.add(cmd)
	cmd.Flags().StringVar(&role, "role", "", "viewer, approver or admin")
	cmd.Flags().StringSliceVar(&groups, "group", nil, "a group the human is in, for approval rules naming group:NAME (repeat, or separate with commas)")
	out = outputFlag(cmd)
	return cmd
}

func newUserListCmd(g *globals) *cobra.Command {
	out := new(string)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List accounts with their roles, groups and last login",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			if *out == "json" {
				if list == nil {
					list = []apitypes.User{}
				}
				return printJSON(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tSOURCE\tGROUPS\tCREATED\tLAST LOGIN")
			for _, u := range list {
				last := "-"
				if !u.LastLogin.IsZero() {
					last = u.LastLogin.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, u.Source, groupList(u.Groups), u.CreatedAt.Local().Format(time.DateTime), last)
			}
			return tw.Flush()
		},
	}
	out = outputFlag(cmd)
	return cmd
}

func newUserRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an account and end its console sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.RemoveUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "removed user %s\n", args[0])
			return nil
		},
	}
}

func newUserPasswdCmd(g *globals) *cobra.Command {
	var pf passwordFlags
	cmd := &cobra.Command{
		Use:   "passwd NAME (--password-stdin | --password-env VAR)",
		Short: "Set a local account's password and end its console sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := pf.read(g)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.SetUserPassword(cmd.Context(), args[0], pw); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "changed the password of %s; its sessions are ended\n", args[0])
			return nil
		},
	}
	pf.add(cmd)
	return cmd
}

// groupList prints groups comma-separated (a group name has no comma), or
// "-" for none.
func groupList(groups []string) string {
	if len(groups) == 0 {
		return "-"
	}
	return strings.Join(groups, ",")
}

func newUserGroupsCmd(g *globals) *cobra.Command {
	var set, add, remove []string
	out := new(string)
	cmd := &cobra.Command{
		Use:   "groups NAME (--set G,... | [--add G]... [--remove G]...)",
		Short: "Set, add or remove the groups of a local account",
		Long: `Set, add or remove the groups of a local account (as tctl users update
--set-roles does for roles). --set replaces them all (--set "" removes
every group); --add and --remove change some, and may be combined with
each other and with --set. Each takes a group per use or a comma-separated
list.

A group name is 1 to 128 letters, digits, spaces and . _ @ + - / : =,
starting with a letter, digit or /; names compare exactly, so Leads and
leads are two groups. A change applies to the human's next decision:
approvals read the groups at each one. An OIDC account's groups come from
its provider's groups claim at every login and cannot be changed here.`,
		Example: `  writ user groups bob --add finance
  writ user groups bob --set comms-leads,security
  writ user groups bob --remove finance --add audit
  writ user groups bob --set ""`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			req := apitypes.GroupsRequest{Add: add, Remove: remove}
			if cmd.Flags().Changed("set") {
				l := append([]string{}, set...)
				req.Set = &l
			}
			if req.Set == nil && len(add) == 0 && len(remove) == 0 {
				return fmt.Errorf("say how to change the groups of %s: --set G,..., --add G or --remove G", args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			u, err := c.ChangeUserGroups(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, u)
			}
			if len(u.Groups) == 0 {
				fmt.Fprintf(g.stdout, "user %s is in no group\n", u.Name)
			} else {
				fmt.Fprintf(g.stdout, "user %s is in groups %s\n", u.Name, strings.Join(u.Groups, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&set, "set", nil, "the account's groups, replacing all it has (\"\" for none)")
	cmd.Flags().StringSliceVar(&add, "add", nil, "a group to add (repeat, or separate with commas)")
	cmd.Flags().StringSliceVar(&remove, "remove", nil, "a group to remove (repeat, or separate with commas)")
	out = outputFlag(cmd)
	return cmd
}
