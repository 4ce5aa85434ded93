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
made on their own behalf. Accounts that log in through an OIDC provider
(console.oidc in writ.yaml) appear here after their first login.`,
	}
	cmd.AddCommand(newUserAddCmd(g), newUserListCmd(g), newUserRemoveCmd(g), newUserPasswdCmd(g))
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
		pf   passwordFlags
		role string
	)
	out := new(string)
	cmd := &cobra.Command{
		Use:     "add NAME --role viewer|approver|admin (--password-stdin | --password-env VAR)",
		Short:   "Create a local account (password hashed with argon2id, at least 12 characters)",
		Example: `  printf '%s\n' "$ALICE_PASSWORD" | writ user add alice --role approver --password-stdin`,
		Args:    cobra.ExactArgs(1),
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
			u, err := c.AddUser(cmd.Context(), args[0], role, pw)
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, u)
			}
			fmt.Fprintf(g.stdout, "added user %s (%s)\n", u.Name, u.Role)
			return nil
		},
	}
	pf.add(cmd)
	cmd.Flags().StringVar(&role, "role", "", "viewer, approver or admin")
	out = outputFlag(cmd)
	return cmd
}

func newUserListCmd(g *globals) *cobra.Command {
	out := new(string)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List accounts with their roles and last login",
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
			fmt.Fprintln(tw, "NAME\tROLE\tSOURCE\tCREATED\tLAST LOGIN")
			for _, u := range list {
				last := "-"
				if !u.LastLogin.IsZero() {
					last = u.LastLogin.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, u.Source, u.CreatedAt.Local().Format(time.DateTime), last)
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
