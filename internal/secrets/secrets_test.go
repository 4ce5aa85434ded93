package secrets

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// testKey is the fingerprint key of the tests' detector.
var testKey = []byte("writ-secrets-test-fingerprint-key")

var (
	detOnce sync.Once
	det     *Detector
	detErr  error
)

// testDetector builds the detector once per test binary (it compiles a few
// hundred regular expressions).
func testDetector(tb testing.TB) *Detector {
	tb.Helper()
	detOnce.Do(func() { det, detErr = New(Config{FingerprintKey: testKey}) })
	if detErr != nil {
		tb.Fatal(detErr)
	}
	return det
}

// fake returns n characters of alphabet derived from label: the same every
// run, random-looking (high entropy), and not a real credential. Test
// secrets are built with it so that no credential-shaped literal sits in
// the repository.
func fake(label, alphabet string, n int) string {
	var b strings.Builder
	seed := sha256.Sum256([]byte(label))
	for b.Len() < n {
		for _, c := range seed {
			if b.Len() == n {
				break
			}
			b.WriteByte(alphabet[int(c)%len(alphabet)])
		}
		seed = sha256.Sum256(seed[:])
	}
	return b.String()
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b64         = alnum + "+/"
	hexdigits   = "0123456789abcdef"
)

func pem(kind string) string {
	body := fake("pem"+kind, b64, 64*4)
	var lines []string
	for i := 0; i < len(body); i += 64 {
		lines = append(lines, body[i:i+64])
	}
	return "-----BEGIN " + kind + "PRIVATE KEY-----\n" + strings.Join(lines, "\n") + "\n-----END " + kind + "PRIVATE KEY-----"
}

func jwt() string {
	return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUgRG9lIiwiYWRtaW4iOnRydWV9." + fake("jwtsig", alnum+"_-", 43)
}

type positive struct {
	name, rule, text, secret string
}

func positives() []positive {
	awsKey := "AKIA" + fake("aws", upperDigits, 16)
	awsSecret := fake("awssecret", b64, 40)
	gcp := "AIza" + fake("gcp", alnum+"_-", 35)
	azureAD := "abc8Q~" + fake("azuread", alnum+"_~.-", 34)
	azureStorage := fake("azstorage", b64, 86) + "=="
	ghp := "ghp_" + fake("ghp", alnum, 36)
	ghFine := "github_pat_" + fake("ghfine", alnum+"_", 82)
	glpat := "glpat-" + fake("glpat", alnum+"_-", 20)
	slack := "xoxb-1234567890-1234567890123-" + fake("slack", alnum, 24)
	stripe := "sk_live_" + fake("stripe", alnum, 24)
	openai := "sk-proj-" + fake("oai1", alnum+"_-", 74) + "T3BlbkFJ" + fake("oai2", alnum+"_-", 74)
	anthropic := "sk-ant-api03-" + fake("ant", alnum+"_-", 93) + "AA"
	bearer := fake("bearer", alnum+"._-", 40)
	pgPass := "S3cr3t-" + fake("pg", alnum, 10)
	mongoPass := fake("mongo", alnum, 16)
	redisPass := fake("redis", alnum, 18)
	pw := "Tr0ub4dor&3x!" + fake("pw", alnum, 4)
	apiKey := fake("apikey", alnum, 32)
	j := jwt()
	return []positive{
		{"rsa private key", "private-key", "key:\n" + pem("RSA ") + "\n", pem("RSA ")},
		{"openssh private key", "private-key", pem("OPENSSH "), pem("OPENSSH ")},
		{"private key in json escapes", "private-key", `{"private_key": "` + strings.ReplaceAll(pem(""), "\n", `\n`) + `"}`, strings.ReplaceAll(pem(""), "\n", `\n`)},
		{"aws access key", "aws-access-token", "AWS_ACCESS_KEY_ID=" + awsKey, awsKey},
		{"aws secret key", "aws-secret-access-key", "aws_secret_access_key = " + awsSecret + "\n", awsSecret},
		{"gcp api key", "gcp-api-key", `const key = "` + gcp + `";`, gcp},
		{"azure ad client secret", "azure-ad-client-secret", `client_secret: "` + azureAD + `"`, azureAD},
		{"azure storage key", "azure-storage-account-key", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + azureStorage + ";EndpointSuffix=core.windows.net", azureStorage},
		{"github pat", "github-pat", "token " + ghp, ghp},
		{"github fine-grained pat", "github-fine-grained-pat", ghFine, ghFine},
		{"gitlab pat", "gitlab-pat", "GITLAB_TOKEN=" + glpat, glpat},
		{"slack bot token", "slack-bot-token", "slack: " + slack, slack},
		{"stripe live key", "stripe-access-token", "STRIPE_KEY=" + stripe, stripe},
		{"openai key", "openai-api-key", "OPENAI_API_KEY=" + openai, openai},
		{"anthropic key", "anthropic-api-key", "ANTHROPIC_API_KEY=" + anthropic, anthropic},
		{"bearer header", "authorization-bearer", "Authorization: Bearer " + bearer, bearer},
		{"jwt", "jwt", "id_token=" + j + " ", j},
		{"postgres uri", "uri-credentials", "DATABASE_URL=postgres://app:" + pgPass + "@db.internal:5432/app", pgPass},
		{"mongodb+srv uri", "uri-credentials", "mongodb+srv://admin:" + mongoPass + "@cluster0.abcde.mongodb.net/test", mongoPass},
		{"redis uri without user", "uri-credentials", "redis://:" + redisPass + "@cache:6379/0", redisPass},
		{"password assignment", "password-assignment", "db_password=" + pw, pw},
		{"password in yaml", "password-assignment", "smtp:\n  password: '" + pw + "'\n", pw},
		{"generic api key", "generic-api-key", `api_key: "` + apiKey + `"`, apiKey},
	}
}

func TestFindPositives(t *testing.T) {
	d := testDetector(t)
	for _, tc := range positives() {
		t.Run(tc.name, func(t *testing.T) {
			fs := d.Find([]byte(tc.text))
			if len(fs) != 1 {
				t.Fatalf("Find(%q) = %d findings %+v, want 1 of %s", tc.text, len(fs), fs, tc.rule)
			}
			f := fs[0]
			if f.RuleID != tc.rule {
				t.Errorf("rule = %s, want %s", f.RuleID, tc.rule)
			}
			if got := tc.text[f.Start:f.End]; got != tc.secret {
				t.Errorf("span = %q, want %q", got, tc.secret)
			}
			wantLine := 1 + strings.Count(tc.text[:f.Start], "\n")
			wantCol := f.Start - (strings.LastIndexByte(tc.text[:f.Start], '\n') + 1) + 1
			if f.Line != wantLine || f.Column != wantCol {
				t.Errorf("at %d:%d, want %d:%d", f.Line, f.Column, wantLine, wantCol)
			}
			if f.Fingerprint != d.Fingerprint([]byte(tc.secret)) || len(f.Fingerprint) != 64 {
				t.Errorf("fingerprint %q is not the keyed HMAC of the secret", f.Fingerprint)
			}
			if f.Severity == "" || f.Description == "" {
				t.Errorf("finding without severity or description: %+v", f)
			}
			out, rfs := d.Redact([]byte(tc.text))
			if bytes.Contains(out, []byte(tc.secret)) {
				t.Errorf("Redact left the secret: %q", out)
			}
			if !bytes.Contains(out, []byte(Marker(tc.rule))) || len(rfs) != 1 {
				t.Errorf("Redact = %q, %d findings; want the marker of %s", out, len(rfs), tc.rule)
			}
		})
	}
}

func TestFindNegatives(t *testing.T) {
	d := testDetector(t)
	for _, tc := range []struct{ name, text string }{
		{"uuid", "request 550e8400-e29b-41d4-a716-446655440000 done"},
		{"uuid as id", `{"id": "550e8400-e29b-41d4-a716-446655440000"}`},
		{"sha256 digest", "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		{"git commit", "commit 83d9cd684c87d95d656c1458ef04895a7f1cbd8e"},
		{"lockfile integrity", `"integrity": "sha512-Hc3s0DjMsL8nH8xW6dSR6HyNbsAvJgKUCUMTAF0pKpN7t6lq/QZVX5fJ1x5YMmrEaHzJzm9tQnAtl6WyPJA=="`},
		{"aws example access key", "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"},
		{"aws example secret", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
		{"uri placeholder password", "postgres://user:password@localhost:5432/db"},
		{"uri variable password", "postgres://app:${DB_PASSWORD}@db:5432/app"},
		{"uri without password", "https://github.com/modelcontextprotocol/servers"},
		{"password placeholder", `password: "<your password>"`},
		{"password changeme", "password=changeme"},
		{"password from env", "password = os.getenv('DB_PASSWORD')"},
		{"password field description", `"password": {"type": "string", "description": "The user's password"}`},
		{"bearer placeholder", "Authorization: Bearer <token>"},
		{"bearer variable", "Authorization: Bearer $GITHUB_TOKEN"},
		{"prose", "The API key is stored in the vault; pass a token to authenticate."},
		{"low entropy key", "api_key = aaaaaaaaaaaaaaaaaaaa"},
		{"short token count", "token_count: 12345"},
		{"markers", "password=[REDACTED:password-assignment] " + Marker("jwt")},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if fs := d.Find([]byte(tc.text)); len(fs) != 0 {
				for _, f := range fs {
					t.Errorf("Find(%q): %s at %q", tc.text, f.RuleID, tc.text[f.Start:f.End])
				}
			}
		})
	}
}

func TestFindingHasNoValue(t *testing.T) {
	d := testDetector(t)
	for _, tc := range positives() {
		fs := d.Find([]byte(tc.text))
		b, err := json.Marshal(fs)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(tc.secret)) {
			t.Errorf("%s: the finding's JSON holds the secret: %s", tc.name, b)
		}
	}
}

func TestFingerprintIsKeyed(t *testing.T) {
	a := testDetector(t)
	b, err := New(Config{FingerprintKey: []byte("another-key-of-at-least-16-bytes")})
	if err != nil {
		t.Fatal(err)
	}
	v := []byte("some secret value")
	if a.Fingerprint(v) == b.Fingerprint(v) {
		t.Error("two keys give the same fingerprint")
	}
	if a.Fingerprint(v) != a.Fingerprint(bytes.Clone(v)) {
		t.Error("fingerprint is not deterministic")
	}
	if _, err := New(Config{FingerprintKey: []byte("short")}); err == nil {
		t.Error("New accepted a 5-byte key")
	}
}

func TestDisable(t *testing.T) {
	d, err := New(Config{FingerprintKey: testKey, Disable: []string{"github-pat"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range d.Rules() {
		if r.ID == "github-pat" {
			t.Fatal("disabled rule still listed")
		}
	}
	if fs := d.Find([]byte("ghp_" + fake("ghp", alnum, 36))); len(fs) != 0 {
		t.Errorf("disabled rule found %+v", fs)
	}
}

func TestRules(t *testing.T) {
	rules := testDetector(t).Rules()
	seen := map[string]bool{}
	sources := map[string]int{}
	for _, r := range rules {
		if seen[r.ID] {
			t.Errorf("rule %s twice", r.ID)
		}
		seen[r.ID] = true
		sources[r.Source]++
	}
	if sources["gitleaks"] < 200 || sources["writ"] < 5 {
		t.Errorf("rules by source %v: want gitleaks' ~215 content rules and writ's", sources)
	}
	for _, id := range []string{"private-key", "aws-access-token", "gcp-api-key", "azure-ad-client-secret", "github-pat", "gitlab-pat", "slack-bot-token", "stripe-access-token", "openai-api-key", "anthropic-api-key", "jwt", "uri-credentials", "authorization-bearer", "generic-api-key", "password-assignment"} {
		if !seen[id] {
			t.Errorf("no rule %s", id)
		}
	}
}

func TestRedactManyAndEchoes(t *testing.T) {
	d := testDetector(t)
	ghp := "ghp_" + fake("ghp", alnum, 36)
	pg := "S3cr3t-" + fake("pg", alnum, 10)
	text := "a " + ghp + "\nurl postgres://u:" + pg + "@h/db\nagain " + pg + " and " + ghp + "\n"
	out, fs := d.Redact([]byte(text))
	if len(fs) < 3 {
		t.Errorf("findings %+v, want at least 3", fs)
	}
	for _, s := range []string{ghp, pg} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("Redact left %q in %q", s, out)
		}
	}
	want := "a [REDACTED:github-pat]\nurl postgres://u:[REDACTED:uri-credentials]@h/db\nagain [REDACTED:uri-credentials] and [REDACTED:github-pat]\n"
	if string(out) != want {
		t.Errorf("Redact =\n%s\nwant\n%s", out, want)
	}
	again, more := d.Redact(out)
	if !bytes.Equal(again, out) || len(more) != 0 {
		t.Errorf("second Redact changed the text or found %+v", more)
	}
}

func TestRedactJSON(t *testing.T) {
	d := testDetector(t)
	pw := "Tr0ub4dor&3x!" + fake("pw", alnum, 4)
	ghp := "ghp_" + fake("ghp", alnum, 36)
	key := strings.ReplaceAll(pem("EC "), "\n", `\n`)
	doc := `{"content":[{"type":"text","text":"env:\nGITHUB_TOKEN=` + ghp + `\n"}],` +
		` "env": {"DB_PASSWORD": "` + pw + `", "HOME": "/root"}, "n": 3, "ok": true, "list": [null, "` + key + `"]}`
	out, fs, err := d.RedactJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out) {
		t.Fatalf("RedactJSON returned invalid JSON: %s", out)
	}
	for _, s := range []string{ghp, pw, "PRIVATE KEY-----\\n" + key[40:60]} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("RedactJSON left %q in %s", s, out)
		}
	}
	got := map[string]string{}
	for _, f := range fs {
		got[f.Pointer] = f.RuleID
	}
	want := map[string]string{"/content/0/text": "github-pat", "/env/DB_PASSWORD": "password-assignment", "/list/1": "private-key"}
	for p, r := range want {
		if got[p] != r {
			t.Errorf("finding at %s = %q, want %s (all: %v)", p, got[p], r, got)
		}
	}
	// The rest of the document is as it was.
	var v struct {
		N    int               `json:"n"`
		OK   bool              `json:"ok"`
		Env  map[string]string `json:"env"`
		List []any             `json:"list"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if v.N != 3 || !v.OK || v.Env["HOME"] != "/root" || v.Env["DB_PASSWORD"] != Marker("password-assignment") || v.List[0] != nil {
		t.Errorf("document changed outside its secrets: %+v", v)
	}
	if _, _, err := d.RedactJSON([]byte(`{"a": `)); !errors.Is(err, ErrNotJSON) {
		t.Errorf("RedactJSON(truncated) error = %v, want ErrNotJSON", err)
	}
	clean := []byte(`{"a": "b", "c": [1, 2.5e3, "d"]}`)
	if out, fs, err := d.RedactJSON(clean); err != nil || !bytes.Equal(out, clean) || len(fs) != 0 {
		t.Errorf("RedactJSON(clean) = %s, %v, %v", out, fs, err)
	}
}

func TestHostileInput(t *testing.T) {
	d := testDetector(t)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"nul bytes", bytes.Repeat([]byte{0}, 4096)},
		{"invalid utf-8", []byte("password=\xff\xfe\xfd\xfc\xfb\xfa token=\xc3\x28abcdefghijkl")},
		{"long line of keywords", []byte(strings.Repeat("key=token secret password bearer ", 5000))},
		{"unterminated pem", []byte("-----BEGIN PRIVATE KEY-----" + strings.Repeat("A", 100000))},
		{"many uris", []byte(strings.Repeat("postgres://a:b@", 10000))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range d.Find(tc.data) {
				if f.Start < 0 || f.End > len(tc.data) || f.Start >= f.End {
					t.Fatalf("span [%d,%d) out of input of %d bytes", f.Start, f.End, len(tc.data))
				}
			}
			d.Redact(tc.data)
		})
	}
	deep := strings.Repeat("[", 10000) + `"x"` + strings.Repeat("]", 10000)
	if _, _, err := d.RedactJSON([]byte(deep)); err != nil {
		t.Errorf("RedactJSON(deep) = %v", err)
	}
}

// TestConcurrentFind runs Find from several goroutines on different inputs
// (the detector's scratch space is pooled) and checks each result against
// a sequential run; with -race it also checks for data races.
func TestConcurrentFind(t *testing.T) {
	d := testDetector(t)
	cases := positives()
	want := make([][]Finding, len(cases))
	for i, tc := range cases {
		want[i] = d.Find([]byte(tc.text))
	}
	var wg sync.WaitGroup
	errs := make(chan string, len(cases)*4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < 20; k++ {
				i := (g*7 + k) % len(cases)
				got := d.Find([]byte(cases[i].text))
				if len(got) != len(want[i]) || len(got) > 0 && got[0] != want[i][0] {
					errs <- cases[i].name
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for name := range errs {
		t.Errorf("%s: concurrent Find differs from sequential", name)
	}
}

// TestGitleaksRulesPinned checks that the embedded rule file is gitleaks
// v8.30.1's config/gitleaks.toml, byte for byte: an update is a deliberate
// change of GitleaksVersion and of this digest.
func TestGitleaksRulesPinned(t *testing.T) {
	const want = "e163e53b9e7e8a8511e77271e2b323ed057759542a6d988258afe3a1fa329caf"
	if got := fmt.Sprintf("%x", sha256.Sum256(gitleaksRules)); got != want || GitleaksVersion != "v8.30.1" {
		t.Errorf("rules/gitleaks.toml has SHA-256 %s (version %s), want %s (v8.30.1)", got, GitleaksVersion, want)
	}
}

func TestPathAllowed(t *testing.T) {
	d := testDetector(t)
	for path, want := range map[string]bool{
		"package-lock.json":             true,
		"web/yarn.lock":                 true,
		"go.sum":                        true,
		"node_modules/x/index.js":       true,
		"img/logo.PNG":                  true,
		"config/.env":                   false,
		".github/workflows/ci.yml":      false,
		"deploy/secret.yaml":            false,
		"package-lock.json.bak/main.go": false,
	} {
		if got := d.PathAllowed(path); got != want {
			t.Errorf("PathAllowed(%q) = %v, want %v", path, got, want)
		}
	}
}

// Detectors share the compiled rules of the same disabled set, and only
// those: each keeps its own fingerprint key.
func TestRuleSetsShared(t *testing.T) {
	a, err := New(Config{FingerprintKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{FingerprintKey: []byte("another key of 16+ bytes")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{FingerprintKey: testKey, Disable: []string{"github-pat", "github-pat"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{FingerprintKey: testKey, Disable: []string{"github-pat"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.ruleSet != b.ruleSet || c.ruleSet != d.ruleSet || a.ruleSet == c.ruleSet {
		t.Fatal("rule sets are not shared by exactly the detectors with the same disabled rules")
	}
	in := []byte("token = ghp_" + strings.Repeat("a1B2c3D4e5", 3) + "123456")
	fa, fb := a.Find(in), b.Find(in)
	if len(fa) != 1 || len(fb) != 1 || fa[0].Fingerprint == fb[0].Fingerprint {
		t.Fatalf("findings %+v and %+v: want one each, fingerprinted under each detector's own key", fa, fb)
	}
	if got := c.Find(in); len(got) != 0 && got[0].RuleID == "github-pat" {
		t.Fatalf("disabled rule ran: %+v", got)
	}
}

// Rules' regexes are compiled when a rule first runs; loading only checks
// their syntax. Every embedded rule must compile (regexp refuses what the
// syntax check cannot see: a program over its size limit), exactly one of
// its two forms is kept, and a detector that ran on nothing has compiled
// nothing.
func TestEveryRuleCompiles(t *testing.T) {
	rs, err := compileRuleSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rs.rules {
		r := &rs.rules[i]
		if (r.re == nil) == (r.core == nil) {
			t.Fatalf("rule %s: want exactly one of re and core", r.ID)
		}
		for _, l := range []*lazyRegexp{r.re, r.core} {
			if l == nil {
				continue
			}
			if l.re != nil {
				t.Fatalf("rule %s compiled before it ran", r.ID)
			}
			if _, err := regexp.Compile(l.src); err != nil {
				t.Errorf("rule %s: %v", r.ID, err)
			}
		}
	}
	// A rule with a bad regex is refused at load, not when it runs.
	if _, err := compileRule(fileRule{ID: "bad", Regex: `(unclosed`}, "test"); err == nil {
		t.Fatal("a rule with a bad regex loaded")
	}
	if _, err := compileRule(fileRule{ID: "group", Regex: `a(b)`, SecretGroup: 2}, "test"); err == nil || !strings.Contains(err.Error(), "secretGroup 2") {
		t.Fatalf("secretGroup beyond the regex's groups: %v", err)
	}
}
