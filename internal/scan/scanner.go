package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/writ-dev/writ/internal/secrets"
)

// DefaultMaxFileSize is [Config.MaxFileSize]'s default: 10 MiB.
const DefaultMaxFileSize = 10 << 20

// binarySniff is how many leading bytes decide whether a file is binary.
const binarySniff = 8000

// Config configures a [Scanner]. Detector is required.
type Config struct {
	Detector *secrets.Detector
	// Ignore drops findings; nil drops none. [Scanner.Dir] also reads the
	// root's .writscanignore when Ignore is nil.
	Ignore *Ignore
	// MaxFileSize skips larger files and blobs; 0 means
	// DefaultMaxFileSize, a negative value means no limit.
	MaxFileSize int64
	// Workers bounds the files scanned at once; 0 means GOMAXPROCS.
	Workers int
	// Progress, when set, is called with the bytes scanned so far, from
	// one goroutine at a time, at most once per file.
	Progress func(bytes int64)
	// Expected, when set with Progress, is called once before the content
	// is read with the bytes the scan will read, so that a progress
	// display can show an ETA: [Scanner.Dir] walks the tree's metadata
	// once more for it, [Scanner.Git] asks git cat-file --batch-check for
	// the blobs' sizes. Neither is done without it.
	Expected func(bytes int64)
	// Secret, when set, is called with each finding's rule, fingerprint
	// and value (after the allowlists), from the scan's workers at once:
	// [Validator.Collect] keeps the values live validation needs. The
	// value is only valid during the call. Nil costs nothing.
	Secret func(ruleID, fingerprint string, value []byte)
}

// Scanner scans files and repositories. It is safe for concurrent use.
type Scanner struct {
	cfg     Config
	scanned atomic.Int64
	mu      sync.Mutex
}

// New returns a scanner.
func New(cfg Config) (*Scanner, error) {
	if cfg.Detector == nil {
		return nil, errors.New("new scanner: no secret detector")
	}
	if cfg.MaxFileSize == 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	return &Scanner{cfg: cfg}, nil
}

// tooBig reports whether size is over the configured limit.
func (s *Scanner) tooBig(size int64) bool {
	return s.cfg.MaxFileSize > 0 && size > s.cfg.MaxFileSize
}

func (s *Scanner) progress(n int) {
	total := s.scanned.Add(int64(n))
	if s.cfg.Progress != nil {
		s.mu.Lock()
		s.cfg.Progress(total)
		s.mu.Unlock()
	}
}

// isBinary reports whether data looks binary, as git decides: a NUL byte
// in the first 8000 bytes.
func isBinary(data []byte) bool {
	return bytes.IndexByte(data[:min(len(data), binarySniff)], 0) >= 0
}

// skipPath reports whether a file is not to be read at all.
func (s *Scanner) skipPath(rel string, ig *Ignore) bool {
	return s.cfg.Detector.PathAllowed(rel) || ig.IgnoresPath(rel)
}

// scanBlob finds the secrets in one file's bytes. rel is its path.
func (s *Scanner) scanBlob(rel string, data []byte, ig *Ignore) []Finding {
	if isBinary(data) {
		return nil
	}
	kind := KindOf(rel)
	var values []SecretValue
	if kind == KindYAML || kind == KindHelmValues || kind == KindGeneric {
		values = SecretData(data)
	}
	// A Secret's data line is judged by its decoded value, not by the
	// base64 text (which the generic rule would also report).
	dataLines := map[int]bool{}
	for _, v := range values {
		dataLines[v.Line] = true
	}
	var out []Finding
	for _, f := range s.cfg.Detector.Find(data) {
		if dataLines[f.Line] || allowedInline(data, f.Start, f.End) {
			continue
		}
		df := fromDetector(f, rel, kind)
		if ig.Ignores(df) {
			continue
		}
		df.EndLine, df.EndColumn = endOf(data, f.End)
		df.Hosts = hostsNear(data, f.Start)
		s.secret(&df, data[f.Start:f.End])
		out = append(out, df)
	}
	for _, v := range values {
		if at := lineStart(data, v.Line); allowedInline(data, at, at) {
			continue
		}
		// The key's name gives context rules need ("password=").
		probe := append([]byte(v.Key+"="), v.Value...)
		for _, f := range s.cfg.Detector.Find(probe) {
			df := fromDetector(f, rel, KindKubernetes)
			if ig.Ignores(df) {
				continue
			}
			s.secret(&df, probe[f.Start:f.End])
			df.Line, df.Column = v.Line, v.Column
			df.EndLine, df.EndColumn = v.Line, v.Column+v.Len-1
			df.Encoding = "base64"
			df.Hosts = hostsNear(data, lineStart(data, v.Line))
			out = append(out, df)
		}
	}
	return out
}

// secret hands a kept finding's value to [Config.Secret].
func (s *Scanner) secret(f *Finding, value []byte) {
	if s.cfg.Secret != nil {
		s.cfg.Secret(f.RuleID, f.Fingerprint, value)
	}
}

func fromDetector(f secrets.Finding, rel string, kind Kind) Finding {
	return Finding{
		RuleID: f.RuleID, Description: f.Description, Severity: f.Severity,
		Kind: kind, Path: rel, Line: f.Line, Column: f.Column, Fingerprint: f.Fingerprint,
	}
}

// allowedInline reports whether the line holding [start, end) carries a
// writ:allow (or gitleaks:allow) comment.
func allowedInline(data []byte, start, end int) bool {
	ls := bytes.LastIndexByte(data[:start], '\n') + 1
	le := bytes.IndexByte(data[end:], '\n')
	if le < 0 {
		le = len(data)
	} else {
		le += end
	}
	line := data[ls:le]
	return bytes.Contains(line, []byte("writ:allow")) || bytes.Contains(line, []byte("gitleaks:allow"))
}

// endOf returns the 1-based line and column of the byte before end.
func endOf(data []byte, end int) (int, int) {
	if end <= 0 {
		return 1, 1
	}
	last := end - 1
	line := 1 + bytes.Count(data[:last], []byte{'\n'})
	return line, last - bytes.LastIndexByte(data[:last], '\n')
}

// lineStart returns the offset of 1-based line n in data.
func lineStart(data []byte, n int) int {
	off := 0
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(data[off:], '\n')
		if j < 0 {
			return len(data)
		}
		off += j + 1
	}
	return off
}

// Dir scans the files under root. Paths in findings are relative to root,
// slash-separated; findings are sorted by path and line.
func (s *Scanner) Dir(ctx context.Context, root string) ([]Finding, error) {
	ig := s.cfg.Ignore
	if ig == nil {
		b, err := os.ReadFile(filepath.Join(root, IgnoreFile))
		switch {
		case err == nil:
			if ig, err = ParseIgnore(filepath.Join(root, IgnoreFile), b); err != nil {
				return nil, err
			}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("read ignore file: %w", err)
		}
	}
	if s.cfg.Progress != nil && s.cfg.Expected != nil {
		s.cfg.Expected(s.expectedDir(ctx, root, ig))
	}
	paths := make(chan string)
	var (
		mu       sync.Mutex
		findings []Finding
		firstErr error
		wg       sync.WaitGroup
	)
	for range s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rel := range paths {
				fs, err := s.scanFile(root, rel, ig)
				mu.Lock()
				findings = append(findings, fs...)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	walkErr := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" || (rel != "." && s.skipPath(rel, ig)) {
				return filepath.SkipDir
			}
			return nil
		}
		// Symbolic links and other non-regular files are never followed:
		// a link may point outside the root.
		if !d.Type().IsRegular() || s.skipPath(rel, ig) {
			return nil
		}
		select {
		case paths <- rel:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	})
	close(paths)
	wg.Wait()
	if walkErr != nil {
		return nil, walkErr
	}
	if firstErr != nil {
		return nil, firstErr
	}
	sortFindings(findings)
	return findings, nil
}

// expectedDir sums the sizes of the files Dir would read under root; an
// entry it cannot stat counts nothing (the scan itself reports it).
func (s *Scanner) expectedDir(ctx context.Context, root string, ig *Ignore) int64 {
	var total int64
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || ctx.Err() != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" || (rel != "." && s.skipPath(rel, ig)) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || s.skipPath(rel, ig) {
			return nil
		}
		if fi, err := d.Info(); err == nil && !s.tooBig(fi.Size()) {
			total += fi.Size()
		}
		return nil
	})
	return total
}

func (s *Scanner) scanFile(root, rel string, ig *Ignore) ([]Finding, error) {
	// O_NOFOLLOW: a file swapped for a link after the walk saw it is not
	// followed either.
	f, err := os.OpenFile(filepath.Join(root, filepath.FromSlash(rel)), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", rel, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", rel, err)
	}
	if !st.Mode().IsRegular() || s.tooBig(st.Size()) {
		return nil, nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", rel, err)
	}
	out := s.scanBlob(rel, data, ig)
	s.progress(len(data))
	return out, nil
}

func sortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		if a.Column != b.Column {
			return a.Column - b.Column
		}
		return strings.Compare(a.RuleID, b.RuleID)
	})
}
