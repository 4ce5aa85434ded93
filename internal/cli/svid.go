package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

func newSVIDCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "svid",
		Short: "Fetch this process's X.509-SVID from the Workload API, as a workload does",
	}
	cmd.AddCommand(newSVIDFetchCmd(g))
	return cmd
}

// svidFile is one file fetch writes.
type svidFile struct {
	Path string      `json:"path"`
	Mode os.FileMode `json:"-"`
	Data []byte      `json:"-"`
}

func newSVIDFetchCmd(g *globals) *cobra.Command {
	var (
		socket, dir string
		timeout     time.Duration
		out         *string
	)
	cmd := &cobra.Command{
		Use:   "fetch [--socket ADDR] [--write DIR]",
		Short: "Fetch X.509-SVIDs and trust bundles; with --write, save them as PEM files",
		Long: `Fetch this process's X.509-SVIDs from the SPIFFE Workload API (go-spiffe's
client, as any workload would) and print their SPIFFE IDs and expiry.

With --write DIR, save them like 'spire-agent api fetch x509 -write DIR': for
SVID number N, svid.N.pem (the certificate chain, leaf first), svid.N.key
(the PKCS #8 private key, mode 0600) and bundle.N.pem (the trust bundle of
its trust domain). DIR is created (mode 0700) if missing; existing files are
replaced.`,
		Example: `  export SPIFFE_ENDPOINT_SOCKET=unix://$PWD/writ-data/workload.sock
  writ svid fetch
  writ svid fetch --write ./certs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var opts []workloadapi.ClientOption
			if socket != "" {
				opts = append(opts, workloadapi.WithAddr(socket))
			}
			xc, err := workloadapi.FetchX509Context(ctx, opts...)
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					err = fmt.Errorf("no answer within %v (is this process registered? see writ entry list)", timeout)
				}
				return fmt.Errorf("fetch X.509-SVID from the Workload API (set --socket or SPIFFE_ENDPOINT_SOCKET): %w", err)
			}
			type svidOut struct {
				SpiffeID  string     `json:"spiffe_id"`
				Instance  string     `json:"instance,omitempty"`
				ExpiresAt time.Time  `json:"expires_at"`
				Files     []svidFile `json:"files,omitempty"`
			}
			var res []svidOut
			var files []svidFile
			for i, s := range xc.SVIDs {
				o := svidOut{SpiffeID: s.ID.String(), ExpiresAt: s.Certificates[0].NotAfter, Instance: s.Certificates[0].Subject.SerialNumber}
				if dir != "" {
					certs, key, err := s.Marshal()
					if err != nil {
						return fmt.Errorf("encode SVID %s: %w", s.ID, err)
					}
					b, err := xc.Bundles.GetX509BundleForTrustDomain(s.ID.TrustDomain())
					if err != nil {
						return fmt.Errorf("no trust bundle for %s: %w", s.ID.TrustDomain(), err)
					}
					bundle, err := b.Marshal()
					if err != nil {
						return fmt.Errorf("encode trust bundle of %s: %w", s.ID.TrustDomain(), err)
					}
					fs := []svidFile{
						{Path: filepath.Join(dir, fmt.Sprintf("svid.%d.pem", i)), Mode: 0o644, Data: certs},
						{Path: filepath.Join(dir, fmt.Sprintf("svid.%d.key", i)), Mode: 0o600, Data: key},
						{Path: filepath.Join(dir, fmt.Sprintf("bundle.%d.pem", i)), Mode: 0o644, Data: bundle},
					}
					files = append(files, fs...)
					o.Files = fs
				}
				res = append(res, o)
			}
			if dir != "" {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return fmt.Errorf("--write %s: %w", dir, err)
				}
				for _, f := range files {
					if err := writeFileMode(f.Path, f.Data, f.Mode); err != nil {
						return fmt.Errorf("--write %s: %w", dir, err)
					}
				}
			}
			if *out == "json" {
				return printJSON(g.stdout, res)
			}
			for _, o := range res {
				fmt.Fprintf(g.stdout, "%s  instance %s  expires %s\n", o.SpiffeID, dash(o.Instance), o.ExpiresAt.Local().Format(time.DateTime))
				for _, f := range o.Files {
					fmt.Fprintf(g.stdout, "  wrote %s\n", f.Path)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "Workload API address, unix:///path (default SPIFFE_ENDPOINT_SOCKET)")
	cmd.Flags().StringVar(&dir, "write", "", "write svid.N.pem, svid.N.key (0600) and bundle.N.pem into this directory")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	out = outputFlag(cmd)
	return cmd
}

// writeFileMode replaces path with data, with exactly mode (also when the
// file existed with another mode): written to a temporary file in the same
// directory, then renamed over path, so a reader never sees half a key.
func writeFileMode(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
