package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
	"github.com/writ-dev/writ/internal/scan"
	"github.com/writ-dev/writ/internal/secrets"
	"golang.org/x/sys/unix"
)

// scanKeyFile is the fingerprint key's file in the data directory.
const scanKeyFile = "scan.key"

func newScanCmd(g *globals) *cobra.Command {
	var (
		gitMode      bool
		output       string
		failOn       string
		baseline     string
		ignoreFile   string
		keyFile      string
		maxFileSize  int64
		workers      int
		noProgress   bool
		noIgnoreFile bool
		fixPlan      bool
		report       bool
		reportAs     string
		validate     bool
		valTimeout   time.Duration
		valBudget    time.Duration
		valConc      int
		valBases     []string
	)
	cmd := &cobra.Command{
		Use:   "scan [PATH]",
		Short: "Find static secrets in a directory or a git repository's whole history",
		Long: `Scan files (default: the current directory) or, with --git, every commit of
every branch of a repository for secrets, with the same detector the MCP
gateway redacts with (gitleaks' rule set plus writ's rules). Findings name
the rule, file:line, the commit that first wrote the secret (history) and a
keyed fingerprint; no output holds a secret's value.

  writ scan .                                   # working tree, table
  writ scan --git . --output sarif > scan.sarif # whole history, SARIF 2.1.0
  writ scan --output json . > baseline.json
  writ scan --baseline baseline.json .          # fail only on new findings
  writ scan --fix-plan .                        # writ credential put, Service, AccessPolicy per finding
  writ scan --validate .                        # ask GitHub, Slack, OpenAI, Anthropic, Stripe whether each is still valid

Exit status: 1 when a finding (a new one, with --baseline) is at or above
--fail-on; 2 on a usage or read error. Findings are dropped by an inline
"writ:allow" comment on their line or by .writscanignore at the root
(lines: a path pattern, "rule:ID" or "fingerprint:HEX").

The fingerprint key is read from --key-file, else DATA_DIR/scan.key, which
is created (32 random bytes, mode 0600) when absent; keep it to compare
fingerprints across scans.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := "."
			if len(args) == 1 {
				target = args[0]
			}
			switch output {
			case "table", "json", "sarif":
			default:
				return exitCode(2, fmt.Errorf("--output %q: use table, json or sarif", output))
			}
			minSev, ok := scan.ParseSeverity(failOn)
			if !ok {
				return exitCode(2, fmt.Errorf("--fail-on %q: use high, medium, low or none", failOn))
			}
			var (
				key   []byte
				keyID string
				c     *client.Client
				err   error
			)
			if report {
				if keyFile != "" {
					return exitCode(2, errors.New("--report fingerprints under the deployment's key; drop --key-file"))
				}
				if output == "sarif" {
					return exitCode(2, errors.New("--report prints the ranked findings (table or json); run --output sarif without it"))
				}
				if c, err = g.client(); err != nil {
					return exitCode(2, err)
				}
				k, err := c.FingerprintKey(cmd.Context())
				if err != nil {
					return exitCode(2, fmt.Errorf("--report: fetch the deployment's fingerprint key: %w", err))
				}
				if key, err = base64.StdEncoding.DecodeString(k.Key); err != nil || len(key) < secrets.MinKeySize {
					return exitCode(2, fmt.Errorf("--report: the server sent an unusable fingerprint key"))
				}
				keyID = k.KeyID
			} else if key, err = g.scanKey(keyFile); err != nil {
				return exitCode(2, err)
			}
			det, err := secrets.New(secrets.Config{FingerprintKey: key})
			if err != nil {
				return err
			}
			var bl *scan.Baseline
			if baseline != "" {
				b, err := os.ReadFile(baseline)
				if err != nil {
					return exitCode(2, fmt.Errorf("read baseline: %w", err))
				}
				if bl, err = scan.ParseBaseline(baseline, b); err != nil {
					return exitCode(2, err)
				}
			}
			cfg := scan.Config{Detector: det, MaxFileSize: maxFileSize, Workers: workers}
			var val *scan.Validator
			if validate {
				if val, err = newValidator(valTimeout, valBudget, valConc, valBases); err != nil {
					return exitCode(2, err)
				}
				cfg.Secret = val.Collect
			} else if cmd.Flags().Changed("validate-base") || cmd.Flags().Changed("validate-timeout") ||
				cmd.Flags().Changed("validate-budget") || cmd.Flags().Changed("validate-concurrency") {
				return exitCode(2, errors.New("--validate-base, --validate-timeout, --validate-budget and --validate-concurrency go with --validate"))
			}
			if ignoreFile == "" && !noIgnoreFile {
				ignoreFile = filepath.Join(target, scan.IgnoreFile)
				if _, err := os.Stat(ignoreFile); errors.Is(err, fs.ErrNotExist) {
					ignoreFile = ""
				}
			}
			if ignoreFile != "" {
				b, err := os.ReadFile(ignoreFile)
				if err != nil {
					return exitCode(2, fmt.Errorf("read ignore file: %w", err))
				}
				if cfg.Ignore, err = scan.ParseIgnore(ignoreFile, b); err != nil {
					return exitCode(2, err)
				}
			} else {
				cfg.Ignore, _ = scan.ParseIgnore("", nil)
			}
			if !noProgress && isTerminal(g.stderr) {
				p := newProgress(g.stderr, time.Now)
				cfg.Progress, cfg.Expected = p.update, p.expect
				defer p.done()
			}
			sc, err := scan.New(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			var findings []scan.Finding
			if gitMode {
				findings, err = sc.Git(ctx, target)
			} else {
				findings, err = sc.Dir(ctx, target)
			}
			if err != nil {
				return exitCode(2, err)
			}
			if bl != nil {
				bl.Mark(findings)
			}
			if val != nil {
				fmt.Fprintf(g.stderr, "writ scan: --validate sends each found secret of %s to its provider's API to check it (values are never printed or reported)\n",
					strings.Join(scan.ProviderNames(), ", "))
				val.Validate(ctx, findings)
			}
			if report {
				name := reportAs
				if name == "" {
					abs, err := filepath.Abs(target)
					if err != nil {
						return exitCode(2, err)
					}
					name = filepath.Base(abs)
				}
				resp, err := c.ReportScan(ctx, apitypes.ScanReportRequest{Target: name, KeyID: keyID, Findings: findings})
				if err != nil {
					return exitCode(2, fmt.Errorf("--report: %w", err))
				}
				switch {
				case fixPlan:
					repo := ""
					if gitMode {
						repo = target
					}
					err = scan.WriteFixPlan(g.stdout, scan.FixPlanRanked(resp.Findings, repo))
				case output == "json":
					err = printJSON(g.stdout, resp)
				default:
					err = scan.WriteRanked(g.stdout, resp.Findings)
				}
				if err != nil {
					return err
				}
				return failOnFindings(findings, minSev, bl)
			}
			switch {
			case fixPlan:
				repo := ""
				if gitMode {
					repo = target
				}
				err = scan.WriteFixPlan(g.stdout, scan.FixPlan(findings, repo))
			case output == "json":
				err = scan.WriteJSON(g.stdout, scan.Report{Target: target, Findings: findings})
			case output == "sarif":
				err = scan.WriteSARIF(g.stdout, findings, det.Rules())
			default:
				err = scan.WriteTable(g.stdout, findings)
			}
			if err != nil {
				return err
			}
			return failOnFindings(findings, minSev, bl)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&gitMode, "git", false, "scan the whole history of the git repository at PATH (every commit of every ref)")
	fl.StringVarP(&output, "output", "o", "table", "output format: table, json or sarif")
	fl.StringVar(&failOn, "fail-on", "high", "exit 1 when a finding is at or above this severity: high, medium, low or none")
	fl.StringVar(&baseline, "baseline", "", "JSON report of an earlier scan: only findings not in it are new and can fail")
	fl.StringVar(&ignoreFile, "ignore-file", "", "allowlist file (default: PATH/"+scan.IgnoreFile+" when present)")
	fl.BoolVar(&noIgnoreFile, "no-ignore-file", false, "do not read PATH/"+scan.IgnoreFile)
	fl.StringVar(&keyFile, "key-file", "", "file holding the fingerprint key (default: DATA_DIR/"+scanKeyFile+", created when absent)")
	fl.Int64Var(&maxFileSize, "max-file-size", scan.DefaultMaxFileSize, "skip files and blobs larger than this many bytes (negative: no limit)")
	fl.IntVar(&workers, "workers", 0, "files scanned at once (default: number of CPUs)")
	fl.BoolVar(&fixPlan, "fix-plan", false, "print, per finding, the commands and documents that replace it with brokered injection (nothing is applied)")
	fl.BoolVar(&noProgress, "no-progress", false, "no progress line on a terminal")
	fl.BoolVar(&report, "report", false, "fingerprint under the deployment's key, send the findings (never values) to the server, print them ranked by blast radius; they appear in writ posture and writ lineage")
	fl.StringVar(&reportAs, "report-as", "", "with --report: the target's name (default: the scanned directory's base name); a report replaces the previous one of that name")
	fl.BoolVar(&validate, "validate", false, "send each found secret whose provider has a harmless identity call (GitHub, Slack, OpenAI, Anthropic, Stripe) to that provider: valid, invalid or unknown (off by default: the secret leaves the machine)")
	fl.DurationVar(&valTimeout, "validate-timeout", scan.DefaultValidateTimeout, "with --validate: time limit of each provider call")
	fl.DurationVar(&valBudget, "validate-budget", scan.DefaultValidateBudget, "with --validate: time limit of all calls together (the rest are unknown)")
	fl.IntVar(&valConc, "validate-concurrency", scan.DefaultValidateConcurrency, "with --validate: provider calls in flight at once")
	fl.StringArrayVar(&valBases, "validate-base", nil, "with --validate: PROVIDER=URL, a provider's base URL (https, or http to a loopback address; repeatable)")
	return cmd
}

// newValidator builds the --validate validator from its flags.
func newValidator(timeout, budget time.Duration, concurrency int, bases []string) (*scan.Validator, error) {
	if timeout <= 0 || budget <= 0 || concurrency <= 0 {
		return nil, errors.New("--validate-timeout, --validate-budget and --validate-concurrency must be positive")
	}
	cfg := scan.ValidatorConfig{Timeout: timeout, Budget: budget, Concurrency: concurrency, Bases: map[string]string{}}
	// The environment's overrides are for tests and may only point at
	// loopback fakes; the flags override them.
	env, err := scan.LoopbackBases(validateBaseEnv, os.Getenv(validateBaseEnv))
	if err != nil {
		return nil, err
	}
	maps.Copy(cfg.Bases, env)
	for _, b := range bases {
		name, u, ok := strings.Cut(b, "=")
		if !ok {
			return nil, fmt.Errorf("--validate-base %q: want PROVIDER=URL (providers: %s)", b, strings.Join(scan.ProviderNames(), ", "))
		}
		cfg.Bases[name] = u
	}
	return scan.NewValidator(cfg)
}

// validateBaseEnv names the environment variable of loopback base URL
// overrides for --validate (tests).
const validateBaseEnv = "WRIT_SCAN_VALIDATE_BASE"

// failOnFindings is the exit status of a scan: 1 when a finding (a new
// one, with a baseline) is at or above minSev.
func failOnFindings(findings []scan.Finding, minSev secrets.Severity, bl *scan.Baseline) error {
	failing := 0
	for _, f := range findings {
		if minSev != "" && f.AtLeast(minSev) && (bl == nil || f.New) {
			failing++
		}
	}
	if failing > 0 {
		return exitCode(1, fmt.Errorf("%d finding(s) at or above %s severity", failing, minSev))
	}
	return nil
}

// scanKey reads the fingerprint key from path, or from the data directory's
// scan.key, creating that one when absent.
func (g *globals) scanKey(path string) ([]byte, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read fingerprint key: %w", err)
		}
		b = []byte(strings.TrimSpace(string(b)))
		if len(b) < secrets.MinKeySize {
			return nil, fmt.Errorf("read fingerprint key %s: %d bytes, want at least %d", path, len(b), secrets.MinKeySize)
		}
		return b, nil
	}
	path = filepath.Join(g.dataDir, scanKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		b = []byte(strings.TrimSpace(string(b)))
		if len(b) < secrets.MinKeySize {
			return nil, fmt.Errorf("read fingerprint key %s: %d bytes, want at least %d", path, len(b), secrets.MinKeySize)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read fingerprint key: %w", err)
	}
	if err := os.MkdirAll(g.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create fingerprint key: %w", err)
	}
	key := []byte(rand.Text() + rand.Text())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return g.scanKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create fingerprint key: %w", err)
	}
	if _, err := f.Write(append(key, '\n')); err != nil {
		f.Close()
		return nil, fmt.Errorf("create fingerprint key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("create fingerprint key: %w", err)
	}
	return key, nil
}

// isTerminal reports whether f is a terminal (not merely a character
// device: /dev/null is one too).
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(file.Fd()), unix.TCGETS)
	return err == nil
}

// progress prints one updating line: bytes scanned, bytes/s, and, once
// the total is known, the share done and the time left at that rate.
type progress struct {
	w        io.Writer
	now      func() time.Time
	start    time.Time
	last     time.Time
	total    int64
	expected int64
}

func newProgress(w io.Writer, now func() time.Time) *progress {
	t := now()
	return &progress{w: w, now: now, start: t}
}

func (p *progress) expect(n int64) { p.expected = n }

func (p *progress) update(total int64) {
	p.total = total
	t := p.now()
	if t.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = t
	p.print(t)
}

// line is the progress line at t.
func (p *progress) line(t time.Time) string {
	secs := t.Sub(p.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(p.total) / secs
	}
	s := fmt.Sprintf("scanned %.1f MiB, %.1f MiB/s", float64(p.total)/(1<<20), rate/(1<<20))
	if p.expected > 0 {
		done := min(float64(p.total)/float64(p.expected), 1)
		s += fmt.Sprintf(", %.0f%% of %.1f MiB", 100*done, float64(p.expected)/(1<<20))
		if rate > 0 && p.total < p.expected {
			eta := time.Duration(float64(p.expected-p.total) / rate * float64(time.Second))
			s += ", ETA " + eta.Round(time.Second).String()
		}
	}
	return s
}

func (p *progress) print(t time.Time) { fmt.Fprintf(p.w, "\r%s   ", p.line(t)) }

func (p *progress) done() {
	if p.total > 0 {
		p.print(p.now())
		fmt.Fprintln(p.w)
	}
}
