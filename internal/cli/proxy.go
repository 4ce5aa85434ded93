package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newProxyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Access proxy tools",
	}
	cmd.AddCommand(newProxyCACmd(g))
	return cmd
}

func newProxyCACmd(g *globals) *cobra.Command {
	var outFile string
	cmd := &cobra.Command{
		Use:   "ca [--out FILE]",
		Short: "Export the proxy's interception CA certificate (PEM)",
		Long: `Export the certificate of the access proxy's dedicated interception CA.
Agents that reach intercepted services through HTTPS_PROXY, or the proxy's
TLS listener, trust it like this:

  writ proxy ca --out writ-proxy-ca.pem
  SSL_CERT_FILE=writ-proxy-ca.pem HTTPS_PROXY=http://127.0.0.1:8181 python agent.py

The CA signs only the proxy's own leaf certificates; it is not writ's
SPIFFE CA.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			pem, err := c.ProxyCA(cmd.Context())
			if err != nil {
				return err
			}
			if outFile == "" {
				_, err = g.stdout.Write(pem)
				return err
			}
			if err := os.WriteFile(outFile, pem, 0o644); err != nil {
				return fmt.Errorf("write proxy CA: %w", err)
			}
			fmt.Fprintf(g.stderr, "wrote the proxy CA certificate to %s\n", outFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&outFile, "out", "", "write to this file instead of standard output")
	return cmd
}
