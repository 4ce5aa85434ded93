package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// versionInfo describes this binary from its build information.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	CommitAt  string `json:"commit_time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go"`
	Platform  string `json:"platform"`
}

func readVersion() versionInfo {
	v := versionInfo{Version: "(devel)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitAt = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func newVersionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print writ's version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.Flag("output").Value.String()
			if err := checkOutput(out); err != nil {
				return err
			}
			v := readVersion()
			if out == "json" {
				return printJSON(g.stdout, v)
			}
			fmt.Fprintf(g.stdout, "writ %s", v.Version)
			if v.Commit != "" {
				fmt.Fprintf(g.stdout, " (commit %.12s", v.Commit)
				if v.Modified {
					fmt.Fprint(g.stdout, ", modified")
				}
				fmt.Fprint(g.stdout, ")")
			}
			fmt.Fprintf(g.stdout, " %s %s\n", v.GoVersion, v.Platform)
			return nil
		},
	}
	outputFlag(cmd)
	return cmd
}

func newInstanceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "Attested process instances (the inst_... IDs in SVIDs, tokens and events)",
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List attested instances: ID, pid, uid, executable, first and last seen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, c, err := g.outputClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.ListInstances(cmd.Context())
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(g.stdout, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPID\tUID\tEXECUTABLE\tFIRST SEEN\tLAST SEEN")
			for _, i := range list {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", i.ID, i.PID, i.UID, i.Exe,
					i.FirstSeen.Local().Format("2006-01-02 15:04:05"), i.LastSeen.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	outputFlag(list)
	cmd.AddCommand(list)
	return cmd
}
