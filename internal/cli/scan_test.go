package cli

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// --validate is off by default: a scan without it calls no provider, even
// with a provider's base set in the environment; with it, each distinct
// secret is sent once and the answer is in every output, never the value.
func TestScanValidate(t *testing.T) {
	valid, invalid := fakeToken("cli-valid"), fakeToken("cli-invalid")
	var calls atomic.Int64
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodGet || r.URL.Path != "/user" {
			t.Errorf("github fake: %s %s", r.Method, r.URL.Path)
		}
		if r.Header.Get("Authorization") == "Bearer "+valid {
			w.Write([]byte(`{"login": "x"}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer gh.Close()
	t.Setenv(validateBaseEnv, "github="+gh.URL)
	dir := t.TempDir()
	data := filepath.Join(t.TempDir(), "data")
	body := "A=" + valid + "\nB=" + invalid + "\n"
	for _, name := range []string{"a.env", "b.env"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var outs []string
	for _, o := range []string{"table", "json", "sarif"} {
		code, out, errOut := runScan(t, "--data-dir", data, "--fail-on", "none", "-o", o, dir)
		if code != 0 || strings.Contains(out, "valid") || strings.Contains(errOut, "--validate") {
			t.Errorf("-o %s without --validate: exit %d, %q, %q", o, code, out, errOut)
		}
		outs = append(outs, out, errOut)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d provider calls without --validate", n)
	}
	code, out, errOut := runScan(t, "--data-dir", data, "--fail-on", "none", "--validate", dir)
	if code != 0 || strings.Count(errOut, "--validate sends each found secret") != 1 {
		t.Fatalf("--validate: exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "VALIDITY") || strings.Count(out, " valid\n") != 2 || strings.Count(out, " invalid\n") != 2 {
		t.Errorf("--validate table:\n%s", out)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d provider calls for 2 distinct secrets in 4 places", n)
	}
	outs = append(outs, out, errOut)
	_, js, _ := runScan(t, "--data-dir", data, "--fail-on", "none", "--validate", "-o", "json", dir)
	_, sarif, _ := runScan(t, "--data-dir", data, "--fail-on", "none", "--validate", "-o", "sarif", dir)
	if !strings.Contains(js, `"state": "invalid"`) || !strings.Contains(sarif, `"validity": "valid"`) {
		t.Errorf("json %s\nsarif %s", js, sarif)
	}
	outs = append(outs, js, sarif)
	for _, s := range outs {
		if strings.Contains(s, valid) || strings.Contains(s, invalid) || strings.Contains(s, valid[4:20]) || strings.Contains(s, invalid[4:20]) {
			t.Errorf("output holds a secret: %q", s)
		}
	}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--validate-base", "github=" + gh.URL}, "go with --validate"},
		{[]string{"--validate", "--validate-base", "github=http://example.com"}, "plain http only to a loopback"},
		{[]string{"--validate", "--validate-base", "github"}, "want PROVIDER=URL"},
		{[]string{"--validate", "--validate-base", "gitlab=https://gitlab.com"}, `no provider "gitlab"`},
		{[]string{"--validate", "--validate-timeout", "0s"}, "must be positive"},
	} {
		code, _, errOut := runScan(t, append(append([]string{"--data-dir", data}, c.args...), dir)...)
		if code != 2 || !strings.Contains(errOut, c.err) {
			t.Errorf("%v: exit %d, %q, want %q", c.args, code, errOut, c.err)
		}
	}
	t.Setenv(validateBaseEnv, "github=https://evil.example")
	if code, _, errOut := runScan(t, "--data-dir", data, "--validate", dir); code != 2 || !strings.Contains(errOut, "only points at local fakes") {
		t.Errorf("a non-loopback base in the environment: exit %d, %q", code, errOut)
	}
}
