package cli

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/mcp"
	"github.com/writ-dev/writ/internal/mcplint"
)

func newMCPCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Administer the MCP gateway: tool pins and approvals, servers, signed manifests, the poisoning lint",
	}
	cmd.AddCommand(newMCPPinsCmd(g), newMCPApproveCmd(g), newMCPServersCmd(g), newMCPSignCmd(g), newMCPLintCmd(g))
	return cmd
}

func newMCPPinsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pins [SERVER]",
		Short: "List the pinned, quarantined and approved tools of the MCP servers",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			list, err := c.MCPPins(cmd.Context(), server)
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVER\tTOOL\tSTATE\tDIGEST\tUPDATED\tREASON")
			for _, p := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Server, p.Tool, p.State, shortDigest(p.Observed),
					p.UpdatedAt.Local().Format(time.DateTime), dash(p.Reason))
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd)
	return cmd
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

func newMCPApproveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approve SERVER TOOL",
		Short: "Trust the descriptor a quarantined tool announces now (after reviewing it)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			p, err := c.MCPApprove(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, p)
			}
			fmt.Fprintf(g.stdout, "approved tool %s of MCP server %s (%s)\n", p.Tool, p.Server, p.Digest)
			return nil
		},
	}
	outputFlag(cmd)
	return cmd
}

func newMCPServersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "servers",
		Short: "List the MCP servers the gateway serves, with their upstream's state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.MCPServers(cmd.Context())
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tPIN\tCONNECTED\tSTARTS\tTOOLS\tQUARANTINED\tUPSTREAM")
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%t\t%d\t%d\t%d\t%s\n", s.Name, s.Version, s.Pin, s.Connected, s.Starts, s.Tools, s.Quarantined, s.Upstream)
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd)
	return cmd
}

func newMCPSignCmd(g *globals) *cobra.Command {
	var keyFile, newKey, server, outFile string
	cmd := &cobra.Command{
		Use:   "sign --key KEY.pem TOOLS.json",
		Short: "Sign a server's tools/list result as a manifest for pin: signed (offline)",
		Long: `Sign reads a server's tools/list result (a JSON-RPC response, its result,
or an array of tools; "-" reads standard input) and writes the signed
manifest that an MCPServer with pin: signed checks its tools against
(format in docs/mcp.md). The key is an Ed25519 private key in PKCS#8 PEM
(openssl genpkey -algorithm ed25519); --new-key FILE creates one. The
publisher key to put in the MCPServer is printed on standard error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw []byte
			var err error
			if args[0] == "-" {
				raw, err = io.ReadAll(io.LimitReader(g.stdin, mcp.MaxToolsList+1))
			} else {
				raw, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("read tools list: %w", err)
			}
			tools, err := mcp.ParseToolsList(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			key, err := signingKey(keyFile, newKey)
			if err != nil {
				return err
			}
			m, err := mcp.SignManifest(server, tools, key)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				return err
			}
			b = append(b, '\n')
			if outFile == "" {
				_, err = g.stdout.Write(b)
			} else {
				err = os.WriteFile(outFile, b, 0o644)
			}
			if err != nil {
				return fmt.Errorf("write manifest: %w", err)
			}
			fmt.Fprintf(g.stderr, "signed %d tools; publisher_key: %s\n", len(m.Tools), mcp.FormatPublicKey(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "Ed25519 private key, PKCS#8 PEM")
	f.StringVar(&newKey, "new-key", "", "create a new Ed25519 private key in this file (mode 0600) and sign with it")
	f.StringVar(&server, "server", "", "the publisher's name for the server, recorded in the manifest")
	f.StringVarP(&outFile, "out", "o", "", "write the manifest to this file instead of standard output")
	return cmd
}

// signingKey reads an Ed25519 private key, or creates one in newKey.
func signingKey(keyFile, newKey string) (ed25519.PrivateKey, error) {
	switch {
	case (keyFile == "") == (newKey == ""):
		return nil, errors.New("name the signing key with exactly one of --key FILE or --new-key FILE")
	case newKey != "":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(newKey, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create key: %w", err)
		}
		defer f.Close()
		if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
			return nil, fmt.Errorf("write key %s: %w", newKey, err)
		}
		return priv, f.Close()
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PKCS#8 PEM private key (PRIVATE KEY block)", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", keyFile, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key (create one with openssl genpkey -algorithm ed25519)", keyFile)
	}
	return priv, nil
}

func newMCPLintCmd(g *globals) *cobra.Command {
	var output, server string
	cmd := &cobra.Command{
		Use:   "lint (TOOLS.json | --server NAME)",
		Short: "Flag poisoned tool descriptions in a tools/list result or a live MCP server (exit 1 on a high finding)",
		Long: `Lint reads a tools/list result (a JSON-RPC response, its result, or an
array of tools; "-" reads standard input) and reports hidden instructions,
shadowing, invisible characters, exfiltration cues, embedded secrets and
suspicious schema fields (rules in docs/mcp-lint.md). It exits 1 when any
finding is high, 2 on a usage or read error.

With --server NAME instead of a file, the running writ lists the tools the
MCPServer NAME announces now (quarantined ones included, exactly as its
upstream sends them) and those are linted. Listing re-checks the server's
pins, as any re-check does.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (server != "") {
				return exitCode(2, errors.New("name exactly one of a tools/list file (TOOLS.json, or - for standard input) or --server NAME"))
			}
			format := strings.ToLower(output)
			switch format {
			case "table":
				format = "text"
			case "text", "json", "sarif":
			default:
				return exitCode(2, fmt.Errorf("--output %q: use text, json or sarif", output))
			}
			var r io.Reader = g.stdin
			switch {
			case server != "":
				c, err := g.client()
				if err != nil {
					return exitCode(2, err)
				}
				list, err := c.MCPTools(cmd.Context(), server)
				if err != nil {
					return exitCode(2, fmt.Errorf("list the tools of MCP server %s: %w", server, err))
				}
				b, err := json.Marshal(list)
				if err != nil {
					return exitCode(2, err)
				}
				r = namedReader{Reader: bytes.NewReader(b), name: "mcp-server:" + server}
			case args[0] != "-":
				f, err := os.Open(args[0])
				if err != nil {
					return exitCode(2, fmt.Errorf("read tools list: %w", err))
				}
				defer f.Close()
				r = f
			}
			high, err := mcplint.Run(cmd.Context(), r, format, g.stdout)
			if err != nil {
				return exitCode(2, err)
			}
			if high {
				return exitCode(1, errors.New("high findings: the tools look poisoned"))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or sarif")
	cmd.Flags().StringVar(&server, "server", "", "lint the tools the MCPServer of this name announces now, through the running writ")
	return cmd
}

// namedReader names a report's artifact (SARIF's artifact location).
type namedReader struct {
	io.Reader
	name string
}

func (n namedReader) Name() string { return n.name }
