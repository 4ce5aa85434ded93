package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/writ-dev/writ/internal/auditlog"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/postgres"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"golang.org/x/mod/sumdb/note"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Search, follow, export and verify the tamper-evident audit log",
		Long: `Every access, issuance, decision and change is an event in an append-only
Merkle tree (RFC 6962) whose size and root the server signs in checkpoints.

  writ audit search --spiffe-id spiffe://writ.local/agent --since 1h
  writ audit tail -f --type access.denied
  writ audit export --format jsonl --since 24h > events.jsonl
  writ audit key > audit.key              # the public key; keep it
  writ audit checkpoint > cp.txt          # keep a signed checkpoint
  writ audit verify --key @audit.key --checkpoint cp.txt   # offline, later
  writ audit prove evt_... > proof.json
  writ audit verify-proof proof.json --key @audit.key`,
	}
	cmd.AddCommand(newAuditSearchCmd(g), newAuditTailCmd(g), newAuditExportCmd(g), newAuditVerifyCmd(g),
		newAuditProveCmd(g), newAuditVerifyProofCmd(g), newAuditKeyCmd(g), newAuditCheckpointCmd(g))
	return cmd
}

// auditFilters are the query flags shared by search, tail and export.
type auditFilters struct {
	q            apitypes.AuditQuery
	since, until string
}

func (f *auditFilters) register(cmd *cobra.Command, withTime bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.q.SpiffeID, "spiffe-id", "", "only events of this SPIFFE ID or those under it (spiffe://writ.local/agent matches .../agent/mail)")
	fl.StringVar(&f.q.Instance, "instance", "", "only events of this instance ID")
	fl.StringVar(&f.q.Task, "task", "", "only events of this task ID")
	fl.StringVar(&f.q.Type, "type", "", "only events of this type, e.g. access.denied")
	fl.StringVar(&f.q.Decision, "decision", "", "only events with this decision, e.g. deny")
	if withTime {
		fl.StringVar(&f.since, "since", "", "only events at or after this time: RFC 3339, a date (2026-05-01) or an age (90m, 24h, 7d)")
		fl.StringVar(&f.until, "until", "", "only events before this time (same forms as --since)")
	}
}

// query returns the filters as a query, resolving ages against now.
func (f *auditFilters) query(now time.Time) (apitypes.AuditQuery, error) {
	q := f.q
	var err error
	if q.Since, err = parseAuditTime("--since", f.since, now); err != nil {
		return q, err
	}
	if q.Until, err = parseAuditTime("--until", f.until, now); err != nil {
		return q, err
	}
	return q, nil
}

// parseAuditTime reads an RFC 3339 time, a date, or an age such as 90m,
// 24h or 7d (meaning that long before now).
func parseAuditTime(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	age := s
	days := 0
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err == nil && n >= 0 {
			days, age = n, "0s"
		}
	}
	if d, err := time.ParseDuration(age); err == nil && d >= 0 {
		return now.Add(-d - time.Duration(days)*24*time.Hour), nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time (2026-05-01T12:00:00Z), a date (2026-05-01) or an age (90m, 24h, 7d)", flag, s)
}

func newAuditSearchCmd(g *globals) *cobra.Command {
	var (
		f      auditFilters
		out    *string
		before int64
	)
	cmd := &cobra.Command{
		Use:   "search [--spiffe-id ID] [--instance ID] [--task ID] [--type T] [--decision D] [--since T] [--until T] [--limit N]",
		Short: "Search audit events, newest first",
		Long: `Search audit events, newest first. Filters combine with AND. With
--output json the answer carries next_before; pass it as --before to
fetch the next (older) page.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			q, err := f.query(time.Now())
			if err != nil {
				return err
			}
			q.Before = before
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.AuditSearch(cmd.Context(), q)
			if err != nil {
				return err
			}
			if *out == "json" {
				return printJSON(g.stdout, res)
			}
			if err := printAuditTable(g.stdout, res.Events); err != nil {
				return err
			}
			if res.NextBefore != 0 {
				fmt.Fprintf(g.stderr, "more events: add --before %d\n", res.NextBefore)
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().IntVar(&f.q.Limit, "limit", 50, fmt.Sprintf("at most this many events (1 to %d)", apitypes.MaxAuditLimit))
	cmd.Flags().Int64Var(&before, "before", 0, "only events with an index below this (for paging)")
	out = outputFlag(cmd)
	return cmd
}

// printAuditTable prints entries in a table, oldest at the bottom.
func printAuditTable(w io.Writer, entries []apitypes.AuditEntry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tTYPE\tDECISION\tSPIFFE ID\tINSTANCE\tTASK\tACTION\tTARGET\tID")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Index, e.Time.Local().Format("2006-01-02 15:04:05.000"),
			e.Type, auditDash(e.Decision), auditDash(e.SpiffeID), auditDash(e.Instance), auditDash(e.Task), auditDash(e.Action), auditDash(e.Target), e.ID)
	}
	return tw.Flush()
}

// auditLine formats one entry on one line, for tail.
func auditLine(e apitypes.AuditEntry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s %s", e.Index, e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Type)
	for _, kv := range [][2]string{{"decision", e.Decision}, {"spiffe_id", e.SpiffeID}, {"instance", e.Instance},
		{"task", e.Task}, {"on_behalf_of", e.OnBehalfOf}, {"actor", e.Actor}, {"action", e.Action},
		{"target", e.Target}, {"policy", e.Policy}, {"rule", e.Rule}, {"reason", e.Reason}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], strconv.Quote(kv[1]))
		}
	}
	return b.String()
}

func auditDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newAuditTailCmd(g *globals) *cobra.Command {
	var (
		f      auditFilters
		out    *string
		follow bool
		n      int
	)
	cmd := &cobra.Command{
		Use:   "tail [-f] [-n N] [--spiffe-id ID] [--type T] ...",
		Short: "Print the latest audit events; with -f, follow new ones as they happen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if *out != "table" && *out != "json" {
				return fmt.Errorf("--output %q: use table or json (JSON lines)", *out)
			}
			q, err := f.query(time.Now())
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			emit := func(e apitypes.AuditEntry) error {
				if *out == "json" {
					b, _ := json.Marshal(e)
					_, err := fmt.Fprintf(g.stdout, "%s\n", b)
					return err
				}
				_, err := fmt.Fprintln(g.stdout, auditLine(e))
				return err
			}
			// The newest index first, so that following starts right
			// after what is printed, with no gap and no repeat.
			newest := int64(-1)
			if follow {
				all, err := c.AuditSearch(ctx, apitypes.AuditQuery{Limit: 1})
				if err != nil {
					return err
				}
				if len(all.Events) > 0 {
					newest = all.Events[0].Index
				}
			}
			if n > 0 && (newest >= 0 || !follow) {
				q.Limit = min(n, apitypes.MaxAuditLimit)
				if newest >= 0 {
					q.Before = newest + 1
				}
				res, err := c.AuditSearch(ctx, q)
				if err != nil {
					return err
				}
				for i := len(res.Events) - 1; i >= 0; i-- {
					if err := emit(res.Events[i]); err != nil {
						return err
					}
				}
			}
			if !follow {
				return nil
			}
			q.Limit, q.Before = 0, 0
			return c.AuditTail(ctx, q, newest, emit)
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events as they are appended (server-sent events)")
	cmd.Flags().IntVarP(&n, "lines", "n", 10, "print this many of the latest events first")
	out = outputFlag(cmd)
	return cmd
}

func newAuditExportCmd(g *globals) *cobra.Command {
	var (
		f      auditFilters
		format string
	)
	cmd := &cobra.Command{
		Use:   "export --format jsonl [--since T] [filters]",
		Short: "Write audit events as JSON lines, oldest first, for a SIEM",
		Long: `Write every matching audit event as one JSON object per line, oldest first,
with its index in the log. Exit status 1 means the export was cut short.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "jsonl" {
				return fmt.Errorf("--format %q: the only export format is jsonl", format)
			}
			q, err := f.query(time.Now())
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			body, err := c.AuditExport(cmd.Context(), q)
			if err != nil {
				return err
			}
			defer body.Close()
			bw := bufio.NewWriterSize(g.stdout, 64<<10)
			var last byte = '\n'
			buf := make([]byte, 64<<10)
			for {
				k, rerr := body.Read(buf)
				if k > 0 {
					last = buf[k-1]
					if _, err := bw.Write(buf[:k]); err != nil {
						return err
					}
				}
				if rerr == io.EOF {
					break
				}
				if rerr != nil {
					bw.Flush()
					return exitCode(1, fmt.Errorf("export cut short: %w", rerr))
				}
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if last != '\n' {
				return exitCode(1, errors.New("export cut short by a server error; the last line is incomplete (see the server log)"))
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&format, "format", "jsonl", "output format (jsonl)")
	return cmd
}

// offlineStore is a store opened read-only for an offline tool: a SQLite
// file or a PostgreSQL database.
type offlineStore struct {
	store.Keys
	audit auditlog.Backend
	// path names the store in messages: the file, or the database
	// without its password.
	path string
	// published is where `writ serve` keeps the checkpoint it
	// published.
	published string
	close     func() error
}

func (o *offlineStore) Audit() auditlog.Backend { return o.audit }
func (o *offlineStore) Path() string            { return o.path }
func (o *offlineStore) Close() error            { return o.close() }

// storeDSNEnv names the environment variable that --dsn defaults to, so
// that a DSN holding a password need not be on the command line.
const storeDSNEnv = "WRIT_STORE_DSN"

// auditDB opens read-only the PostgreSQL store dsn names (or
// $WRIT_STORE_DSN), or else the SQLite file dbPath (default: the data
// directory's).
func (g *globals) auditDB(ctx context.Context, dbPath, dsn string) (*offlineStore, error) {
	if dsn == "" && dbPath == "" {
		dsn = os.Getenv(storeDSNEnv)
	}
	if dsn != "" {
		if dbPath != "" {
			return nil, errors.New("--db and --dsn name two stores; give one")
		}
		db, err := postgres.Open(ctx, dsn, postgres.Options{ReadOnly: true, MaxConns: 4})
		if err != nil {
			return nil, fmt.Errorf("--dsn: %w", err)
		}
		return &offlineStore{Keys: db, audit: db.Audit(), path: db.String(),
			published: filepath.Join(g.dataDir, "audit.checkpoint"), close: db.Close}, nil
	}
	if dbPath == "" {
		dbPath = filepath.Join(g.dataDir, "writ.db")
	}
	db, err := sqlite.OpenReadOnly(ctx, dbPath)
	if err != nil {
		return nil, err
	}
	return &offlineStore{Keys: db, audit: db.Audit(), path: db.Path(),
		published: filepath.Join(filepath.Dir(db.Path()), "audit.checkpoint"), close: db.Close}, nil
}

// addDSNFlag registers --dsn on cmd.
func addDSNFlag(cmd *cobra.Command, dsn *string) {
	cmd.Flags().StringVar(dsn, "dsn", "", "PostgreSQL store (store.dsn of writ serve) instead of a store file; default $"+storeDSNEnv+
		"; keep the password in PGPASSWORD or ~/.pgpass rather than on the command line")
}

// trustedAuditKeys parses --key values: a verifier key, or @FILE holding
// one key per line.
func trustedAuditKeys(vals []string) (note.Verifiers, error) {
	keys, err := auditKeyLines(vals)
	if err != nil {
		return nil, err
	}
	return auditlog.ParseVerifierKeys(keys...)
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	var (
		dbPath, dsn, saved    string
		stateDir              string
		keyFlags, witnessKeys []string
		noRemember            bool
		out                   *string
	)
	cmd := &cobra.Command{
		Use:   "verify [--data-dir D] [--key KEY|@FILE] [--checkpoint OLD.txt]",
		Short: "Check offline that the audit log was not edited, truncated or rewritten",
		Long: `Recompute the Merkle tree from every stored event and check every stored
hash and every signed checkpoint. Works on the store file directly (read
only, no key-encryption key needed), also while the server runs.

Any edited, deleted, inserted or reordered event makes verify exit 1,
naming the first bad index and what is wrong.

--key pins the log's public key (from ` + "`writ audit key`" + `); without it the key
stored next to the log is trusted, which catches damage but not someone
who could rewrite the store and its key together.

--checkpoint OLD.txt checks that today's log extends a signed checkpoint
saved earlier (` + "`writ audit checkpoint > OLD.txt`" + `), with a consistency proof.

verify remembers the latest checkpoint it verified of each log (one file
per log key in --state-dir, default ~/.config/writ/audit) and on the next
run checks that the log still extends it: a log whose newest events were
removed together with their checkpoints fails as rolled back. Pass
--no-remember to verify an older copy of a log on purpose.

Signatures of witnesses on the latest checkpoint are listed; --witness-key
checks them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*out); err != nil {
				return err
			}
			ctx := cmd.Context()
			db, err := g.auditDB(ctx, dbPath, dsn)
			if err != nil {
				return err
			}
			defer db.Close()
			var (
				trusted note.Verifiers
				vkeys   []string
			)
			if len(keyFlags) > 0 {
				if vkeys, err = auditKeyLines(keyFlags); err != nil {
					return err
				}
				if trusted, err = auditlog.ParseVerifierKeys(vkeys...); err != nil {
					return err
				}
			} else {
				if trusted, vkeys, err = auditlog.StoredVerifiers(ctx, db); err != nil {
					return err
				}
				fmt.Fprintf(g.stderr, "note: trusting the log key stored in %s (%s); pin it with --key to detect a replaced key\n",
					db.Path(), strings.Join(vkeys, ", "))
			}
			opts := auditlog.VerifyOptions{Trusted: trusted}
			if saved != "" {
				b, err := os.ReadFile(saved)
				if err != nil {
					return fmt.Errorf("--checkpoint: %w", err)
				}
				opts.Saved = auditlog.ReadSignedCheckpoint(b)
			}
			// The checkpoint writ serve published beside the store,
			// if there is one: a store rolled back behind it fails
			// even on a first verify.
			published := auditlog.CheckpointFile{Path: db.published}
			if opts.Published, err = published.Read(); err != nil {
				return err
			}
			opts.PublishedFrom = published.Path
			if !noRemember && stateDir == "" {
				if stateDir, err = defaultAuditStateDir(); err != nil {
					fmt.Fprintf(g.stderr, "note: not remembering checkpoints (%v); give a directory with --state-dir\n", err)
					noRemember = true
				}
			}
			if !noRemember {
				mem, err := loadRemembered(stateDir, vkeys)
				if err != nil {
					return err
				}
				opts.Remembered, opts.RememberedFrom = mem.note, mem.file.Path
			}
			start := time.Now()
			rep, err := auditlog.Verify(ctx, db.Audit(), opts)
			var ve *auditlog.VerifyError
			if errors.As(err, &ve) {
				if opts.Remembered != nil && strings.Contains(ve.Problem, opts.RememberedFrom) {
					return exitCode(1, fmt.Errorf("audit log verification FAILED: %v (to verify an older copy of the log on purpose, pass --no-remember)", ve))
				}
				return exitCode(1, fmt.Errorf("audit log verification FAILED: %v", ve))
			}
			if err != nil {
				return err
			}
			var kept string
			if !noRemember && rep.LatestNote != nil {
				if kept, err = rememberLatest(stateDir, vkeys, rep.LatestNote); err != nil {
					fmt.Fprintf(g.stderr, "note: cannot remember the latest checkpoint in %s: %v; a rollback after this run will not be detected by the next verify\n", stateDir, err)
				}
			}
			if *out == "json" {
				return printJSON(g.stdout, rep)
			}
			fmt.Fprintf(g.stdout, "audit log OK: %d events, every stored hash recomputed, %d signed checkpoints checked (%v)\n",
				rep.Size, rep.Checkpoints, time.Since(start).Round(time.Millisecond))
			if rep.Latest != nil {
				fmt.Fprintf(g.stdout, "latest checkpoint: %s size %d root %s\n", rep.Latest.Origin, rep.Latest.Size, rep.Latest.Hash)
			}
			if rep.Indexed < rep.Size {
				fmt.Fprintf(g.stdout, "search index checked for %d of %d events (the rest are not indexed yet, or the index file is missing: writ rebuilds it at start)\n", rep.Indexed, rep.Size)
			}
			if rep.Unsigned > 0 {
				fmt.Fprintf(g.stdout, "%d events after the latest checkpoint are not signed yet (the server signs them within its checkpoint interval)\n", rep.Unsigned)
			}
			if rep.Consistency != nil {
				old, _ := auditlog.ParseCheckpointNote([]byte(rep.Consistency.Old))
				fmt.Fprintf(g.stdout, "the log extends the saved checkpoint of size %d (root %s): consistency proof of %d hashes checked\n",
					old.Size, old.Hash, len(rep.Consistency.Proof))
			}
			if rep.RememberedConsistency != nil {
				old, _ := auditlog.ParseCheckpointNote([]byte(rep.RememberedConsistency.Old))
				fmt.Fprintf(g.stdout, "the log extends the checkpoint of size %d verified last time (%s)\n", old.Size, opts.RememberedFrom)
			}
			if kept != "" {
				fmt.Fprintf(g.stdout, "remembered the latest checkpoint in %s: the next verify checks that the log still extends it\n", kept)
			}
			if rep.LatestNote != nil {
				return printCosignatures(g, rep.LatestNote, trusted, witnessKeys)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dbPath, "db", "", "store file (default DATA_DIR/writ.db)")
	addDSNFlag(cmd, &dsn)
	cmd.Flags().StringArrayVar(&keyFlags, "key", nil, "trusted log key NAME+HASH+KEY, or @FILE (repeatable)")
	cmd.Flags().StringVar(&saved, "checkpoint", "", "a signed checkpoint saved earlier, which the log must extend")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "where the latest verified checkpoint of each log is remembered (default ~/.config/writ/audit)")
	cmd.Flags().BoolVar(&noRemember, "no-remember", false, "neither check against nor update the remembered checkpoint (to verify an older copy on purpose)")
	cmd.Flags().StringArrayVar(&witnessKeys, "witness-key", nil, "a witness's verifier key NAME+HASH+KEY, to check its cosignature on the latest checkpoint (repeatable)")
	out = outputFlag(cmd)
	return cmd
}

func newAuditProveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "prove EVENT_ID",
		Short: "Print the inclusion proof of an event (JSON), checkable by anyone with the log key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.AuditProve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(g.stdout, p)
		},
	}
}

func newAuditVerifyProofCmd(g *globals) *cobra.Command {
	var keyFlags []string
	cmd := &cobra.Command{
		Use:   "verify-proof FILE --key KEY|@FILE",
		Short: "Check an inclusion proof offline, with only the log's public key",
		Long: `Check a proof printed by ` + "`writ audit prove`" + `: the event hashes to the leaf,
the audit path leads from that leaf to the checkpoint's root, and the
checkpoint is signed by the key. FILE may be - for standard input.
Exit status 1 means the proof does not hold.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keyFlags) == 0 {
				return errors.New("--key is required: the log's public key from `writ audit key` (or @FILE)")
			}
			trusted, err := trustedAuditKeys(keyFlags)
			if err != nil {
				return err
			}
			var b []byte
			if args[0] == "-" {
				b, err = io.ReadAll(io.LimitReader(g.stdin, 1<<20))
			} else {
				b, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("read proof: %w", err)
			}
			p, err := auditlog.ParseInclusionProof(b)
			if err != nil {
				return exitCode(1, err)
			}
			cp, err := p.Verify(trusted)
			if err != nil {
				return exitCode(1, fmt.Errorf("proof does NOT hold: %w", err))
			}
			fmt.Fprintf(g.stdout, "proof OK: event %s (%s) is entry %d of the log %s, whose signed checkpoint of size %d has root %s\n",
				p.Event.ID, p.Event.Type, p.Index, cp.Origin, cp.Size, cp.Hash)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&keyFlags, "key", nil, "trusted log key NAME+HASH+KEY, or @FILE (repeatable)")
	return cmd
}

func newAuditKeyCmd(g *globals) *cobra.Command {
	var (
		offline     bool
		dbPath, dsn string
	)
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Print the audit log's public verifier key",
		Long: `Print the public key that signs the audit log's checkpoints, as one line
NAME+HASH+KEY. Keep it somewhere the server cannot write: verify and
verify-proof take it with --key. --offline reads it from the store file
instead of asking the server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if offline {
				db, err := g.auditDB(ctx, dbPath, dsn)
				if err != nil {
					return err
				}
				defer db.Close()
				_, vkeys, err := auditlog.StoredVerifiers(ctx, db)
				if err != nil {
					return err
				}
				for _, k := range vkeys {
					fmt.Fprintln(g.stdout, k)
				}
				return nil
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			k, err := c.AuditKey(ctx)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, k.VerifierKey)
			return err
		},
	}
	cmd.Flags().BoolVar(&offline, "offline", false, "read the key from the store file in the data directory")
	cmd.Flags().StringVar(&dbPath, "db", "", "store file for --offline (default DATA_DIR/writ.db)")
	addDSNFlag(cmd, &dsn)
	return cmd
}

func newAuditCheckpointCmd(g *globals) *cobra.Command {
	var fresh bool
	cmd := &cobra.Command{
		Use:   "checkpoint [--fresh]",
		Short: "Print the latest signed checkpoint (save it to check later that the log was not rewritten)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cp, err := c.AuditCheckpoint(cmd.Context(), fresh)
			if err != nil {
				return err
			}
			_, err = io.WriteString(g.stdout, cp.Note)
			return err
		},
	}
	cmd.Flags().BoolVar(&fresh, "fresh", true, "sign a checkpoint covering every event first")
	return cmd
}
