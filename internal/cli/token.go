package cli

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/token"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Exchange, introspect and revoke access tokens (RFC 8693, 7662, 7009)",
	}
	cmd.AddCommand(newTokenExchangeCmd(g), newTokenIntrospectCmd(g), newTokenRevokeCmd(g), newTokenSVIDCmd(g))
	return cmd
}

func newTokenExchangeCmd(g *globals) *cobra.Command {
	var (
		as        agentFlags
		task      string
		audience  string
		scopes    []string
		singleUse bool
	)
	cmd := &cobra.Command{
		Use:   "exchange --task ID --audience AUD [--scope S ...] (--svid-file F | --socket ADDR)",
		Short: "Exchange the agent's JWT-SVID for a short-lived access token",
		Long: `Exchange an agent's JWT-SVID for an access token (RFC 8693) scoped to one
audience and a subset of its task's scopes. The JWT-SVID comes from
--svid-file or from the Workload API (--socket, default SPIFFE_ENDPOINT_SOCKET).
The answer (JSON) holds the token: treat it as a secret.

This command gets bearer tokens. For tokens bound to a key, use an mTLS
client (RFC 8705) or send a DPoP proof (RFC 9449) from your own code.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if task == "" || audience == "" {
				return fmt.Errorf("--task and --audience are required")
			}
			svid, err := as.svid(cmd.Context(), g)
			if err != nil {
				return err
			}
			c, err := clientNoAuth(g)
			if err != nil {
				return err
			}
			form := url.Values{"grant_type": {token.GrantExchange}, "subject_token": {svid}, "subject_token_type": {token.TypeJWT},
				"audience": {audience}, "task": {task}}
			if len(scopes) > 0 {
				form.Set("scope", strings.Join(scopes, " "))
			}
			if singleUse {
				form.Set("single_use", "true")
			}
			var resp map[string]any
			if err := c.PostForm(cmd.Context(), "/oauth2/token", form, &resp); err != nil {
				return err
			}
			return printJSON(g.stdout, resp)
		},
	}
	cmd.Flags().StringVar(&task, "task", "", "task id the token is minted under (required)")
	cmd.Flags().StringVar(&audience, "audience", "", "the one service the token is for (required)")
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "scope (repeatable; default: all of the task's scopes)")
	cmd.Flags().BoolVar(&singleUse, "single-use", false, "a token the resource server accepts once")
	as.add(cmd)
	return cmd
}

// readTokenArg returns the token argument, or stdin for "-".
func readTokenArg(g *globals, arg string) (string, error) {
	if arg != "-" {
		return arg, nil
	}
	b, err := io.ReadAll(io.LimitReader(g.stdin, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read token from stdin: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func newTokenIntrospectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "introspect TOKEN|-",
		Short: "Show whether a token is active and its claims (RFC 7662)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := readTokenArg(g, args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var out map[string]any
			if err := c.PostForm(cmd.Context(), "/oauth2/introspect", url.Values{"token": {raw}}, &out); err != nil {
				return err
			}
			if err := printJSON(g.stdout, out); err != nil {
				return err
			}
			if active, _ := out["active"].(bool); !active {
				return exitCode(1, fmt.Errorf("token is not active"))
			}
			return nil
		},
	}
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke TOKEN|-",
		Short: "Revoke one access token (RFC 7009)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := readTokenArg(g, args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.PostForm(cmd.Context(), "/oauth2/revoke", url.Values{"token": {raw}}, nil); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "revoked")
			return nil
		},
	}
}

func newTokenSVIDCmd(g *globals) *cobra.Command {
	var as agentFlags
	cmd := &cobra.Command{
		Use:   "svid [--socket ADDR]",
		Short: "Print this process's JWT-SVID for the server's issuer (for --svid-file)",
		Long: `Fetch a JWT-SVID whose audience is the server's issuer URL from the Workload
API and print it. Tasks belong to the agent instance that opened them, and
every writ invocation is its own instance: to open a task and exchange
tokens for it from the shell, fetch one SVID and pass it to both with
--svid-file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := as.svid(cmd.Context(), g)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, s)
			return nil
		},
	}
	cmd.Flags().StringVar(&as.socket, "socket", "", "Workload API address (default SPIFFE_ENDPOINT_SOCKET)")
	return cmd
}
