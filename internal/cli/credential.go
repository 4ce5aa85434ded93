package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/broker"
)

func newCredentialCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credential",
		Short: "Manage sealed upstream credentials that the access proxy injects (values are never printed)",
	}
	cmd.AddCommand(newCredentialPutCmd(g, false), newCredentialPutCmd(g, true), newCredentialListCmd(g), newCredentialDeleteCmd(g))
	return cmd
}

// valueFlags are the three ways to pass a value; never as an argument,
// which would land in shell history and in ps output.
type valueFlags struct {
	stdin bool
	file  string
	env   string
}

func (v *valueFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&v.stdin, "value-stdin", false, "read the value from standard input (one trailing newline is removed)")
	f.StringVar(&v.file, "from-file", "", "read the value from this file (used exactly, one trailing newline removed)")
	f.StringVar(&v.env, "from-env", "", "read the value from this environment variable")
}

func (v *valueFlags) read(g *globals) (broker.Secret, error) {
	n := 0
	for _, set := range []bool{v.stdin, v.file != "", v.env != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return broker.Secret{}, fmt.Errorf("pass the value with exactly one of --value-stdin, --from-file FILE or --from-env VAR (never on the command line)")
	}
	var b []byte
	var err error
	switch {
	case v.stdin:
		b, err = io.ReadAll(io.LimitReader(g.stdin, broker.MaxValue+2))
		if err != nil {
			return broker.Secret{}, fmt.Errorf("read value from stdin: %w", err)
		}
	case v.file != "":
		b, err = os.ReadFile(v.file)
		if err != nil {
			return broker.Secret{}, fmt.Errorf("read value: %w", err)
		}
	default:
		s, ok := os.LookupEnv(v.env)
		if !ok {
			return broker.Secret{}, fmt.Errorf("--from-env %s: the variable is not set", v.env)
		}
		b = []byte(s)
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	s := broker.NewSecret(b)
	clear(b)
	return s, nil
}

func newCredentialPutCmd(g *globals, rotate bool) *cobra.Command {
	var (
		vf  valueFlags
		typ string
	)
	out := new(string)
	use, short := "put NAME (--value-stdin | --from-file F | --from-env VAR) [--type bearer|basic|header|query]", "Store a new upstream credential, sealed at rest"
	if rotate {
		use, short = "rotate NAME (--value-stdin | --from-file F | --from-env VAR) [--type TYPE]", "Replace a credential's value; requests that start afterwards use the new one"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

Types say how the value is shaped and injected by default:
  bearer  Authorization: Bearer VALUE
  basic   VALUE is USER:PASSWORD, sent as HTTP basic authentication
  header  a header the Service names (credential.header, credential.template)
  query   a query parameter the Service names (credential.query)

Example:
  printf %s "$GITHUB_TOKEN" | writ credential put github --value-stdin --type bearer`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			t := broker.Type(typ)
			if typ != "" {
				var err error
				if t, err = broker.ParseType(typ); err != nil {
					return err
				}
			} else if !rotate {
				t = broker.Bearer
			}
			v, err := vf.read(g)
			if err != nil {
				return err
			}
			if err := broker.Validate(args[0], orType(t, broker.Bearer), v); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var info apitypes.Credential
			if rotate {
				info, err = c.RotateCredential(cmd.Context(), args[0], string(t), v.Reveal())
			} else {
				info, err = c.PutCredential(cmd.Context(), args[0], string(t), v.Reveal())
			}
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, info)
			}
			verb := "stored"
			if rotate {
				verb = "rotated"
			}
			fmt.Fprintf(g.stdout, "%s credential %s (%s, version %d)\n", verb, info.Name, info.Type, info.Version)
			return nil
		},
	}
	vf.add(cmd)
	cmd.Flags().StringVar(&typ, "type", "", "bearer (default for put), basic, header or query")
	out = outputFlag(cmd)
	return cmd
}

func orType(t, def broker.Type) broker.Type {
	if t == "" {
		return def
	}
	return t
}

func newCredentialListCmd(g *globals) *cobra.Command {
	out := new(string)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List credentials (names, types and versions; never values)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.ListCredentials(cmd.Context())
			if err != nil {
				return err
			}
			if *out == "json" {
				if list == nil {
					list = []apitypes.Credential{}
				}
				return printJSON(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE\tVERSION\tUPDATED\tBY")
			for _, i := range list {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", i.Name, i.Type, i.Version, i.UpdatedAt.Local().Format(time.DateTime), i.Actor)
			}
			return tw.Flush()
		},
	}
	out = outputFlag(cmd)
	return cmd
}

func newCredentialDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a credential; Services that inject it answer 502 until it is put again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteCredential(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "deleted credential %s\n", args[0])
			return nil
		},
	}
}
