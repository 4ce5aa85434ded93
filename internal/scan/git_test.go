package scan

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitRepo is a repository built by a test with the git command line.
type gitRepo struct {
	t    *testing.T
	dir  string
	tick int
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is not installed; CI must provide it")
		}
		t.Skip("git is not installed")
	}
	r := &gitRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	// A fixed identity and clock; each commit one minute after the last.
	date := "2026-01-01T00:" + twoDigits(r.tick) + ":00Z"
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com",
		"GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func twoDigits(n int) string { return string(rune('0'+n/10)) + string(rune('0'+n%10)) }

// commit writes files (an empty body removes the file) and commits them;
// it returns the commit's hash.
func (r *gitRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	for name, body := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(name))
		if body == "" {
			r.git("rm", "-q", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			r.t.Fatal(err)
		}
		r.git("add", name)
	}
	r.tick++
	r.git("commit", "-q", "--allow-empty", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

func TestGitHistory(t *testing.T) {
	r := newGitRepo(t)
	ghp := "ghp_" + fake("hist-ghp", alnum, 36)
	aws := "AKIA" + fake("hist-aws", upperDigits, 16)
	stripe := "sk_live_" + fake("hist-stripe", alnum, 24)
	glpat := "glpat-" + fake("hist-glpat", alnum+"_-", 20)
	pw := "Tr0ub4dor&3x!" + fake("hist-pw", alnum, 4)

	c1 := r.commit("add config", map[string]string{
		"config/app.env": "GH_TOKEN=" + ghp + "\n",
		"README.md":      "id 123e4567-e89b-12d3-a456-426614174000, key AKIAIOSFODNN7EXAMPLE\n",
	})
	c2 := r.commit("add keys", map[string]string{"keys.txt": "aws " + aws + "\n"})
	// The same file moved: the same blob at another path.
	r.tick++
	r.git("mv", "config/app.env", "config/moved.env")
	r.git("commit", "-q", "-m", "move config")
	// The same secret copied into a different file (a new blob).
	r.commit("copy token", map[string]string{"scripts/deploy.sh": "#!/bin/sh\nexport GITHUB_TOKEN=" + ghp + "\n"})
	c5 := r.commit("remove keys", map[string]string{"keys.txt": ""})
	// A side branch never merged.
	r.git("checkout", "-q", "-b", "side", c2)
	c6 := r.commit("side secret", map[string]string{"side.txt": "STRIPE_KEY=" + stripe + "\n"})
	// A branch merged into main.
	r.git("checkout", "-q", "-b", "feature", c5)
	c7 := r.commit("feature secret", map[string]string{"ci/.gitlab-ci.yml": "variables:\n  GITLAB_TOKEN: " + glpat + "\n"})
	r.git("checkout", "-q", "main")
	r.tick++
	r.git("merge", "-q", "--no-ff", "--no-edit", "feature")
	// A secret added and later overwritten in the same file.
	c9 := r.commit("add password", map[string]string{"db.env": "DB_PASSWORD=" + pw + "\n"})
	c10 := r.commit("rotate out", map[string]string{"db.env": "DB_PASSWORD=${DB_PASSWORD}\n"})
	_ = c10

	fs, err := testScanner(t, nil).Git(context.Background(), r.dir)
	if err != nil {
		t.Fatal(err)
	}
	d := testDetector(t)
	cases := []struct {
		value, rule, commit, last, path string
		line                            int
		atHead                          bool
		paths                           int
	}{
		{ghp, "github-pat", c1, "", "config/app.env", 1, true, 3},
		{aws, "aws-access-token", c2, c2, "keys.txt", 1, false, 1},
		{stripe, "stripe-access-token", c6, c6, "side.txt", 1, false, 1},
		{glpat, "gitlab-pat", c7, "", "ci/.gitlab-ci.yml", 2, true, 1},
		{pw, "password-assignment", c9, c9, "db.env", 1, false, 1},
	}
	if len(fs) != len(cases) {
		t.Errorf("%d findings, want %d (each secret once):", len(fs), len(cases))
		for _, f := range fs {
			t.Logf("  %s %s:%d %s", f.RuleID, f.Path, f.Line, short(f.Commit))
		}
	}
	byFP := map[string]Finding{}
	for _, f := range fs {
		if _, dup := byFP[f.Fingerprint]; dup {
			t.Errorf("secret %s found twice", short(f.Fingerprint))
		}
		byFP[f.Fingerprint] = f
	}
	for _, c := range cases {
		f, ok := byFP[d.Fingerprint([]byte(c.value))]
		if !ok {
			t.Errorf("%s not found", c.rule)
			continue
		}
		if f.RuleID != c.rule || f.Commit != c.commit || f.Path != c.path || f.Line != c.line {
			t.Errorf("%s: got %s in %s at %s:%d, want %s in %s at %s:%d", c.rule, f.RuleID, short(f.Commit), f.Path, f.Line, c.rule, short(c.commit), c.path, c.line)
		}
		if f.AtHEAD == nil || *f.AtHEAD != c.atHead {
			t.Errorf("%s: at HEAD = %v, want %v", c.rule, f.AtHEAD, c.atHead)
		}
		if c.last != "" && f.LastCommit != c.last {
			t.Errorf("%s: last commit %s, want %s", c.rule, short(f.LastCommit), short(c.last))
		}
		if f.Paths != c.paths {
			t.Errorf("%s: %d paths, want %d", c.rule, f.Paths, c.paths)
		}
		if f.Author != "Ada <ada@example.com>" || f.Date.IsZero() {
			t.Errorf("%s: author %q date %v", c.rule, f.Author, f.Date)
		}
	}
}

// TestGitFixPlan checks that each step's extraction yields its secret from
// the worktree (at HEAD) or from its commit (not at HEAD).
func TestGitFixPlan(t *testing.T) {
	r := newGitRepo(t)
	ghp := "ghp_" + fake("fix-ghp", alnum, 36)
	aws := "AKIA" + fake("fix-aws", upperDigits, 16)
	r.commit("add", map[string]string{"a.env": "GH_TOKEN=" + ghp + "\n", "b.env": "AWS_ACCESS_KEY_ID=" + aws + "\n"})
	r.commit("remove", map[string]string{"b.env": ""})
	fs, err := testScanner(t, nil).Git(context.Background(), r.dir)
	if err != nil || len(fs) != 2 {
		t.Fatalf("scan: %v, %v", fs, err)
	}
	for _, st := range FixPlan(fs, r.dir) {
		cmd := exec.Command("sh", "-c", st.Extract)
		cmd.Dir = r.dir
		out, err := cmd.Output()
		if err != nil || testDetector(t).Fingerprint(out) != st.Finding.Fingerprint {
			t.Errorf("%s: %q does not extract the value (%v)", st.Finding.RuleID, st.Extract, err)
		}
	}
}

func TestGitEmptyAndMissing(t *testing.T) {
	r := newGitRepo(t)
	fs, err := testScanner(t, nil).Git(context.Background(), r.dir)
	if err != nil || len(fs) != 0 {
		t.Fatalf("empty repository: %v, %v", fs, err)
	}
	if _, err := testScanner(t, nil).Git(context.Background(), t.TempDir()); err == nil {
		t.Fatal("a directory that is not a repository: no error")
	}
}
