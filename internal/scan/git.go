package scan

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// commitInfo is one commit of the history, in the order git log printed it
// (oldest first).
type commitInfo struct {
	hash, author string
	date         time.Time
}

// blobInfo is one distinct blob: the commits that wrote it and the paths
// it was written at.
type blobInfo struct {
	hash        string
	first, last int // indexes into the commits
	path        string
	paths       []string
}

// history is what git log says about a repository's commits and blobs.
type history struct {
	commits []commitInfo
	blobs   []*blobInfo
	byHash  map[string]*blobInfo
}

// gitLogArgs lists every commit reachable from any ref, oldest first
// (parents before children), with the blobs each wrote. Merges show their
// changes against their first parent, so a blob a merge brings in from a
// side branch is already known from the side branch's commit.
var gitLogArgs = []string{
	"log", "--all", "--reverse", "--date-order", "--raw", "--no-abbrev", "--no-renames",
	"--diff-merges=first-parent", "--no-color", "--no-ext-diff", "-z",
	"--format=%x01%H%x00%an <%ae>%x00%aI%x00",
}

// readHistory parses the output of git log with gitLogArgs.
func readHistory(r io.Reader) (*history, error) {
	h := &history{byHash: map[string]*blobInfo{}}
	br := bufio.NewReaderSize(r, 1<<16)
	for {
		rec, err := br.ReadBytes(0x01)
		rec = bytes.TrimSuffix(rec, []byte{0x01})
		if len(rec) > 0 {
			if perr := h.addRecord(rec); perr != nil {
				return nil, perr
			}
		}
		if errors.Is(err, io.EOF) {
			return h, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read git log: %w", err)
		}
	}
}

// addRecord adds one commit: "HASH\0AUTHOR\0DATE\0" then raw diff lines
// ":oldmode newmode oldblob newblob STATUS\0PATH\0".
func (h *history) addRecord(rec []byte) error {
	fields := bytes.SplitN(rec, []byte{0}, 4)
	if len(fields) < 3 {
		return fmt.Errorf("read git log: malformed commit record %.40q", rec)
	}
	c := commitInfo{hash: string(fields[0]), author: string(fields[1])}
	if t, err := time.Parse(time.RFC3339, string(fields[2])); err == nil {
		c.date = t
	}
	if !isHex(c.hash) {
		return fmt.Errorf("read git log: malformed commit hash %.40q", fields[0])
	}
	idx := len(h.commits)
	h.commits = append(h.commits, c)
	if len(fields) < 4 {
		return nil
	}
	toks := bytes.Split(fields[3], []byte{0})
	for i := 0; i < len(toks); i++ {
		t := bytes.TrimLeft(toks[i], "\n")
		if len(t) == 0 || t[0] != ':' {
			continue
		}
		if i+1 >= len(toks) {
			return fmt.Errorf("read git log: commit %s: raw line without a path", c.hash)
		}
		i++
		path := string(toks[i])
		meta := strings.Fields(string(t[1:]))
		if len(meta) != 5 {
			return fmt.Errorf("read git log: commit %s: malformed raw line %.80q", c.hash, t)
		}
		newMode, blob, status := meta[1], meta[3], meta[4]
		// Only regular files (100644, 100755): not links, submodules or
		// deletions (whose new blob is all zeros).
		if !strings.HasPrefix(newMode, "100") || status == "D" || !isHex(blob) {
			continue
		}
		b := h.byHash[blob]
		if b == nil {
			b = &blobInfo{hash: blob, first: idx, path: path}
			h.byHash[blob] = b
			h.blobs = append(h.blobs, b)
		}
		b.last = idx
		if !containsString(b.paths, path) {
			b.paths = append(b.paths, path)
		}
	}
	return nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func isHex(s string) bool {
	if len(s) < 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// git runs a git command in repo and returns its standard output.
func git(ctx context.Context, repo string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s in %s: %w: %s", args[0], repo, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// headBlobs returns the blobs in HEAD's tree; none when HEAD does not name
// a commit.
func headBlobs(ctx context.Context, repo string) (map[string]bool, error) {
	if _, err := git(ctx, repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}"); err != nil {
		return map[string]bool{}, nil
	}
	out, err := git(ctx, repo, "ls-tree", "-r", "-z", "HEAD")
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, ent := range bytes.Split(out, []byte{0}) {
		// "MODE TYPE HASH\tPATH"
		meta, _, ok := bytes.Cut(ent, []byte{'\t'})
		if !ok {
			continue
		}
		if f := strings.Fields(string(meta)); len(f) == 3 && f[1] == "blob" {
			set[f[2]] = true
		}
	}
	return set, nil
}

// Git scans every blob that any commit of any ref of the repository at repo
// wrote, each distinct blob once, and reports each distinct secret (rule
// and fingerprint) once. The repository's .writscanignore at HEAD is not
// read: give [Config.Ignore].
func (s *Scanner) Git(ctx context.Context, repo string) ([]Finding, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, gitLogArgs...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("scan history of %s: %w", repo, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("scan history of %s: %w", repo, err)
	}
	h, err := readHistory(out)
	if werr := cmd.Wait(); werr != nil {
		return nil, fmt.Errorf("scan history of %s: git log: %w: %s (is it a git repository?)", repo, werr, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return nil, fmt.Errorf("scan history of %s: %w", repo, err)
	}
	head, err := headBlobs(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("scan history of %s: %w", repo, err)
	}
	ig := s.cfg.Ignore
	var todo []*blobInfo
	for _, b := range h.blobs {
		// Scan a blob under the first of its paths that is not skipped.
		b.path = ""
		for _, p := range b.paths {
			if !s.skipPath(p, ig) {
				b.path = p
				break
			}
		}
		if b.path != "" {
			todo = append(todo, b)
		}
	}
	if s.cfg.Progress != nil && s.cfg.Expected != nil {
		n, err := blobSizes(ctx, repo, todo, s.tooBig)
		if err != nil {
			return nil, fmt.Errorf("scan history of %s: %w", repo, err)
		}
		s.cfg.Expected(n)
	}
	perBlob, err := s.scanBlobs(ctx, repo, todo)
	if err != nil {
		return nil, err
	}
	return aggregate(h, todo, perBlob, head), nil
}

// scanBlobs reads blobs through one git cat-file --batch and scans them on
// the scanner's workers; the result is indexed like blobs.
func (s *Scanner) scanBlobs(ctx context.Context, repo string, blobs []*blobInfo) ([][]Finding, error) {
	results := make([][]Finding, len(blobs))
	if len(blobs) == 0 {
		return results, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "cat-file", "--batch")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("scan blobs of %s: %w", repo, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("scan blobs of %s: %w", repo, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("scan blobs of %s: %w", repo, err)
	}
	go func() {
		w := bufio.NewWriter(stdin)
		for _, b := range blobs {
			if _, err := w.WriteString(b.hash + "\n"); err != nil {
				break
			}
		}
		w.Flush()
		stdin.Close()
	}()
	type job struct {
		i    int
		data []byte
	}
	jobs := make(chan job, s.cfg.Workers)
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				results[j.i] = s.scanBlob(blobs[j.i].path, j.data, s.cfg.Ignore)
				s.progress(len(j.data))
			}
		}()
	}
	readErr := func() error {
		br := bufio.NewReaderSize(stdout, 1<<20)
		for i, b := range blobs {
			hdr, err := br.ReadString('\n')
			if err != nil {
				return fmt.Errorf("read blob %s: %w", b.hash, err)
			}
			f := strings.Fields(hdr)
			if len(f) == 2 && f[1] == "missing" {
				continue
			}
			if len(f) != 3 || f[0] != b.hash {
				return fmt.Errorf("read blob %s: unexpected header %.80q", b.hash, hdr)
			}
			size, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil || size < 0 {
				return fmt.Errorf("read blob %s: bad size %q", b.hash, f[2])
			}
			if f[1] != "blob" || s.tooBig(size) {
				if _, err := br.Discard(int(size) + 1); err != nil {
					return fmt.Errorf("read blob %s: %w", b.hash, err)
				}
				continue
			}
			data := make([]byte, size+1)
			if _, err := io.ReadFull(br, data); err != nil {
				return fmt.Errorf("read blob %s: %w", b.hash, err)
			}
			select {
			case jobs <- job{i, data[:size]}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}()
	close(jobs)
	wg.Wait()
	if readErr != nil {
		cancel()
		_ = cmd.Wait()
		return nil, fmt.Errorf("scan blobs of %s: %w: %s", repo, readErr, strings.TrimSpace(stderr.String()))
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("scan blobs of %s: git cat-file: %w: %s", repo, err, strings.TrimSpace(stderr.String()))
	}
	return results, nil
}

// aggregate merges the findings of each blob into one finding per secret,
// placed at the earliest commit that wrote it.
func aggregate(h *history, blobs []*blobInfo, perBlob [][]Finding, head map[string]bool) []Finding {
	type agg struct {
		f     Finding
		first int
		last  int
		paths map[string]bool
		head  bool
	}
	byKey := map[string]*agg{}
	var order []string
	for i, b := range blobs {
		for _, f := range perBlob[i] {
			key := f.RuleID + "\x00" + f.Fingerprint
			a := byKey[key]
			if a == nil {
				a = &agg{f: f, first: b.first, last: b.last, paths: map[string]bool{}}
				byKey[key] = a
				order = append(order, key)
			}
			if b.first < a.first {
				a.f, a.first = f, b.first
			}
			a.last = max(a.last, b.last)
			for _, p := range b.paths {
				a.paths[p] = true
			}
			a.head = a.head || head[b.hash]
		}
	}
	out := make([]Finding, 0, len(order))
	for _, k := range order {
		a := byKey[k]
		f := a.f
		c := h.commits[a.first]
		f.Commit, f.Author, f.Date = c.hash, c.author, c.date
		f.LastCommit = h.commits[a.last].hash
		at := a.head
		f.AtHEAD = &at
		f.Paths = len(a.paths)
		out = append(out, f)
	}
	sortFindings(out)
	return out
}

// blobSizes sums the sizes of blobs (those tooBig leaves out excepted),
// as git cat-file --batch-check reports them, without reading contents.
func blobSizes(ctx context.Context, repo string, blobs []*blobInfo, tooBig func(int64) bool) (int64, error) {
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "cat-file", "--batch-check")
	var in bytes.Buffer
	for _, b := range blobs {
		in.WriteString(b.hash + "\n")
	}
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("git cat-file --batch-check: %w", err)
	}
	var total int64
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[1] != "blob" {
			continue
		}
		if n, err := strconv.ParseInt(f[2], 10, 64); err == nil && n >= 0 && !tooBig(n) {
			total += n
		}
	}
	return total, nil
}
