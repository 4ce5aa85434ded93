package scan

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/secrets"
)

// fakeSecrets are provider-shaped values built at run time (no
// credential-shaped literal in the repository), by the answer the fake
// provider gives them.
type fakeSecrets struct {
	ghValid, ghInvalid, ghFail, ghPerm           string
	slackValid, slackRevoked, slackOdd           string
	openaiValid, openaiInvalid                   string
	antValid, antInvalid, antPerm                string
	stripeValid, stripeInvalid, stripeRestricted string
	aws                                          string
}

func newFakeSecrets() fakeSecrets {
	gh := func(l string) string { return "ghp_" + fake(l, alnum, 36) }
	sl := func(l string) string { return "xoxb-1234567890-1234567890123-" + fake(l, alnum, 24) }
	oa := func(l string) string {
		return "sk-proj-" + fake(l+"a", alnum, 74) + "T3BlbkFJ" + fake(l+"b", alnum, 74)
	}
	an := func(l string) string { return "sk-ant-api03-" + fake(l, alnum, 93) + "AA" }
	st := func(l string) string { return "sk_live_" + fake(l, alnum, 24) }
	return fakeSecrets{
		ghValid: gh("v-gh-valid"), ghInvalid: gh("v-gh-invalid"), ghFail: gh("v-gh-fail"), ghPerm: gh("v-gh-perm"),
		slackValid: sl("v-sl-valid"), slackRevoked: sl("v-sl-revoked"), slackOdd: sl("v-sl-odd"),
		openaiValid: oa("v-oa-valid"), openaiInvalid: oa("v-oa-invalid"),
		antValid: an("v-an-valid"), antInvalid: an("v-an-invalid"), antPerm: an("v-an-perm"),
		stripeValid: st("v-st-valid"), stripeInvalid: st("v-st-invalid"), stripeRestricted: st("v-st-restricted"),
		aws: "AKIA" + fake("v-aws", upperDigits, 16),
	}
}

func (s fakeSecrets) all() []string {
	return []string{s.ghValid, s.ghInvalid, s.ghFail, s.ghPerm, s.slackValid, s.slackRevoked, s.slackOdd, s.openaiValid, s.openaiInvalid,
		s.antValid, s.antInvalid, s.antPerm, s.stripeValid, s.stripeInvalid, s.stripeRestricted, s.aws}
}

// fakeProviders is one loopback server playing every provider. Each
// handler checks the exact request shape (method, path, headers) and
// fails the test on anything else; it answers by the secret it got.
type fakeProviders struct {
	*httptest.Server
	calls sync.Map // provider → *atomic.Int64
	seen  sync.Map // secret → *atomic.Int64
}

func (p *fakeProviders) count(m *sync.Map, k string) {
	c, _ := m.LoadOrStore(k, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

func (p *fakeProviders) n(m *sync.Map, k string) int64 {
	c, ok := m.Load(k)
	if !ok {
		return 0
	}
	return c.(*atomic.Int64).Load()
}

func newFakeProviders(t *testing.T, s fakeSecrets) *fakeProviders {
	p := &fakeProviders{}
	bearerOf := func(w http.ResponseWriter, r *http.Request, method, path string) (string, bool) {
		if r.Method != method || r.URL.Path != path || r.URL.RawQuery != "" {
			t.Errorf("request %s %s?%s, want %s %s", r.Method, r.URL.Path, r.URL.RawQuery, method, path)
			http.Error(w, "wrong request", http.StatusBadRequest)
			return "", false
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			t.Errorf("%s %s without a bearer token", method, path)
			return "", false
		}
		p.count(&p.seen, tok)
		return tok, true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/github/", func(w http.ResponseWriter, r *http.Request) {
		p.count(&p.calls, "github")
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/github")
		tok, ok := bearerOf(w, r, http.MethodGet, "/user")
		if !ok {
			return
		}
		if r.Header.Get("Accept") != "application/vnd.github+json" || r.Header.Get("X-GitHub-Api-Version") == "" {
			t.Errorf("github: headers %v", r.Header)
		}
		switch tok {
		case s.ghValid:
			fmt.Fprint(w, `{"login": "octo"}`)
		case s.ghFail:
			http.Error(w, "oops", http.StatusBadGateway)
		case s.ghPerm:
			http.Error(w, `{"message": "Resource not accessible by integration"}`, http.StatusForbidden)
		default:
			http.Error(w, `{"message": "Bad credentials"}`, http.StatusUnauthorized)
		}
	})
	mux.HandleFunc("/slack/", func(w http.ResponseWriter, r *http.Request) {
		p.count(&p.calls, "slack")
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/slack")
		tok, ok := bearerOf(w, r, http.MethodPost, "/api/auth.test")
		if !ok {
			return
		}
		if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("slack: content type %q", r.Header.Get("Content-Type"))
		}
		switch tok {
		case s.slackValid:
			fmt.Fprint(w, `{"ok": true, "team": "T1"}`)
		case s.slackOdd:
			// Free text in the error field (echoing the token) is never
			// quoted.
			fmt.Fprintf(w, `{"ok": false, "error": "bad token %s"}`, tok)
		default:
			fmt.Fprint(w, `{"ok": false, "error": "token_revoked"}`)
		}
	})
	mux.HandleFunc("/openai/", func(w http.ResponseWriter, r *http.Request) {
		p.count(&p.calls, "openai")
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/openai")
		tok, ok := bearerOf(w, r, http.MethodGet, "/v1/models")
		if !ok {
			return
		}
		if tok == s.openaiValid {
			fmt.Fprint(w, `{"data": []}`)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error": {"message": "Incorrect API key provided: %s", "code": "invalid_api_key"}}`, tok)
	})
	mux.HandleFunc("/anthropic/", func(w http.ResponseWriter, r *http.Request) {
		p.count(&p.calls, "anthropic")
		if r.Method != http.MethodGet || r.URL.Path != "/anthropic/v1/models" || r.Header.Get("Anthropic-Version") != "2023-06-01" || r.Header.Get("Authorization") != "" {
			t.Errorf("anthropic: %s %s %v", r.Method, r.URL.Path, r.Header)
		}
		tok := r.Header.Get("X-Api-Key")
		p.count(&p.seen, tok)
		switch tok {
		case s.antValid:
			fmt.Fprint(w, `{"data": []}`)
		case s.antPerm:
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"type": "error", "error": {"type": "permission_error"}}`)
		default:
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}`)
		}
	})
	mux.HandleFunc("/stripe/", func(w http.ResponseWriter, r *http.Request) {
		p.count(&p.calls, "stripe")
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/stripe")
		tok, ok := bearerOf(w, r, http.MethodGet, "/v1/balance")
		if !ok {
			return
		}
		switch tok {
		case s.stripeValid:
			fmt.Fprint(w, `{"object": "balance"}`)
		case s.stripeRestricted:
			w.WriteHeader(http.StatusForbidden)
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

func (p *fakeProviders) bases() map[string]string {
	m := map[string]string{}
	for _, n := range ProviderNames() {
		m[n] = p.URL + "/" + n
	}
	return m
}

// validatingScanner is a scanner handing values to a new validator.
func validatingScanner(t *testing.T, cfg ValidatorConfig) (*Scanner, *Validator) {
	t.Helper()
	v, err := NewValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ig, _ := ParseIgnore("", nil)
	sc, err := New(Config{Detector: testDetector(t), Ignore: ig, Workers: 2, Secret: v.Collect})
	if err != nil {
		t.Fatal(err)
	}
	return sc, v
}

// scanValidated scans files with a validator collecting values.
func scanValidated(t *testing.T, files map[string]string, cfg ValidatorConfig) ([]Finding, *Validator, int) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	sc, v := validatingScanner(t, cfg)
	fs, err := sc.Dir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	calls := v.Validate(context.Background(), fs)
	return fs, v, calls
}

func TestValidateProviders(t *testing.T) {
	s := newFakeSecrets()
	p := newFakeProviders(t, s)
	files := map[string]string{
		"gh.env":        fmt.Sprintf("A=%s\nB=%s\nC=%s\nD=%s\n", s.ghValid, s.ghInvalid, s.ghFail, s.ghPerm),
		"copy/gh.env":   "A=" + s.ghValid + "\n", // the same secret again: one call
		"slack.env":     fmt.Sprintf("A=%s\nB=%s\nC=%s\n", s.slackValid, s.slackRevoked, s.slackOdd),
		"openai.env":    fmt.Sprintf("A=%s\nB=%s\n", s.openaiValid, s.openaiInvalid),
		"anthropic.env": fmt.Sprintf("A=%s\nB=%s\nC=%s\n", s.antValid, s.antInvalid, s.antPerm),
		"stripe.env":    fmt.Sprintf("A=%s\nB=%s\nC=%s\n", s.stripeValid, s.stripeInvalid, s.stripeRestricted),
		"aws.env":       "AWS_ACCESS_KEY_ID=" + s.aws + "\n",
	}
	fs, _, calls := scanValidated(t, files, ValidatorConfig{Bases: p.bases(), Concurrency: 3})
	want := map[string]Validity{
		"gh.env:1": Valid, "gh.env:2": Invalid, "gh.env:3": Unknown, "gh.env:4": Unknown, "copy/gh.env:1": Valid,
		"slack.env:1": Valid, "slack.env:2": Invalid, "slack.env:3": Unknown,
		"openai.env:1": Valid, "openai.env:2": Invalid,
		"anthropic.env:1": Valid, "anthropic.env:2": Invalid, "anthropic.env:3": Valid,
		"stripe.env:1": Valid, "stripe.env:2": Invalid, "stripe.env:3": Valid,
		"aws.env:1": Unknown,
	}
	got := map[string]Validity{}
	for _, f := range fs {
		if f.Validation == nil {
			t.Fatalf("%s:%d (%s) has no validation", f.Path, f.Line, f.RuleID)
		}
		got[fmt.Sprintf("%s:%d", f.Path, f.Line)] = f.Validation.State
		t.Logf("%s:%d %s %s: %s", f.Path, f.Line, f.RuleID, f.Validation.State, f.Validation.Reason)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	// Each distinct secret is sent once, and only to its provider.
	if calls != 15 {
		t.Errorf("%d calls, want 15 (every distinct secret but the AWS key id)", calls)
	}
	for _, sec := range s.all() {
		want := int64(1)
		if sec == s.aws {
			want = 0
		}
		if n := p.n(&p.seen, sec); n != want {
			t.Errorf("secret %.8s… sent %d times, want %d", sec, n, want)
		}
	}
	for prov, n := range map[string]int64{"github": 4, "slack": 3, "openai": 2, "anthropic": 3, "stripe": 3} {
		if got := p.n(&p.calls, prov); got != n {
			t.Errorf("%s: %d calls, want %d", prov, got, n)
		}
	}
	byPlace := map[string]*Validation{}
	for _, f := range fs {
		byPlace[fmt.Sprintf("%s:%d", f.Path, f.Line)] = f.Validation
	}
	if r := byPlace["aws.env:1"].Reason; !strings.Contains(r, "STS GetCallerIdentity") {
		t.Errorf("aws reason %q", r)
	}
	if r := byPlace["slack.env:3"].Reason; r != "auth.test: unrecognised error" {
		t.Errorf("slack free-text error: reason %q", r)
	}
	if r := byPlace["gh.env:3"].Reason; !strings.Contains(r, "502") {
		t.Errorf("github 502: reason %q", r)
	}
	noSecretIn(t, fs, s.all())
}

// noSecretIn checks that no output format, reason or ranked table holds a
// secret (or a 12-character piece of one).
func noSecretIn(t *testing.T, fs []Finding, values []string) {
	t.Helper()
	var out bytes.Buffer
	if err := WriteTable(&out, fs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "VALIDITY") {
		t.Errorf("table without a VALIDITY column:\n%s", out.String())
	}
	if err := WriteJSON(&out, Report{Target: "x", Findings: fs}); err != nil {
		t.Fatal(err)
	}
	if err := WriteSARIF(&out, fs, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteRanked(&out, Rank(fs, &Knowledge{})); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		for i := 0; i+12 <= len(v); i += 6 {
			if bytes.Contains(out.Bytes(), []byte(v[i:i+12])) {
				t.Fatalf("output holds a piece of secret %.4s…: %q", v, v[i:i+12])
			}
		}
	}
}

func TestValidateSARIFProperty(t *testing.T) {
	s := newFakeSecrets()
	p := newFakeProviders(t, s)
	fs, _, _ := scanValidated(t, map[string]string{"a.env": "A=" + s.ghValid + "\n"}, ValidatorConfig{Bases: p.bases()})
	var out bytes.Buffer
	if err := WriteSARIF(&out, fs, nil); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Runs []struct {
			Results []struct {
				Properties map[string]any `json:"properties"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(out.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	props := log.Runs[0].Results[0].Properties
	if props["validity"] != "valid" || props["validity_provider"] != "github" || props["validity_reason"] == "" {
		t.Errorf("SARIF properties %v", props)
	}
}

// Hostile providers: a slow one, one redirecting to another host, one
// answering a huge body, one refusing connections. None yields valid
// or invalid, none is followed elsewhere, and the body read is bounded.
func TestValidateHostileProviders(t *testing.T) {
	s := newFakeSecrets()
	release := make(chan struct{})
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect's other host was called: %s %s", r.Method, r.URL)
	}))
	defer other.Close()
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/slow/"):
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case strings.HasPrefix(r.URL.Path, "/redirect/"):
			http.Redirect(w, r, other.URL+"/user", http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/huge/"):
			// A valid answer after more than the bytes read: a full read
			// would say valid.
			w.Write([]byte(`{"pad": "`))
			chunk := bytes.Repeat([]byte("A"), 32<<10)
			for range 64 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			w.Write([]byte(`", "ok": true}`))
		}
	}))
	defer close(release)
	defer hostile.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	files := map[string]string{
		"a.env": fmt.Sprintf("GH=%s\nSL=%s\nOA=%s\nST=%s\nAN=%s\n", s.ghValid, s.slackValid, s.openaiValid, s.stripeValid, s.antValid),
	}
	tr := &countingTransport{next: http.DefaultTransport}
	fs, _, _ := scanValidated(t, files, ValidatorConfig{
		Timeout: 200 * time.Millisecond, Concurrency: 2, Transport: tr,
		Bases: map[string]string{
			"github": hostile.URL + "/redirect", "slack": hostile.URL + "/huge", "openai": hostile.URL + "/slow",
			"stripe": closedURL, "anthropic": hostile.URL + "/slow",
		},
	})
	reasons := map[string]string{}
	for _, f := range fs {
		if f.Validation.State != Unknown {
			t.Errorf("%s: %s (%s), want unknown", f.RuleID, f.Validation.State, f.Validation.Reason)
		}
		reasons[f.RuleID] = f.Validation.Reason
	}
	for rule, want := range map[string]string{
		"github-pat": "redirect, not followed", "slack-bot-token": "without a Slack answer",
		"openai-api-key": "no answer within 200ms", "anthropic-api-key": "no answer within 200ms", "stripe-access-token": "network error",
	} {
		if !strings.Contains(reasons[rule], want) {
			t.Errorf("%s: reason %q, want %q", rule, reasons[rule], want)
		}
	}
	if m := tr.max.Load(); m > 2 || m < 1 {
		t.Errorf("%d calls in flight at once, want at most 2", m)
	}
	noSecretIn(t, fs, s.all())
}

// countingTransport counts the round trips in flight on the client side.
type countingTransport struct {
	next          http.RoundTripper
	inFlight, max atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	return c.next.RoundTrip(r)
}

// The budget ends validation: what was not checked in time is unknown.
func TestValidateBudget(t *testing.T) {
	s := newFakeSecrets()
	release := make(chan struct{})
	var calls atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	files := map[string]string{"a.env": fmt.Sprintf("A=%s\nB=%s\nC=%s\n", s.ghValid, s.ghInvalid, s.ghFail)}
	fs, _, n := scanValidated(t, files, ValidatorConfig{Timeout: time.Hour, Budget: 100 * time.Millisecond, Concurrency: 1, Bases: map[string]string{"github": slow.URL}})
	if n != 1 || calls.Load() != 1 {
		t.Errorf("%d calls made (%d served), want 1: concurrency 1 and the budget spent on the first", n, calls.Load())
	}
	budget := 0
	for _, f := range fs {
		if f.Validation.State != Unknown {
			t.Errorf("%s", f.Validation.State)
		}
		if strings.Contains(f.Validation.Reason, "budget of 100ms") {
			budget++
		}
	}
	if budget != 3 {
		t.Errorf("%d findings unchecked for the budget, want 3 (one cut short, two never sent)", budget)
	}
}

// Without a validator the scanner hands no value anywhere, and with one
// that collected nothing Validate makes no call.
func TestValidateOffByDefault(t *testing.T) {
	s := newFakeSecrets()
	called := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a provider was called without validation: %s %s", r.Method, r.URL)
	}))
	defer called.Close()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.env": "A=" + s.ghValid + "\n"})
	fs, err := testScanner(t, nil).Dir(context.Background(), dir)
	if err != nil || len(fs) != 1 {
		t.Fatalf("%v %v", fs, err)
	}
	if fs[0].Validation != nil {
		t.Errorf("validation without a validator: %+v", fs[0].Validation)
	}
	v, err := NewValidator(ValidatorConfig{Bases: map[string]string{"github": called.URL}})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing collected (the scan ran without Secret): no call.
	if n := v.Validate(context.Background(), fs); n != 0 || fs[0].Validation.State != Unknown ||
		fs[0].Validation.Reason != "not validated: the value was not kept by this scan" {
		t.Errorf("calls %d, %+v", n, fs[0].Validation)
	}
}

func TestParseBase(t *testing.T) {
	for _, c := range []struct{ name, raw, err string }{
		{"github", "https://ghe.example.com/api/v3/", ""},
		{"github", "http://127.0.0.1:8080", ""},
		{"github", "http://[::1]:8080", ""},
		{"github", "http://localhost:1", ""},
		{"github", "http://example.com", "plain http only to a loopback"},
		{"github", "http://127.0.0.1.nip.io", "plain http only to a loopback"},
		{"github", "ftp://127.0.0.1", "scheme"},
		{"github", "https://user:pw@example.com", "no user"},
		{"github", "https://example.com/?q=1", "no user, query"},
		{"github", "example.com", "want a URL"},
		{"gitlab", "https://gitlab.com", `no provider "gitlab"`},
	} {
		got, err := ParseBase(c.name, c.raw)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s=%s: %v", c.name, c.raw, err)
		case c.err == "" && strings.HasSuffix(got, "/"):
			t.Errorf("%s=%s: %q keeps a trailing slash", c.name, c.raw, got)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s=%s: error %v, want %q", c.name, c.raw, err, c.err)
		}
	}
}

// Validity moves the score: valid doubles it, invalid halves it, unknown
// leaves it; the ranking follows.
func TestRankByValidity(t *testing.T) {
	mk := func(fp string, v *Validation) Finding {
		return Finding{RuleID: "github-pat", Severity: secrets.SeverityHigh, Path: fp + ".env", Line: 1, Fingerprint: fp, Validation: v}
	}
	fs := []Finding{
		mk("a-invalid", &Validation{State: Invalid}),
		mk("b-none", nil),
		mk("c-unknown", &Validation{State: Unknown}),
		mk("d-valid", &Validation{State: Valid}),
	}
	r := Rank(fs, &Knowledge{})
	var order []string
	var scores []int
	for _, x := range r {
		order = append(order, x.Fingerprint)
		scores = append(scores, x.Blast.Score)
	}
	// high 3 × reach 1 × present 2 = 6; ×2 valid, ÷2 invalid.
	if fmt.Sprint(order) != "[d-valid b-none c-unknown a-invalid]" || fmt.Sprint(scores) != "[12 6 6 3]" {
		t.Errorf("order %v scores %v", order, scores)
	}
	// With reach: high 3 × (1 + 4 for the Service) × 2 = 30, 60 valid,
	// 15 invalid: a valid key opening nothing (12) stays below an invalid
	// one opening a Service.
	k := &Knowledge{Services: []ServiceRef{{Name: "svc", Host: "svc.internal"}}}
	var got []string
	for _, v := range []*Validation{{State: Invalid}, nil, {State: Valid}} {
		f := mk("opens", v)
		f.Hosts = []string{"svc.internal"}
		got = append(got, fmt.Sprint(Radius(&f, k).Score))
	}
	if fmt.Sprint(got) != "[15 30 60]" {
		t.Errorf("scores invalid, unknown, valid = %v, want [15 30 60]", got)
	}
}

func TestScrub(t *testing.T) {
	sec := "ghp_" + fake("scrub", alnum, 36)
	for _, reason := range []string{"x " + sec, "x " + sec[3:25] + " y"} {
		if got := scrub(reason, sec); strings.Contains(got, sec[5:20]) {
			t.Errorf("scrub(%q) = %q", reason, got)
		}
	}
	if got := scrub("HTTP 401: bad credentials", sec); got != "HTTP 401: bad credentials" {
		t.Errorf("scrub changed a clean reason: %q", got)
	}
}

// FuzzJudge feeds every provider's judge arbitrary answers: the state is
// one of three, and a secret the body echoes never reaches the reason.
func FuzzJudge(f *testing.F) {
	f.Add(0, 200, "", []byte(`{"login": "x"}`))
	f.Add(1, 200, "", []byte(`{"ok": false, "error": "invalid_auth"}`))
	f.Add(1, 200, "", []byte(`{"ok": false, "error": "SECRET"}`))
	f.Add(2, 401, "", []byte(`{"error": {"code": "invalid_api_key", "message": "SECRET"}}`))
	f.Add(2, 401, "", []byte(`{"error": {"code": 7}}`))
	f.Add(3, 403, "", []byte(`{"error": {"type": "permission_error"}}`))
	f.Add(3, 401, "", []byte(`{"error": {"type": "SECRET"}}`))
	f.Add(4, 403, "0", []byte(``))
	f.Add(0, 302, "", []byte(``))
	f.Add(0, 403, "0", []byte(`{`))
	f.Fuzz(func(t *testing.T, which, status int, remaining string, body []byte) {
		if len(providers) == 0 {
			return
		}
		p := &providers[(which%len(providers)+len(providers))%len(providers)]
		secret := "sk_secret_" + fake("fuzz", alnum, 24)
		body = bytes.ReplaceAll(body, []byte("SECRET"), []byte(secret))
		h := http.Header{}
		h.Set("X-Ratelimit-Remaining", remaining)
		state, reason := judge(p, status, h, body)
		switch state {
		case Valid, Invalid, Unknown:
		default:
			t.Fatalf("state %q", state)
		}
		if reason == "" {
			t.Fatal("no reason")
		}
		if strings.Contains(scrub(reason, secret), secret[10:]) || strings.Contains(reason, secret) {
			t.Fatalf("reason %q holds the secret", reason)
		}
		if status >= 500 || status == 429 || (status >= 300 && status < 400) {
			if state != Unknown {
				t.Fatalf("HTTP %d judged %s", status, state)
			}
		}
	})
}

// History: a secret deleted before HEAD, written in several commits and
// on a side branch, is still validated, once, and a Kubernetes Secret's
// base64 value is sent decoded.
func TestValidateGitHistory(t *testing.T) {
	s := newFakeSecrets()
	p := newFakeProviders(t, s)
	r := newGitRepo(t)
	r.commit("add", map[string]string{"a.env": "GH=" + s.ghValid + "\n"})
	r.commit("move", map[string]string{"a.env": "", "b.env": "GH=" + s.ghValid + "\nX=1\n"})
	r.commit("drop", map[string]string{"b.env": ""})
	r.git("checkout", "-q", "-b", "side")
	r.commit("side", map[string]string{"k8s.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  token: " +
		base64.StdEncoding.EncodeToString([]byte(s.stripeInvalid)) + "\n"})
	sc, v := validatingScanner(t, ValidatorConfig{Bases: p.bases()})
	fs, err := sc.Git(context.Background(), r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if calls := v.Validate(context.Background(), fs); calls != 2 {
		t.Errorf("%d calls, want 2 (one per distinct secret)", calls)
	}
	states := map[string]Validity{}
	for _, f := range fs {
		states[f.RuleID] = f.Validation.State
	}
	if states["github-pat"] != Valid || states["stripe-access-token"] != Invalid || len(fs) != 2 {
		t.Errorf("findings %d, states %v", len(fs), states)
	}
	if p.n(&p.seen, s.ghValid) != 1 || p.n(&p.seen, s.stripeInvalid) != 1 {
		t.Errorf("sent: github %d, stripe (decoded) %d", p.n(&p.seen, s.ghValid), p.n(&p.seen, s.stripeInvalid))
	}
	noSecretIn(t, fs, s.all())
}
