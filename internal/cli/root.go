// Package cli is writ's command tree. Commands are thin: parse flags, call
// the admin API through internal/client (or, for offline tools, a library
// package), and print the result as text or JSON. Only `writ serve` and the
// offline tools touch local state directly.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit code out of a command (for example 1
// for "verification failed" as opposed to 2 for usage errors).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode wraps err so that Main exits with code.
func exitCode(code int, err error) error { return &exitError{code: code, err: err} }

// globals are the flags and streams every command shares.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	addr           string
	token          string
	dataDir        string
	// getenv reads the environment at run time (os.Getenv; tests replace
	// it). Secrets from the environment are read through it when a
	// command runs, never put in a flag's default, which --help prints.
	getenv func(string) string
}

// Main runs the CLI with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "writ:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "writ",
		Short:         "Identity access layer for AI agents and other non-human identities",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.addr, "addr", envOr("WRIT_ADDR", "http://127.0.0.1:8080"), "writ server URL (env WRIT_ADDR)")
	// No default from WRIT_TOKEN here: cobra prints defaults in --help.
	root.PersistentFlags().StringVar(&g.token, "token", "", "admin credential (default: env WRIT_TOKEN, else DATA_DIR/admin.token)")
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", envOr("WRIT_DATA_DIR", "./writ-data"), "data directory (env WRIT_DATA_DIR)")
	// One line per command group; each lives in its own file.
	root.AddCommand(newServeCmd(g), newEntryCmd(g), newApplyCmd(g), newGetCmd(g), newDeleteCmd(g))
	root.AddCommand(newPolicyCmd(g))
	root.AddCommand(newCredentialCmd(g), newProxyCmd(g))
	root.AddCommand(newTaskCmd(g), newTokenCmd(g), newRevokeCmd(g), newApprovalCmd(g))
	root.AddCommand(newAuditCmd(g))
	root.AddCommand(newInstanceCmd(g), newSVIDCmd(g), newVersionCmd(g))
	root.AddCommand(newScanCmd(g))
	root.AddCommand(newDiscoverCmd(g), newInventoryCmd(g), newLineageCmd(g), newAlertCmd(g), newPostureCmd(g), newTierCmd(g))
	root.AddCommand(newMCPCmd(g), newNodeCmd(g))
	root.AddCommand(newUserCmd(g), newDemoCmd(g))
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// adminToken returns the admin credential: --token, else WRIT_TOKEN, else
// the token file that `writ serve` wrote in the data directory.
func (g *globals) adminToken() (string, error) {
	if g.token != "" {
		return g.token, nil
	}
	if t := g.getenv("WRIT_TOKEN"); t != "" {
		return t, nil
	}
	path := filepath.Join(g.dataDir, "admin.token")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no admin credential: set WRIT_TOKEN or --token, or run from the directory where `writ serve` wrote %s (%v)", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// outputFlag adds --output to cmd and returns the pointer to its value.
func outputFlag(cmd *cobra.Command) *string {
	var out string
	cmd.Flags().StringVarP(&out, "output", "o", "table", "output format: table or json")
	return &out
}

func checkOutput(format string) error {
	switch format {
	case "table", "json", "text":
		return nil
	}
	return fmt.Errorf("--output %q: use table or json", format)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
