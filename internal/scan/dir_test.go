package scan

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kindCase is one file of a kind the scanner knows: its secrets (the
// values, each of which must be found once on its line with its rule) and
// look-alikes in the same file that must not be.
type kindCase struct {
	path, body string
	kind       Kind
	want       []want
}

type want struct {
	rule  string
	line  int
	value string
}

func kindCases() []kindCase {
	ghp := "ghp_" + fake("ghp", alnum, 36)
	aws := "AKIA" + fake("aws", upperDigits, 16)
	glpat := "glpat-" + fake("glpat", alnum+"_-", 20)
	stripe := "sk_live_" + fake("stripe", alnum, 24)
	slack := "xoxb-1234567890-1234567890123-" + fake("slack", alnum, 24)
	pgPass := "S3cr3t-" + fake("pg", alnum, 10)
	pw := "Tr0ub4dor&3x!" + fake("pw", alnum, 4)
	k8sPw := "Kq7!" + fake("k8spw", alnum, 16)
	uuid := "123e4567-e89b-12d3-a456-426614174000"
	sha := fake("sha", hexdigits, 64)
	gitsha := fake("gitsha", hexdigits, 40)
	return []kindCase{
		{".github/workflows/ci.yml", "name: ci\non: push\nenv:\n  RUN_ID: " + uuid + "\n  GH_TOKEN: " + ghp + "\njobs:\n  b:\n    steps:\n      - uses: actions/checkout@" + gitsha + "\n      - run: echo ${{ secrets.DEPLOY_KEY }}\n",
			KindGitHubCI, []want{{"github-pat", 5, ghp}}},
		{".gitlab-ci.yml", "variables:\n  GITLAB_TOKEN: " + glpat + "\n  CHECKSUM: sha256:" + sha + "\n",
			KindGitLabCI, []want{{"gitlab-pat", 2, glpat}}},
		{"Jenkinsfile", "pipeline {\n  environment {\n    AWS_ACCESS_KEY_ID = '" + aws + "'\n    EXAMPLE_ID = 'AKIAIOSFODNN7EXAMPLE'\n  }\n}\n",
			KindJenkins, []want{{"aws-access-token", 3, aws}}},
		{".circleci/config.yml", "jobs:\n  build:\n    environment:\n      STRIPE_KEY: " + stripe + "\n      BUILD_ID: " + uuid + "\n",
			KindCircleCI, []want{{"stripe-access-token", 4, stripe}}},
		{"Dockerfile", "FROM golang@sha256:" + sha + "\nARG SLACK=" + slack + "\nENV DATABASE_URL=postgres://app:" + pgPass + "@db:5432/app\nENV TOKEN=${TOKEN}\n",
			KindDockerfile, []want{{"slack-bot-token", 2, slack}, {"uri-credentials", 3, pgPass}}},
		{"deploy/docker-compose.yml", "services:\n  db:\n    image: postgres@sha256:" + sha + "\n    environment:\n      POSTGRES_PASSWORD: '" + pw + "'\n      POSTGRES_USER: app\n",
			KindCompose, []want{{"password-assignment", 5, pw}}},
		{"k8s/secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  uid: " + uuid + "\ntype: Opaque\ndata:\n  password: " + base64.StdEncoding.EncodeToString([]byte(k8sPw)) + "\n  username: " + base64.StdEncoding.EncodeToString([]byte("admin")) + "\n---\napiVersion: v1\nkind: ConfigMap\ndata:\n  checksum: " + sha + "\n",
			KindKubernetes, []want{{"password-assignment", 8, k8sPw}}},
		{"chart/values.yaml", "image:\n  digest: sha256:" + sha + "\ngithub:\n  token: " + ghp + "\n",
			KindHelmValues, []want{{"github-pat", 4, ghp}}},
		{"app/.env", "# local\nDB_PASSWORD=" + pw + "\nREQUEST_ID=" + uuid + "\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nCOMMIT=" + gitsha + "\n",
			KindDotenv, []want{{"password-assignment", 2, pw}}},
		{".mcp.json", `{"mcpServers": {"github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],` + "\n" +
			`  "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "` + ghp + `", "SESSION": "` + uuid + `"}}}}` + "\n",
			KindMCPConfig, []want{{"github-pat", 2, ghp}}},
		{"web/package-lock.json", `{"packages": {"node_modules/x": {"integrity": "sha512-` + fake("integrity", alnum+"+/", 86) + `==", "token": "` + ghp + `"}}}`,
			KindGeneric, nil},
		{"web/yarn.lock", "x@1:\n  integrity sha512-" + fake("yarn", alnum+"+/", 86) + "==\n", KindGeneric, nil},
	}
}

func TestDirKinds(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{}
	for _, c := range kindCases() {
		files[c.path] = c.body
	}
	writeFiles(t, root, files)
	fs, err := testScanner(t, nil).Dir(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	d := testDetector(t)
	got := map[string][]Finding{}
	for _, f := range fs {
		got[f.Path] = append(got[f.Path], f)
	}
	for _, c := range kindCases() {
		t.Run(c.path, func(t *testing.T) {
			if k := KindOf(c.path); k != c.kind && c.kind != KindKubernetes {
				t.Errorf("KindOf = %s, want %s", k, c.kind)
			}
			fs := got[c.path]
			if len(fs) != len(c.want) {
				t.Fatalf("%d findings %+v, want %d %+v", len(fs), fs, len(c.want), c.want)
			}
			for i, w := range c.want {
				f := fs[i]
				if f.RuleID != w.rule || f.Line != w.line || f.Fingerprint != d.Fingerprint([]byte(w.value)) {
					t.Errorf("finding %d = %s at line %d (fp %s), want %s at line %d (fp of the value)", i, f.RuleID, f.Line, short(f.Fingerprint), w.rule, w.line)
				}
				if c.kind != KindGeneric && f.Kind != c.kind {
					t.Errorf("finding %d kind = %s, want %s", i, f.Kind, c.kind)
				}
			}
		})
	}
}

func TestDirSkips(t *testing.T) {
	root := t.TempDir()
	ghp := "ghp_" + fake("skips", alnum, 36)
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.txt": "token " + ghp + "\n"})
	writeFiles(t, root, map[string]string{
		".git/config":         "token " + ghp + "\n",
		"bin/blob":            "\x00\x01token " + ghp + "\n",
		"big.txt":             strings.Repeat("x", 200) + "\ntoken " + ghp + "\n",
		"allowed.go":          "var t = \"" + ghp + "\" // writ:allow test fixture\n",
		"vendored/keep.txt":   "token " + ghp + "\n",
		"ignored/a/b.txt":     "token " + ghp + "\n",
		"node_modules/x/y.js": "token " + ghp + "\n",
		".writscanignore":     "# fixtures\nignored/\n",
	})
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "link.txt")); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Detector: testDetector(t), MaxFileSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := s.Dir(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Path != "vendored/keep.txt" {
		t.Fatalf("findings %+v, want only vendored/keep.txt", fs)
	}
}

func TestIgnoreRuleAndFingerprint(t *testing.T) {
	root := t.TempDir()
	ghp := "ghp_" + fake("ig1", alnum, 36)
	ghp2 := "ghp_" + fake("ig2", alnum, 36)
	aws := "AKIA" + fake("ig3", upperDigits, 16)
	writeFiles(t, root, map[string]string{"a.txt": "token " + ghp + "\ntoken " + ghp2 + "\nkey " + aws + "\n"})
	ig, err := ParseIgnore("test", []byte("rule:aws-access-token\nfingerprint:"+testDetector(t).Fingerprint([]byte(ghp))+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := testScanner(t, ig).Dir(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Line != 2 {
		t.Fatalf("findings %+v, want only line 2", fs)
	}
}

// TestOutputsHoldNoSecret writes every output format for findings of every
// kind and looks for each value in them.
func TestOutputsHoldNoSecret(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{}
	var values []string
	for _, c := range kindCases() {
		files[c.path] = c.body
		for _, w := range c.want {
			values = append(values, w.value)
		}
	}
	writeFiles(t, root, files)
	fs, err := testScanner(t, nil).Dir(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) < len(values) {
		t.Fatalf("%d findings, want at least %d", len(fs), len(values))
	}
	var out bytes.Buffer
	if err := WriteTable(&out, fs); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&out, Report{Target: root, Findings: fs}); err != nil {
		t.Fatal(err)
	}
	if err := WriteSARIF(&out, fs, testDetector(t).Rules()); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		for _, part := range []string{v, v[len(v)/2:], base64.StdEncoding.EncodeToString([]byte(v))} {
			if bytes.Contains(out.Bytes(), []byte(part)) {
				t.Errorf("output holds secret %q", part)
			}
		}
	}
}

func ExampleKindOf() {
	for _, p := range []string{".github/workflows/ci.yml", "Dockerfile", "deploy/.env.production", "claude_desktop_config.json"} {
		fmt.Println(p, KindOf(p))
	}
	// Output:
	// .github/workflows/ci.yml github-actions
	// Dockerfile dockerfile
	// deploy/.env.production dotenv
	// claude_desktop_config.json mcp-config
}
