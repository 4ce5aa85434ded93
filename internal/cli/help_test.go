package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/keys"
)

// TestHelpNeverShowsSecrets runs --help (and -h) of every command with the
// admin credential and the key-encryption key in the environment, as the
// serve banner tells users to export them: no help text may contain
// either (cobra prints flag defaults, so a secret must never be one).
func TestHelpNeverShowsSecrets(t *testing.T) {
	const token, kek = "writ_admin_SECRETSECRETSECRET", "S0VLU0VDUkVUS0VLU0VDUkVUS0VLU0VDUkVUS0VLU0U="
	t.Setenv("WRIT_TOKEN", token)
	t.Setenv(keys.KEKEnv, kek)
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(newRoot(&globals{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}), nil)
	if len(paths) < 30 {
		t.Fatalf("walked only %d commands", len(paths))
	}
	for _, p := range paths {
		for _, h := range []string{"--help", "-h"} {
			var out, errb bytes.Buffer
			code := Main(append(append([]string(nil), p...), h), strings.NewReader(""), &out, &errb)
			all := out.String() + errb.String()
			if code != 0 || out.Len() == 0 {
				t.Errorf("writ %s %s: exit %d, %d bytes of help", strings.Join(p, " "), h, code, out.Len())
			}
			if strings.Contains(all, token) || strings.Contains(all, kek) || strings.Contains(all, "SECRETSECRET") {
				t.Errorf("writ %s %s shows a secret from the environment:\n%s", strings.Join(p, " "), h, all)
			}
		}
	}
}

// TestAdminTokenFromEnvironment: WRIT_TOKEN still authenticates, read
// when a command runs; --token wins over it.
func TestAdminTokenFromEnvironment(t *testing.T) {
	g := &globals{dataDir: t.TempDir(), getenv: func(k string) string {
		if k == "WRIT_TOKEN" {
			return "from-env"
		}
		return ""
	}}
	if tok, err := g.adminToken(); err != nil || tok != "from-env" {
		t.Errorf("adminToken = %q, %v; want the environment's", tok, err)
	}
	g.token = "from-flag"
	if tok, _ := g.adminToken(); tok != "from-flag" {
		t.Errorf("adminToken = %q; want --token to win", tok)
	}
}
