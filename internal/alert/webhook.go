package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// Webhook formats.
const (
	FormatGeneric = "generic"
	FormatSlack   = "slack"
)

// SignatureHeader carries the HMAC-SHA256 of a delivery:
// "t=UNIX,v1=HEX" where HEX is the HMAC under the webhook's secret of
// "UNIX." followed by the body. A receiver recomputes it and rejects a
// timestamp older than it accepts (see [VerifySignature]).
const SignatureHeader = "Writ-Signature"

// Webhook is one configured notification target. Its URL and Secret are
// secrets (Slack's URLs are bearer credentials): they are never logged,
// returned by the API or put in an error; [Webhook.String] shows the
// host only.
type Webhook struct {
	Name   string
	URL    string
	Format string
	Secret []byte
	// MinSeverity: alerts less severe are not sent (default info: all).
	MinSeverity string
	// Rules, when set, limits the webhook to these rules.
	Rules []string
}

// String names the webhook without its secrets.
func (w Webhook) String() string { return w.Name + " (" + w.Host() + ")" }

// Host is the URL's host, the only part of it that is shown.
func (w Webhook) Host() string {
	u, err := url.Parse(w.URL)
	if err != nil {
		return "?"
	}
	return u.Host
}

// Check returns an error naming the first unusable field, without the
// URL's or secret's content.
func (w Webhook) Check() error {
	if w.Name == "" || len(w.Name) > 64 || strings.ContainsFunc(w.Name, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		return fmt.Errorf("alerts.webhooks: name %q: want 1 to 64 letters, digits, - or _", w.Name)
	}
	u, err := url.Parse(w.URL)
	switch {
	case err != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("alerts.webhooks[%s].url: want an absolute http or https URL", w.Name)
	case u.User != nil:
		return fmt.Errorf("alerts.webhooks[%s].url: must not carry a user name or password; use secret_file for the signing key", w.Name)
	case u.Fragment != "":
		return fmt.Errorf("alerts.webhooks[%s].url: must not have a #fragment", w.Name)
	}
	switch w.Format {
	case "", FormatGeneric, FormatSlack:
	default:
		return fmt.Errorf("alerts.webhooks[%s].format %q: use generic or slack", w.Name, w.Format)
	}
	if w.MinSeverity != "" && SeverityRank(w.MinSeverity) < 0 {
		return fmt.Errorf("alerts.webhooks[%s].min_severity %q: use one of %s", w.Name, w.MinSeverity, strings.Join(Severities, ", "))
	}
	for _, r := range w.Rules {
		if _, ok := RuleByID(r); !ok {
			return fmt.Errorf("alerts.webhooks[%s].rules: %q is not a rule", w.Name, r)
		}
	}
	if w.Format != FormatSlack && len(w.Secret) > 0 && len(w.Secret) < 16 {
		return fmt.Errorf("alerts.webhooks[%s]: the secret is %d bytes; use at least 16", w.Name, len(w.Secret))
	}
	return nil
}

// Wants reports whether the webhook is to be told of alert a.
func (w Webhook) Wants(a store.Alert) bool {
	if w.MinSeverity != "" && SeverityRank(a.Severity) > SeverityRank(w.MinSeverity) {
		return false
	}
	return len(w.Rules) == 0 || containsString(w.Rules, a.Rule)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Sign returns the value of [SignatureHeader] for body at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks header against body, accepting timestamps at
// most maxAge before (or after) now. For receivers and tests.
func VerifySignature(secret, body []byte, header string, now time.Time, maxAge time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("malformed signature header")
	}
	if d := now.Sub(time.Unix(n, 0)); d > maxAge || d < -maxAge {
		return errors.New("signature timestamp out of range")
	}
	want := Sign(secret, body, time.Unix(n, 0))
	if !hmac.Equal([]byte(want), []byte("t="+ts+",v1="+sig)) {
		return errors.New("signature does not match")
	}
	return nil
}

// Deliverer sends the outbox's due deliveries, retrying with exponential
// backoff (1s, 2s, 4s, ... at most MaxBackoff) until MaxAttempts, then
// gives up and keeps the delivery as failed. Deliveries survive restarts
// in the store.
type Deliverer struct {
	Store       store.Alerts
	Hooks       map[string]Webhook
	Client      *http.Client
	Now         func() time.Time
	Logger      *slog.Logger
	MaxAttempts int           // default 10
	MaxBackoff  time.Duration // default 1h
}

// Payload is the generic webhook body.
type Payload struct {
	Type  string          `json:"type"` // "alert"
	Alert json.RawMessage `json:"alert"`
	// Actions are the exact commands an operator runs next.
	Actions []string `json:"actions"`
}

// Body renders delivery d for its webhook's format.
func Body(format string, d store.Delivery) ([]byte, error) {
	var a struct {
		ID       string           `json:"id"`
		Rule     string           `json:"rule"`
		Severity string           `json:"severity"`
		Title    string           `json:"title"`
		Subject  string           `json:"subject"`
		Count    int64            `json:"count"`
		Evidence []store.Evidence `json:"evidence"`
	}
	if err := json.Unmarshal(d.Body, &a); err != nil {
		return nil, fmt.Errorf("delivery %d: stored alert: %w", d.ID, err)
	}
	actions := []string{"writ alert ack " + a.ID, "writ alert resolve " + a.ID}
	rule, _ := RuleByID(a.Rule)
	if a.Rule == RuleApprovalPending {
		actions = append([]string{"writ approval approve " + a.Subject, "writ approval deny " + a.Subject}, actions...)
	}
	if format == FormatSlack {
		var b strings.Builder
		fmt.Fprintf(&b, "[%s] %s: %s", strings.ToUpper(a.Severity), a.Title, a.Subject)
		if len(a.Evidence) > 0 {
			fmt.Fprintf(&b, "\n%s", a.Evidence[0].Summary)
		}
		if rule.Fix != "" {
			fmt.Fprintf(&b, "\nFix: %s", rule.Fix)
		}
		for _, c := range actions {
			fmt.Fprintf(&b, "\n`%s`", c)
		}
		return json.Marshal(map[string]string{"text": b.String()})
	}
	return json.Marshal(Payload{Type: "alert", Alert: d.Body, Actions: actions})
}

func (dv *Deliverer) now() time.Time {
	if dv.Now != nil {
		return dv.Now()
	}
	return time.Now()
}

// DeliverDue sends every delivery due now and returns how many were
// delivered.
func (dv *Deliverer) DeliverDue(ctx context.Context) (int, error) {
	maxAttempts := dv.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 10
	}
	maxBackoff := dv.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = time.Hour
	}
	due, err := dv.Store.DueDeliveries(ctx, dv.now(), 50)
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, d := range due {
		hook, ok := dv.Hooks[d.Webhook]
		if !ok {
			d.Failed, d.LastError = true, "no webhook of this name is configured any more"
		} else if err := dv.send(ctx, hook, d); err != nil {
			d.Attempts++
			d.LastError = err.Error()
			if d.Attempts >= maxAttempts {
				d.Failed = true
				if dv.Logger != nil {
					dv.Logger.ErrorContext(ctx, "alerts: webhook delivery given up", "webhook", hook.String(), "alert", d.Alert, "attempts", d.Attempts, "error", d.LastError)
				}
			} else {
				d.NextAttempt = dv.now().Add(min(time.Second<<min(d.Attempts-1, 30), maxBackoff))
			}
		} else {
			d.Attempts++
			d.DeliveredAt, d.LastError = dv.now(), ""
			sent++
		}
		if err := dv.Store.UpdateDelivery(ctx, d); err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// send posts one delivery. Its error never holds the URL (a secret).
func (dv *Deliverer) send(ctx context.Context, hook Webhook, d store.Delivery) error {
	body, err := Body(hook.Format, d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("build request: bad webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "writ-alerts")
	req.Header.Set("Writ-Delivery", strconv.FormatInt(d.ID, 10))
	req.Header.Set("Writ-Event", "alert")
	if len(hook.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(hook.Secret, body, dv.now()))
	}
	c := dv.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return fmt.Errorf("post to %s: %v", hook.Host(), err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post to %s: status %d", hook.Host(), resp.StatusCode)
	}
	return nil
}

// Run delivers every interval until ctx ends.
func (dv *Deliverer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := dv.DeliverDue(ctx); err != nil && ctx.Err() == nil && dv.Logger != nil {
			dv.Logger.ErrorContext(ctx, "alerts: webhook deliveries", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
