package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/writ-dev/writ/internal/auditlog"
	"golang.org/x/mod/sumdb/note"
)

// auditKeyLines reads --key values: a verifier key, or @FILE holding one
// key per line.
func auditKeyLines(vals []string) ([]string, error) {
	var keys []string
	for _, v := range vals {
		if path, ok := strings.CutPrefix(v, "@"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("--key %s: %w", v, err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					keys = append(keys, line)
				}
			}
			continue
		}
		keys = append(keys, v)
	}
	return keys, nil
}

// defaultAuditStateDir is where `writ audit verify` remembers the latest
// checkpoint it verified of each log: $XDG_CONFIG_HOME/writ/audit
// (~/.config/writ/audit on Linux).
func defaultAuditStateDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "writ", "audit"), nil
}

// remembered is the latest checkpoint verified earlier of a log, if any.
type remembered struct {
	file auditlog.CheckpointFile
	note []byte
}

// loadRemembered returns the largest checkpoint remembered in dir for any
// of the log's keys.
func loadRemembered(dir string, vkeys []string) (remembered, error) {
	var best remembered
	bestSize := int64(-1)
	for _, vkey := range vkeys {
		f := auditlog.RememberedFile(dir, vkey)
		msg, err := f.Read()
		if err != nil {
			return best, fmt.Errorf("read the last verified checkpoint: %w (move the file away to start afresh)", err)
		}
		if msg == nil {
			continue
		}
		cp, err := auditlog.ParseCheckpointNote(msg)
		if err != nil {
			return best, fmt.Errorf("read the last verified checkpoint %s: %w (move the file away to start afresh)", f.Path, err)
		}
		if cp.Size > bestSize {
			best, bestSize = remembered{file: f, note: msg}, cp.Size
		}
	}
	return best, nil
}

// rememberLatest keeps latest, the log's newest signed checkpoint, in dir
// under the key that signed it, unless a larger one is kept there. It
// returns the file written, or "" if none was.
func rememberLatest(dir string, vkeys []string, latest []byte) (string, error) {
	cp, err := auditlog.ParseCheckpointNote(latest)
	if err != nil {
		return "", err
	}
	for _, vkey := range vkeys {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			continue
		}
		if _, err := note.Open(latest, note.VerifierList(v)); err != nil {
			continue
		}
		f := auditlog.RememberedFile(dir, vkey)
		if old, err := f.Read(); err == nil && old != nil {
			if oc, err := auditlog.ParseCheckpointNote(old); err == nil && oc.Size > cp.Size {
				return "", nil
			}
		}
		if err := f.Write(latest); err != nil {
			return "", err
		}
		return f.Path, nil
	}
	return "", fmt.Errorf("no trusted key signed the latest checkpoint")
}

// printCosignatures lists the signatures on the latest checkpoint other
// than the log's: those of witnesses.
func printCosignatures(g *globals, latest []byte, trusted note.Verifiers, witnessKeys []string) error {
	var list []note.Verifier
	given := map[string]bool{}
	for _, k := range witnessKeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return fmt.Errorf("--witness-key %q: %v (want the witness's NAME+HASH+KEY)", k, err)
		}
		list = append(list, v)
		given[fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())] = true
	}
	names, verified, err := auditlog.Cosignatures(latest, trusted, list)
	if err != nil {
		return err
	}
	bad := 0
	for i, name := range names {
		switch {
		case verified[i]:
			fmt.Fprintf(g.stdout, "latest checkpoint cosigned by witness %s: signature checked\n", name)
		case given[name]:
			fmt.Fprintf(g.stdout, "latest checkpoint cosigned by witness %s: signature INVALID\n", name)
			bad++
		default:
			fmt.Fprintf(g.stdout, "latest checkpoint cosigned by witness %s: not checked (give its key with --witness-key)\n", name)
		}
	}
	if bad > 0 {
		return exitCode(1, fmt.Errorf("%d witness cosignatures on the latest checkpoint do not verify", bad))
	}
	return nil
}
