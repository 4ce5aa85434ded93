package cli

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeToken builds a GitHub-token-shaped value that is not a credential,
// so that none sits in the repository as a literal.
func fakeToken(label string) string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	sum := sha256.Sum256([]byte(label))
	var b strings.Builder
	b.WriteString("ghp_")
	for _, c := range sum[:] {
		if b.Len() == 40 {
			break
		}
		b.WriteByte(alnum[int(c)%len(alnum)])
	}
	for b.Len() < 40 {
		b.WriteByte('q')
	}
	return b.String()
}

func runScan(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(append([]string{"scan"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestScanCommand(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(t.TempDir(), "data")
	old := fakeToken("cli-old")
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("GH_TOKEN="+old+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runScan(t, "--data-dir", data, dir)
	if code != 1 || !strings.Contains(out, "github-pat") || !strings.Contains(errOut, "at or above high") {
		t.Fatalf("scan: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	st, err := os.Stat(filepath.Join(data, scanKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", st, err)
	}
	if code, _, _ := runScan(t, "--data-dir", data, "--fail-on", "none", dir); code != 0 {
		t.Errorf("--fail-on none: exit %d", code)
	}
	code, js, _ := runScan(t, "--data-dir", data, "-o", "json", dir)
	if code != 1 {
		t.Fatalf("json: exit %d", code)
	}
	baseline := filepath.Join(t.TempDir(), "baseline.json")
	if err := os.WriteFile(baseline, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runScan(t, "--data-dir", data, "--baseline", baseline, dir); code != 0 {
		t.Errorf("baseline holds every finding: exit %d: %s", code, out)
	}
	fresh := fakeToken("cli-new")
	if err := os.WriteFile(filepath.Join(dir, "b.env"), []byte("TOKEN="+fresh+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runScan(t, "--data-dir", data, "--baseline", baseline, dir)
	if code != 1 || strings.Count(out, "(new)") != 1 {
		t.Errorf("a new finding: exit %d, %q", code, out)
	}
	_, sarif, _ := runScan(t, "--data-dir", data, "-o", "sarif", dir)
	for _, s := range []string{out, js, sarif, errOut} {
		if strings.Contains(s, old) || strings.Contains(s, fresh) {
			t.Errorf("output holds a secret: %q", s)
		}
	}
	if code, _, errOut := runScan(t, "--data-dir", data, "-o", "xml", dir); code != 2 || !strings.Contains(errOut, "use table, json or sarif") {
		t.Errorf("-o xml: exit %d, %q", code, errOut)
	}
	if code, _, _ := runScan(t, "--data-dir", data, "--git", dir); code != 2 {
		t.Errorf("--git on a directory that is not a repository: exit %d", code)
	}
}
