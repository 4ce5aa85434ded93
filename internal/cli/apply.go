package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/learn"
	"github.com/writ-dev/writ/internal/resource"
)

func newApplyCmd(g *globals) *cobra.Command {
	var (
		files  []string
		dryRun bool
		digest string
	)
	var out *string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR [-f ...]",
		Short: "Create or update declarative resources (Identity, AccessPolicy, ...)",
		Long: `Send YAML documents to the server. Every document is validated first;
nothing is stored unless all are valid. Errors name file, line, column
and field. A directory means its *.yaml and *.yml files. "-" reads stdin.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("-f FILE is required (a YAML file, a directory of them, or - for stdin)")
			}
			req := apitypes.ApplyRequest{DryRun: dryRun}
			for _, f := range files {
				fs, err := readApplyFiles(g, f)
				if err != nil {
					return err
				}
				req.Files = append(req.Files, fs...)
			}
			if digest != "" {
				if err := checkDigest(req.Files, digest); err != nil {
					return err
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			resp, err := c.Apply(cmd.Context(), req)
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, resp)
			}
			for _, r := range resp.Results {
				v := ""
				if r.Version > 0 {
					v = fmt.Sprintf(" (version %d)", r.Version)
				}
				if r.Mode == "observe" {
					v += " in observe mode: recorded, not enforced; see `writ policy observe " + r.Name + "`"
				}
				fmt.Fprintf(g.stdout, "%s/%s %s%s\n", r.Kind, r.Name, r.Action, v)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate on the server without storing")
	cmd.Flags().StringVar(&digest, "expect-digest", "", "refuse unless the files have this digest (from writ policy learn)")
	out = outputFlag(cmd)
	return cmd
}

// checkDigest refuses files whose digest (see learn.Digest: by base
// name and content) is not want.
func checkDigest(files []apitypes.ApplyFile, want string) error {
	fs := make([]learn.File, len(files))
	for i, f := range files {
		fs[i] = learn.File{Name: filepath.Base(f.Name), Content: []byte(f.Content)}
	}
	if got := learn.Digest(fs); got != want {
		return fmt.Errorf("apply: the files have digest %s, not the reviewed %s: they changed since review; review them again (writ policy replay) and apply with their new digest", got, want)
	}
	return nil
}

func readApplyFiles(g *globals, p string) ([]apitypes.ApplyFile, error) {
	if p == "-" {
		b, err := io.ReadAll(io.LimitReader(g.stdin, resource.MaxFileSize+1))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return []apitypes.ApplyFile{{Name: "<stdin>", Content: string(b)}}, nil
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	paths := []string{p}
	if fi.IsDir() {
		paths = nil
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("read directory %s: %w", p, err)
		}
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				paths = append(paths, filepath.Join(p, e.Name()))
			}
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("read directory %s: no .yaml or .yml files in it", p)
		}
	}
	var out []apitypes.ApplyFile
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if len(b) > resource.MaxFileSize {
			return nil, fmt.Errorf("read %s: %d bytes, more than the %d allowed", path, len(b), resource.MaxFileSize)
		}
		out = append(out, apitypes.ApplyFile{Name: path, Content: string(b)})
	}
	return out, nil
}

// kindArg resolves a kind name case-insensitively, also accepting plurals
// ("identities", "accesspolicies").
func kindArg(s string) (string, error) {
	l := strings.ToLower(s)
	for _, k := range resource.Kinds {
		kl := strings.ToLower(k)
		if l == kl || l == kl+"s" || (strings.HasSuffix(kl, "y") && l == kl[:len(kl)-1]+"ies") {
			return k, nil
		}
	}
	return "", fmt.Errorf("kind %q: one of %s", s, strings.Join(resource.Kinds, ", "))
}

func newGetCmd(g *globals) *cobra.Command {
	var out *string
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "Show stored resources (-o yaml prints documents that writ apply takes back unchanged)",
		Example: `  writ get accesspolicies
  writ get AccessPolicy email-drafter -o yaml > email-drafter.yaml
  writ get Identity drafter -o yaml | writ apply -f -   # unchanged`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if *out != "yaml" {
				if err := checkOutput(*out); err != nil {
					return fmt.Errorf("--output %q: use table, json or yaml", *out)
				}
			}
			kind, err := kindArg(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var list []apitypes.Resource
			if len(args) == 2 {
				r, err := c.GetResource(cmd.Context(), kind, args[1])
				if err != nil {
					return err
				}
				list = []apitypes.Resource{r}
			} else if list, err = c.ListResources(cmd.Context(), kind); err != nil {
				return err
			}
			if *out == "json" {
				if len(args) == 2 {
					return printJSON(g.stdout, list[0])
				}
				return printJSON(g.stdout, list)
			}
			slices.SortFunc(list, func(a, b apitypes.Resource) int { return strings.Compare(a.Name, b.Name) })
			if *out == "yaml" {
				return writeYAML(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tNAME\tVERSION\tUPDATED\tBY")
			for _, r := range list {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Kind, r.Name, r.Version, r.UpdatedAt.Format("2006-01-02 15:04:05"), orDash(r.Actor))
			}
			return tw.Flush()
		},
	}
	out = outputFlag(cmd)
	cmd.Flag("output").Usage = "output format: table, json or yaml (documents for writ apply)"
	return cmd
}

func newDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete KIND NAME",
		Short: "Delete a stored resource",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := kindArg(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteResource(cmd.Context(), kind, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "deleted %s/%s\n", kind, args[1])
			return nil
		},
	}
}
