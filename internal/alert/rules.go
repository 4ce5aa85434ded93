package alert

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

// Severities, most severe first.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
	SeverityInfo     = "info"
)

// Severities lists the severities, most severe first.
var Severities = []string{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo}

// SeverityRank orders severities: 0 for critical, 4 for info, -1 for an
// unknown one.
func SeverityRank(s string) int { return slices.Index(Severities, s) }

// Rule is one detection of the catalogue.
type Rule struct {
	ID          string
	Title       string
	Severity    string
	Description string
	// Fix is what a human should do.
	Fix string
}

// Rule ids.
const (
	RuleShadowAgent      = "shadow_agent"
	RuleShadowCredential = "shadow_credential"
	RuleShadowAccess     = "shadow_access"
	RuleRepeatedDenials  = "repeated_denials"
	RuleToolQuarantined  = "tool_quarantined"
	RuleRevokedUse       = "revoked_use"
	RulePolicyBypass     = "policy_bypass"
	RuleAdminAuthFailed  = "admin_auth_failures"
	RuleApprovalPending  = "approval_pending"
	RulePostureFinding   = "posture_finding"
)

// Catalogue is every detection writ has, enabled unless disabled in
// configuration (alerts.disabled).
var Catalogue = []Rule{
	{RuleShadowAgent, "Agent or MCP server without a writ identity", SeverityHigh,
		"the runtime sensor found an agent or MCP server process that no registration entry matches (discovery.agent_found, identified false)",
		"register it (writ entry create --selector ...) so it gets an identity and goes through writ, or stop it"},
	{RuleShadowCredential, "Static credential found on a host", SeverityHigh,
		"the runtime sensor found a credential in a process's environment, a credential file or an MCP client configuration (discovery.credential_found); fingerprint only",
		"move the value into writ (writ credential put), inject it through a Service, and delete it from where it was found"},
	{RuleShadowAccess, "Service reached around writ", SeverityHigh,
		"a process connected directly to the upstream of a writ Service, or holds a static credential writ could broker (discovery.shadow_access)",
		"route the process through the proxy (HTTPS_PROXY) and remove its direct network path and static credential"},
	{RuleRepeatedDenials, "Repeated denials", SeverityMedium,
		"one identity (or one source address, when unidentified) was refused at least the threshold number of times within the window",
		"read the denials (writ audit search --decision deny --spiffe-id ...): a misconfigured agent, or one probing what it may do"},
	{RuleToolQuarantined, "MCP tool quarantined (rug pull)", SeverityCritical,
		"an MCP server changed, renamed or unsigned a pinned tool's descriptor, and the gateway quarantined it (mcp.tool_quarantined)",
		"compare the descriptors (writ mcp pins), then writ mcp approve or remove the server"},
	{RuleRevokedUse, "Revoked identity, instance, task or token used", SeverityHigh,
		"a call was refused because what it presented is revoked: the holder is still trying",
		"find the process (writ lineage --instance ...), stop it, and rotate what it could have copied"},
	{RulePolicyBypass, "Policy bypass attempt", SeverityHigh,
		"a request path an upstream could read as another path (.., ;, \\, double encoding) was refused before policy",
		"find the caller (the event's spiffe_id and source) and what produced the path"},
	{RuleAdminAuthFailed, "Repeated admin authentication failures", SeverityHigh,
		"the admin API refused credentials at least the threshold number of times within the window from one source",
		"check who is calling the admin API from that address; rotate the admin token if it may have leaked"},
	{RulePostureFinding, "Posture finding of high severity", SeverityHigh,
		"posture found a high or critical finding not seen before (posture.finding, recorded after each discovery scan); the alert takes the finding's severity",
		"read it with writ posture (its evidence, blast radius and fix) and apply the fix"},
	{RuleApprovalPending, "Approval waiting for a human", SeverityInfo,
		"a task or call waits for a human's approval (approval.requested)",
		"writ approval approve ID, or writ approval deny ID"},
}

// RuleByID returns the catalogue's rule id.
func RuleByID(id string) (Rule, bool) {
	i := slices.IndexFunc(Catalogue, func(r Rule) bool { return r.ID == id })
	if i < 0 {
		return Rule{}, false
	}
	return Catalogue[i], true
}

// Config configures the engine's rules. The zero value enables every rule
// with the default thresholds.
type Config struct {
	// Disabled lists rule ids not to evaluate.
	Disabled []string
	// DenialThreshold refusals of one caller within DenialWindow raise
	// repeated_denials (defaults 5 and 5m); AuthFailThreshold and
	// AuthFailWindow the same for admin_auth_failures (5, 5m).
	DenialThreshold   int
	DenialWindow      time.Duration
	AuthFailThreshold int
	AuthFailWindow    time.Duration
}

// Check returns an error naming the first unusable field.
func (c *Config) Check() error {
	for _, id := range c.Disabled {
		if _, ok := RuleByID(id); !ok {
			ids := make([]string, len(Catalogue))
			for i, r := range Catalogue {
				ids[i] = r.ID
			}
			return fmt.Errorf("alerts.disabled: %q is not a rule; rules are %s", id, strings.Join(ids, ", "))
		}
	}
	switch {
	case c.DenialThreshold < 0 || c.DenialThreshold > 1_000_000:
		return fmt.Errorf("alerts.denial_threshold: %d is out of range 1 to 1000000", c.DenialThreshold)
	case c.AuthFailThreshold < 0 || c.AuthFailThreshold > 1_000_000:
		return fmt.Errorf("alerts.auth_fail_threshold: %d is out of range 1 to 1000000", c.AuthFailThreshold)
	case c.DenialWindow < 0 || c.DenialWindow > 24*time.Hour:
		return fmt.Errorf("alerts.denial_window: %v is out of range 1s to 24h", c.DenialWindow)
	case c.AuthFailWindow < 0 || c.AuthFailWindow > 24*time.Hour:
		return fmt.Errorf("alerts.auth_fail_window: %v is out of range 1s to 24h", c.AuthFailWindow)
	}
	return nil
}

func (c *Config) defaults() {
	if c.DenialThreshold == 0 {
		c.DenialThreshold = 5
	}
	if c.DenialWindow == 0 {
		c.DenialWindow = 5 * time.Minute
	}
	if c.AuthFailThreshold == 0 {
		c.AuthFailThreshold = 5
	}
	if c.AuthFailWindow == 0 {
		c.AuthFailWindow = 5 * time.Minute
	}
}

// Enabled returns the ids of the rules c evaluates, in catalogue order.
func (c *Config) Enabled() []string {
	var out []string
	for _, r := range Catalogue {
		if !slices.Contains(c.Disabled, r.ID) {
			out = append(out, r.ID)
		}
	}
	return out
}

// windows is the engine's carried state: per rule and key, the times of
// the recent events that count towards a threshold (at most threshold of
// them, within the window).
type windows map[string][]time.Time

// hit records an event at t for key and reports whether threshold events
// fall within window of it; the window then starts afresh.
func (w windows) hit(key string, t time.Time, threshold int, window time.Duration) bool {
	ts := w[key]
	keep := ts[:0]
	for _, x := range ts {
		if t.Sub(x) < window {
			keep = append(keep, x)
		}
	}
	keep = append(keep, t)
	if len(keep) >= threshold {
		delete(w, key)
		return true
	}
	w[key] = keep
	return false
}

// state returns what to carry to the next batch, dropping what is older
// than the windows (and rule uses older than ruleUseKept) before last.
func (ev *evaluator) state(last time.Time) []byte {
	if !last.IsZero() {
		ev.w.prune(last, max(ev.cfg.DenialWindow, ev.cfg.AuthFailWindow))
		for k, u := range ev.rules {
			if last.Sub(u.Last) > ruleUseKept {
				delete(ev.rules, k)
			}
		}
	}
	rules := make(map[string]RuleUse, len(ev.rules))
	for k, u := range ev.rules {
		rules[k.policy+"/"+k.rule] = u
	}
	b, _ := json.Marshal(carried{Windows: ev.w, Rules: rules})
	return b
}

// prune drops keys whose newest event is older than window before now,
// so the state does not grow with the number of callers ever seen.
func (w windows) prune(now time.Time, window time.Duration) {
	for k, ts := range w {
		if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= window {
			delete(w, k)
		}
	}
}

// carried is what the engine carries from one batch to the next, stored
// with its cursor: the counting windows, and when each policy rule last
// decided a request (posture's unused_grant check reads it: one pass
// over the log serves both).
type carried struct {
	Windows windows            `json:"windows"`
	Rules   map[string]RuleUse `json:"rules,omitempty"`
}

// RuleUse says when a policy rule last decided a request, and how many
// it decided since the log began.
type RuleUse struct {
	Last  time.Time `json:"last"`
	Count int64     `json:"count"`
}

// RuleKey names a rule across its policy's versions: "NAME/RULE" for an
// event's policy "NAME@VERSION" and rule RULE.
func RuleKey(policy, rule string) string {
	name, _, _ := strings.Cut(policy, "@")
	return name + "/" + rule
}

// ruleUseKept bounds how long the use of a rule is remembered (a rule of
// a deleted policy is dropped after it).
const ruleUseKept = 400 * 24 * time.Hour

// RuleUsage returns the rule usage in an engine's stored state (the
// State of cursor store.CursorAlerts); empty when there is none.
func RuleUsage(state []byte) map[string]RuleUse {
	var c carried
	if json.Unmarshal(state, &c) != nil || c.Rules == nil {
		return map[string]RuleUse{}
	}
	return c.Rules
}

// decodeCarried reads a stored state. The windows are a convenience:
// a state that cannot be read (or one of an older release) starts them
// afresh, losing at most one window of counting.
func decodeCarried(state []byte) carried {
	var c carried
	if len(state) > 0 && json.Unmarshal(state, &c) != nil {
		c = carried{}
	}
	return c
}

// evaluator applies the enabled rules to events.
type evaluator struct {
	cfg     Config
	enabled map[string]bool
	w       windows
	rules   map[ruleRef]RuleUse
}

// ruleRef is a rule across its policy's versions, as a map key that
// costs no allocation to look up.
type ruleRef struct{ policy, rule string }

func newEvaluator(cfg Config, state carried) *evaluator {
	cfg.defaults()
	ev := &evaluator{cfg: cfg, enabled: map[string]bool{}, w: state.Windows, rules: make(map[ruleRef]RuleUse, len(state.Rules))}
	if ev.w == nil {
		ev.w = windows{}
	}
	for k, u := range state.Rules {
		p, r, _ := strings.Cut(k, "/")
		ev.rules[ruleRef{p, r}] = u
	}
	for _, id := range cfg.Enabled() {
		ev.enabled[id] = true
	}
	return ev
}

// raise builds an alert of rule about subject from event e at idx.
func raise(rule, key, subject string, idx int64, e *audit.Event, summary string) store.Alert {
	r, _ := RuleByID(rule)
	return store.Alert{Rule: rule, DedupKey: rule + "/" + key, Severity: r.Severity, Title: r.Title, Subject: subject, Count: 1,
		FirstEvidence: e.Time, LastEvidence: e.Time,
		Evidence: []store.Evidence{{Event: e.ID, Index: idx, Time: e.Time, Summary: summary}}}
}

// eval returns the alerts event e at idx raises.
func (ev *evaluator) eval(idx int64, e *audit.Event) []store.Alert {
	var out []store.Alert
	on := func(rule string) bool { return ev.enabled[rule] }
	d := e.Details
	if e.Policy != "" && e.Rule != "" {
		name, _, _ := strings.Cut(e.Policy, "@")
		k := ruleRef{name, e.Rule}
		u := ev.rules[k]
		u.Count++
		if e.Time.After(u.Last) {
			u.Last = e.Time
		}
		ev.rules[k] = u
	}
	switch e.Type {
	case audit.DiscoveryAgentFound:
		if on(RuleShadowAgent) && d["identified"] == "false" {
			out = append(out, raise(RuleShadowAgent, d["key"], e.Target, idx, e,
				fmt.Sprintf("%s on %s (pid %s, %s), evidence: %s", e.Target, e.Node, d["pid"], d["exe"], d["evidence"])))
		}
	case audit.DiscoveryCredentialFound:
		if on(RuleShadowCredential) {
			where := d["path"]
			if where == "" {
				where = d["source"]
			}
			out = append(out, raise(RuleShadowCredential, d["key"], d["name"], idx, e,
				fmt.Sprintf("%s credential %s in %s on %s, fingerprint %s", d["kind"], d["name"], where, e.Node, d["fingerprint"])))
		}
	case audit.DiscoveryShadowAccess:
		if on(RuleShadowAccess) {
			out = append(out, raise(RuleShadowAccess, d["key"], e.Target, idx, e, e.Reason))
		}
	case audit.MCPToolQuarantined:
		if on(RuleToolQuarantined) {
			subject := e.Target + " tool " + d["tool"]
			out = append(out, raise(RuleToolQuarantined, e.Target+"/"+d["tool"]+"/"+d["digest"], subject, idx, e, e.Reason))
		}
	case audit.PostureFinding:
		if on(RulePostureFinding) && (d["severity"] == SeverityCritical || d["severity"] == SeverityHigh) {
			a := raise(RulePostureFinding, e.Target, e.Target, idx, e, fmt.Sprintf("%s: %s; fix: %s", d["check"], d["title"], d["fix"]))
			a.Severity = d["severity"]
			out = append(out, a)
		}
	case audit.ApprovalRequested:
		if on(RuleApprovalPending) {
			out = append(out, raise(RuleApprovalPending, d["approval"], d["approval"], idx, e,
				fmt.Sprintf("%s asks for %s %s (%s); writ approval approve %s, or writ approval deny %s",
					e.SpiffeID, e.Action, e.Target, e.Reason, d["approval"], d["approval"])))
		}
	case audit.AdminAuthFailed:
		if on(RuleAdminAuthFailed) {
			src := sourceHost(e.Source)
			if ev.w.hit(RuleAdminAuthFailed+"/"+src, e.Time, ev.cfg.AuthFailThreshold, ev.cfg.AuthFailWindow) {
				out = append(out, raise(RuleAdminAuthFailed, src, src, idx, e,
					fmt.Sprintf("%d refused admin credentials from %s within %v", ev.cfg.AuthFailThreshold, src, ev.cfg.AuthFailWindow)))
			}
		}
	case audit.AccessDenied, audit.TokenDenied:
		caller := e.SpiffeID
		if caller == "" {
			caller = "unidentified@" + sourceHost(e.Source)
		}
		if on(RuleRevokedUse) && strings.Contains(e.Reason, " is revoked") {
			out = append(out, raise(RuleRevokedUse, caller+"/"+e.Instance, caller, idx, e,
				fmt.Sprintf("%s (instance %s) refused: %s", caller, e.Instance, e.Reason)))
		}
		if on(RulePolicyBypass) && strings.Contains(e.Reason, "could read it as another path") {
			out = append(out, raise(RulePolicyBypass, caller, caller, idx, e, fmt.Sprintf("%s %s: %s", caller, e.Action, e.Reason)))
		}
		if on(RuleRepeatedDenials) && ev.w.hit(RuleRepeatedDenials+"/"+caller, e.Time, ev.cfg.DenialThreshold, ev.cfg.DenialWindow) {
			out = append(out, raise(RuleRepeatedDenials, caller, caller, idx, e,
				fmt.Sprintf("%d refusals of %s within %v, the last: %s %s: %s", ev.cfg.DenialThreshold, caller, ev.cfg.DenialWindow, e.Action, e.Target, e.Reason)))
		}
	}
	return out
}

// sourceHost is the host part of an address, so that one caller's
// ephemeral ports count together.
func sourceHost(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		if _, err := strconv.Atoi(addr[i+1:]); err == nil {
			return strings.Trim(addr[:i], "[]")
		}
	}
	if addr == "" {
		return "unknown"
	}
	return addr
}
