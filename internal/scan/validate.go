package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Live validation (#15, `writ scan --validate`, docs/scan.md#live-validation):
// each distinct secret whose provider has a harmless, read-only identity
// call is sent to that provider once, and the answer says whether the
// secret still opens something. It is off unless asked for: it sends the
// secret off the machine.

// Validity is what a provider said of a secret.
type Validity string

// The validation states.
const (
	// Valid: the provider accepted the secret.
	Valid Validity = "valid"
	// Invalid: the provider refused it as unknown, revoked or expired.
	Invalid Validity = "invalid"
	// Unknown: no answer that decides (a network error, a timeout, a
	// rate limit, a 5xx, a redirect, an unsupported provider).
	Unknown Validity = "unknown"
)

// Validation is a finding's live validation: the state and why. Reason
// never holds the secret (it is built from fixed text, status codes and
// the provider's error code when it is a short identifier).
type Validation struct {
	State    Validity `json:"state"`
	Provider string   `json:"provider,omitempty"`
	Reason   string   `json:"reason"`
}

// Validator defaults.
const (
	DefaultValidateTimeout     = 5 * time.Second
	DefaultValidateBudget      = 60 * time.Second
	DefaultValidateConcurrency = 4
	// maxValidateBody is how much of a provider's answer is read.
	maxValidateBody = 64 << 10
)

// provider is a service whose secrets can be checked with a harmless call.
type provider struct {
	name  string
	base  string // default base URL, no trailing slash
	rules []string
	// request builds the check: method, path (after the base) and headers.
	method, path string
	headers      func(secret string) http.Header
	// judge reads the answer.
	judge func(status int, h http.Header, body []byte) (Validity, string)
}

func bearer(secret string) http.Header {
	return http.Header{"Authorization": {"Bearer " + secret}}
}

// providers are the checks writ makes. Each is an identity or read-only
// listing call that changes nothing (see docs/scan.md#live-validation).
var providers = []provider{
	{
		name: "github", base: "https://api.github.com",
		rules:  []string{"github-pat", "github-fine-grained-pat", "github-oauth", "github-app-token"},
		method: http.MethodGet, path: "/user",
		headers: func(s string) http.Header {
			h := bearer(s)
			h.Set("Accept", "application/vnd.github+json")
			h.Set("X-GitHub-Api-Version", "2022-11-28")
			return h
		},
		judge: judgeGitHub,
	},
	{
		name: "slack", base: "https://slack.com",
		rules: []string{"slack-bot-token", "slack-user-token", "slack-legacy-token", "slack-legacy-bot-token",
			"slack-legacy-workspace-token"},
		method: http.MethodPost, path: "/api/auth.test",
		headers: func(s string) http.Header {
			h := bearer(s)
			h.Set("Content-Type", "application/x-www-form-urlencoded")
			return h
		},
		judge: judgeSlack,
	},
	{
		name: "openai", base: "https://api.openai.com",
		rules:  []string{"openai-api-key"},
		method: http.MethodGet, path: "/v1/models",
		headers: bearer,
		judge:   judgeOpenAI,
	},
	{
		name: "anthropic", base: "https://api.anthropic.com",
		rules:  []string{"anthropic-api-key"},
		method: http.MethodGet, path: "/v1/models",
		headers: func(s string) http.Header {
			return http.Header{"X-Api-Key": {s}, "Anthropic-Version": {"2023-06-01"}}
		},
		judge: judgeAnthropic,
	},
	{
		name: "stripe", base: "https://api.stripe.com",
		rules:  []string{"stripe-access-token"},
		method: http.MethodGet, path: "/v1/balance",
		headers: bearer,
		judge:   judgeStripe,
	},
}

// notValidated says why a rule with a known provider is not checked.
var notValidated = map[string]string{
	"aws-access-token":           "not validated: an AWS access key id is half a credential (the check, STS GetCallerIdentity, needs its secret key and SigV4)",
	"aws-secret-access-key":      "not validated: an AWS secret key needs its access key id (STS GetCallerIdentity with SigV4)",
	"github-refresh-token":       "not validated: a GitHub refresh token works only with its app's client secret",
	"slack-app-token":            "not validated: Slack app-level tokens have no harmless identity call",
	"slack-webhook-url":          "not validated: the only check of a webhook is posting to it",
	"anthropic-admin-api-key":    "not validated: no read-only call is documented for admin keys",
	"gitlab-pat":                 "not validated: self-managed GitLab uses the same prefix (the token would go to gitlab.com)",
	"slack-config-access-token":  "not validated: Slack configuration tokens have no harmless identity call",
	"slack-config-refresh-token": "not validated: Slack configuration tokens have no harmless identity call",
}

// ProviderNames lists the providers live validation knows, for
// --validate-base.
func ProviderNames() []string {
	names := make([]string, len(providers))
	for i, p := range providers {
		names[i] = p.name
	}
	return names
}

func providerOf(ruleID string) *provider {
	for i := range providers {
		if slices.Contains(providers[i].rules, ruleID) {
			return &providers[i]
		}
	}
	return nil
}

// ValidatorConfig configures a [Validator]. Zero values take the defaults.
type ValidatorConfig struct {
	// Timeout bounds each call; Budget all of them together.
	Timeout, Budget time.Duration
	// Concurrency bounds the calls in flight.
	Concurrency int
	// Bases overrides providers' base URLs by provider name (a loopback
	// fake in tests): https, or http to a loopback address only.
	Bases map[string]string
	// Transport sends the calls; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// Validator checks found secrets with their providers. Collect is handed
// the values during the scan (as [Config.Secret]); Validate then checks
// each distinct secret once and sets the findings' Validation.
type Validator struct {
	cfg    ValidatorConfig
	bases  map[string]string
	client *http.Client

	mu     sync.Mutex
	values map[secretRef]string
}

type secretRef struct{ rule, fingerprint string }

// ParseBase checks a --validate-base override: an https URL, or an http one
// to a loopback address, with no user, query or fragment. It returns the
// base without a trailing slash.
func ParseBase(name, raw string) (string, error) {
	if !slices.Contains(ProviderNames(), name) {
		return "", fmt.Errorf("--validate-base %s=…: no provider %q; use one of %s", name, name, strings.Join(ProviderNames(), ", "))
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("--validate-base %s=%q: want a URL such as https://host[:port][/path] (no user, query or fragment)", name, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return "", fmt.Errorf("--validate-base %s=%q: plain http only to a loopback address (127.0.0.1, ::1, localhost); use https", name, raw)
		}
	default:
		return "", fmt.Errorf("--validate-base %s=%q: scheme %q; use https (or http to a loopback address)", name, raw, u.Scheme)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// LoopbackBases parses base URL overrides from an environment variable
// named name: "PROVIDER=http://LOOPBACK:PORT[/path]" separated by commas,
// for tests. Only plain http to a loopback address is taken, so that a
// variable slipped into a CI job cannot send the secrets elsewhere.
func LoopbackBases(name, env string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(env) == "" {
		return out, nil
	}
	for _, b := range strings.Split(env, ",") {
		prov, raw, ok := strings.Cut(strings.TrimSpace(b), "=")
		u, err := url.Parse(raw)
		if !ok || err != nil || u.Scheme != "http" || !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%s: %q: want PROVIDER=http://LOOPBACK:PORT, comma-separated (it only points at local fakes; use --validate-base otherwise)", name, b)
		}
		if _, err := ParseBase(prov, raw); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[prov] = raw
	}
	return out, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewValidator returns a validator.
func NewValidator(cfg ValidatorConfig) (*Validator, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultValidateTimeout
	}
	if cfg.Budget <= 0 {
		cfg.Budget = DefaultValidateBudget
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultValidateConcurrency
	}
	bases := map[string]string{}
	for _, p := range providers {
		bases[p.name] = p.base
	}
	for name, raw := range cfg.Bases {
		b, err := ParseBase(name, raw)
		if err != nil {
			return nil, err
		}
		bases[name] = b
	}
	tr := cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &Validator{
		cfg:   cfg,
		bases: bases,
		client: &http.Client{
			Transport: tr,
			// No redirect is followed: the secret goes to the provider's
			// host and nowhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		values: map[secretRef]string{},
	}, nil
}

// Collect keeps a finding's value when its rule has a provider check. It
// is safe for concurrent use, and keeps one value per rule and
// fingerprint.
func (v *Validator) Collect(ruleID, fingerprint string, value []byte) {
	if providerOf(ruleID) == nil {
		return
	}
	ref := secretRef{ruleID, fingerprint}
	v.mu.Lock()
	if _, ok := v.values[ref]; !ok {
		v.values[ref] = string(value)
	}
	v.mu.Unlock()
}

// Validate checks each distinct secret of findings with its provider (at
// most Concurrency at once, each within Timeout, all within Budget) and
// sets every finding's Validation. It returns how many calls it made.
func (v *Validator) Validate(ctx context.Context, findings []Finding) int {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Budget)
	defer cancel()
	results := map[secretRef]*Validation{}
	var refs []secretRef
	for _, f := range findings {
		ref := secretRef{f.RuleID, f.Fingerprint}
		if _, ok := results[ref]; ok {
			continue
		}
		p := providerOf(f.RuleID)
		v.mu.Lock()
		_, have := v.values[ref]
		v.mu.Unlock()
		switch {
		case p == nil:
			reason := notValidated[f.RuleID]
			if reason == "" {
				reason = "not validated: no provider check for rule " + f.RuleID
			}
			results[ref] = &Validation{State: Unknown, Reason: reason}
		case !have:
			results[ref] = &Validation{State: Unknown, Provider: p.name, Reason: "not validated: the value was not kept by this scan"}
		default:
			results[ref] = nil
			refs = append(refs, ref)
		}
	}
	// A stable order: the same scan makes the same calls in the same
	// order (up to concurrency).
	sort.Slice(refs, func(i, j int) bool {
		return refs[i].rule+refs[i].fingerprint < refs[j].rule+refs[j].fingerprint
	})
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, v.cfg.Concurrency)
	)
	calls := 0
	for _, ref := range refs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			mu.Lock()
			results[ref] = &Validation{State: Unknown, Provider: providerOf(ref.rule).name,
				Reason: fmt.Sprintf("not checked: the validation budget of %s was spent", v.cfg.Budget)}
			mu.Unlock()
			continue
		}
		calls++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			v.mu.Lock()
			secret := v.values[ref]
			v.mu.Unlock()
			r := v.check(ctx, providerOf(ref.rule), secret)
			mu.Lock()
			results[ref] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	for i := range findings {
		r := results[secretRef{findings[i].RuleID, findings[i].Fingerprint}]
		c := *r
		findings[i].Validation = &c
	}
	return calls
}

// check makes p's call with secret and judges the answer.
func (v *Validator) check(ctx context.Context, p *provider, secret string) *Validation {
	out := &Validation{State: Unknown, Provider: p.name}
	defer func() { out.Reason = scrub(out.Reason, secret) }()
	budget := ctx
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, p.method, v.bases[p.name]+p.path, http.NoBody)
	if err != nil {
		out.Reason = "request not built: " + err.Error()
		return out
	}
	for k, vs := range p.headers(secret) {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", "writ-scan-validate")
	resp, err := v.client.Do(req)
	if err != nil {
		out.Reason = v.requestError(budget, ctx, err)
		return out
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxValidateBody))
	if err != nil {
		out.Reason = v.requestError(budget, ctx, err)
		return out
	}
	out.State, out.Reason = judge(p, resp.StatusCode, resp.Header, body)
	return out
}

// judge reads a provider's answer: the rules all providers share, then
// the provider's own.
func judge(p *provider, status int, h http.Header, body []byte) (Validity, string) {
	switch {
	case status >= 300 && status < 400:
		return Unknown, fmt.Sprintf("HTTP %d: a redirect, not followed", status)
	case status == http.StatusTooManyRequests:
		return Unknown, "HTTP 429: rate limited"
	case status >= 500:
		return Unknown, fmt.Sprintf("HTTP %d: the provider failed", status)
	}
	return p.judge(status, h, body)
}

func otherStatus(status int) (Validity, string) {
	return Unknown, fmt.Sprintf("HTTP %d: does not decide", status)
}

func judgeGitHub(status int, h http.Header, _ []byte) (Validity, string) {
	switch {
	case status == http.StatusOK:
		return Valid, "HTTP 200 from GET /user"
	case status == http.StatusUnauthorized:
		return Invalid, "HTTP 401: bad credentials"
	case status == http.StatusForbidden && h.Get("X-Ratelimit-Remaining") == "0":
		return Unknown, "HTTP 403: rate limited"
	case status == http.StatusForbidden:
		// GitHub answers 401 for a bad token; 403 is an accepted token
		// without access to /user (an app installation token) or a
		// blocked request: it does not decide.
		return Unknown, "HTTP 403: the token may be valid without access to /user"
	}
	return otherStatus(status)
}

// slackInvalid are auth.test's error codes for a token that opens nothing.
var slackInvalid = []string{"invalid_auth", "account_inactive", "token_revoked", "token_expired"}

func judgeSlack(status int, _ http.Header, body []byte) (Validity, string) {
	if status != http.StatusOK {
		return otherStatus(status)
	}
	var r struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.OK == nil {
		return Unknown, "HTTP 200 without a Slack answer (no \"ok\")"
	}
	if *r.OK {
		return Valid, "auth.test ok"
	}
	code := errorCode(r.Error)
	if slices.Contains(slackInvalid, r.Error) {
		return Invalid, "auth.test: " + code
	}
	return Unknown, "auth.test: " + code
}

func judgeOpenAI(status int, _ http.Header, body []byte) (Validity, string) {
	switch status {
	case http.StatusOK:
		return Valid, "HTTP 200 from GET /v1/models"
	case http.StatusUnauthorized:
		// A restricted key without the models scope is also refused
		// with 401; only invalid_api_key says the key is not one.
		var r struct {
			Error struct {
				Code any `json:"code"`
			} `json:"error"`
		}
		json.Unmarshal(body, &r)
		if c, _ := r.Error.Code.(string); c == "invalid_api_key" {
			return Invalid, "HTTP 401: invalid_api_key"
		}
		return Unknown, "HTTP 401 without invalid_api_key (a restricted key?)"
	}
	return otherStatus(status)
}

func judgeAnthropic(status int, _ http.Header, body []byte) (Validity, string) {
	switch status {
	case http.StatusOK:
		return Valid, "HTTP 200 from GET /v1/models"
	case http.StatusUnauthorized:
		return Invalid, "HTTP 401: " + errorType(body, "authentication_error")
	case http.StatusForbidden:
		// permission_error: the key authenticated, it may not list models.
		return Valid, "HTTP 403: " + errorType(body, "permission_error") + " (the key authenticated)"
	}
	return otherStatus(status)
}

func judgeStripe(status int, _ http.Header, _ []byte) (Validity, string) {
	switch status {
	case http.StatusOK:
		return Valid, "HTTP 200 from GET /v1/balance"
	case http.StatusUnauthorized:
		return Invalid, "HTTP 401: no valid API key"
	case http.StatusForbidden:
		// A restricted key without the balance permission.
		return Valid, "HTTP 403: a restricted key without balance access (the key authenticated)"
	}
	return otherStatus(status)
}

// errorType is an Anthropic error body's error.type, or def.
func errorType(body []byte, def string) string {
	var r struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &r) == nil && r.Error.Type != "" {
		return errorCode(r.Error.Type)
	}
	return def
}

var codeRE = regexp.MustCompile(`^[a-z0-9_.]{1,48}$`)

// errorCode is a provider's error code when it is a short identifier
// (never free text, which could echo the secret), else "unrecognised error".
func errorCode(s string) string {
	if codeRE.MatchString(s) {
		return s
	}
	return "unrecognised error"
}

// requestError says why a call got no answer, without its URL's details
// or anything the peer sent.
func (v *Validator) requestError(budget, call context.Context, err error) string {
	if budget.Err() != nil {
		return fmt.Sprintf("no answer before the validation budget of %s ran out", v.cfg.Budget)
	}
	if errors.Is(err, context.DeadlineExceeded) || call.Err() != nil {
		return "no answer within " + v.cfg.Timeout.String()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return "network error: " + ne.Op + " " + errText(ne.Err)
	}
	return "network error: " + errText(err)
}

func errText(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// scrub removes the secret (and its halves) from a reason, should a
// library's error ever quote it.
func scrub(reason, secret string) string {
	if secret == "" {
		return reason
	}
	if strings.Contains(reason, secret) {
		return "[reason withheld: it quoted the secret]"
	}
	if n := len(secret) / 2; n >= 8 {
		for i := 0; i+n <= len(secret); i++ {
			if strings.Contains(reason, secret[i:i+n]) {
				return "[reason withheld: it quoted part of the secret]"
			}
		}
	}
	return reason
}

// validityWeight scales a finding's score by its validation: a valid
// secret counts double, an invalid one half, unknown (or not validated)
// as it is. It returns the numerator over 2.
func validityWeight(v *Validation) int {
	if v == nil {
		return 2
	}
	switch v.State {
	case Valid:
		return 4
	case Invalid:
		return 1
	}
	return 2
}

// String is the state as the table prints it.
func (v *Validation) String() string {
	if v == nil {
		return "-"
	}
	return string(v.State)
}
