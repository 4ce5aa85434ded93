// Package posture turns what writ knows — registration entries, stored
// AccessPolicies, the runtime sensor's inventory, the lineage graph and
// facts about the deployment — into findings: each with an id, a
// severity, the evidence, the affected nodes, a blast radius (what the
// principal or credential can reach) and the fix, ranked by severity and
// blast radius. It is pure: [Evaluate] reads its [Inputs] and returns
// findings; the server gathers the inputs (`writ posture`, /v1/posture).
// See docs/posture.md.
package posture

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/store"
)

// Severities, most severe first.
var Severities = []string{"critical", "high", "medium", "low"}

// Finding is one posture finding.
type Finding struct {
	// ID is stable for the same check and subject: CHECK/SUBJECT.
	ID       string
	Check    string
	Severity string
	Title    string
	Evidence []string
	// Nodes are the lineage graph's node ids the finding is about.
	Nodes []string
	// Reaches are the services and MCP servers the principal or
	// credential can reach (through writ by lineage, or directly),
	// CrownJewels those of them that are crown jewels.
	Reaches     []string
	CrownJewels []string
	Fix         string
}

// BlastRadius is the ranking score: reachable targets, crown jewels
// weighing ten.
func (f *Finding) BlastRadius() int { return len(f.Reaches) + 10*len(f.CrownJewels) }

// Inputs is everything posture reads.
type Inputs struct {
	Now      time.Time
	Entries  []store.Entry
	Policies []store.Resource // AccessPolicy documents as stored
	// Inventory is what the runtime sensor recorded.
	Inventory []store.InventoryItem
	// Graph is the lineage graph with the inventory joined (may be nil).
	Graph *graph.Graph
	// HardwareKeys says whether the CA's keys are hardware-backed;
	// KeyProvider names the provider ("sealed-file").
	HardwareKeys bool
	KeyProvider  string
	// Witnesses is the number of audit witnesses configured.
	Witnesses int
	// MaxX509TTL and MaxJWTTTL are the longest TTLs an entry may have
	// before it is a finding (defaults 24h and 1h).
	MaxX509TTL, MaxJWTTTL time.Duration
	// RuleUse is when each policy rule last decided a request, keyed
	// "POLICY/RULE" (the policy's name without its version; the alert
	// engine keeps it: alert.RuleUsage). Nil when unknown: the
	// unused_grant check is then skipped.
	RuleUse map[string]time.Time
	// UnusedAfter is how long an allow or escalate rule of a policy in
	// force at least that long may decide nothing before it is an
	// unused grant (default DefaultUnusedAfter).
	UnusedAfter time.Duration
}

// DefaultUnusedAfter is the default window of the unused_grant check.
const DefaultUnusedAfter = 30 * 24 * time.Hour

// Checks lists the checks, in the order they run.
var Checks = []string{"agent_without_identity", "static_credential", "static_secret", "direct_access", "identity_without_policy", "wildcard_subject",
	"policy_in_observe_mode", "unused_grant", "unattested_instance", "entry_without_digest", "long_ttl", "identity_without_owner",
	"ca_keys_not_hardware", "audit_not_witnessed"}

// Evaluate returns the findings of in, most severe and widest first.
func Evaluate(in Inputs) []Finding {
	if in.MaxX509TTL == 0 {
		in.MaxX509TTL = 24 * time.Hour
	}
	if in.MaxJWTTTL == 0 {
		in.MaxJWTTTL = time.Hour
	}
	if in.UnusedAfter <= 0 {
		in.UnusedAfter = DefaultUnusedAfter
	}
	reach := newReach(in.Graph)
	var out []Finding
	add := func(f Finding) {
		f.ID = f.Check + "/" + f.ID
		if f.Reaches == nil {
			f.Reaches = []string{}
		}
		out = append(out, f)
	}

	// The runtime sensor's inventory, and the findings of `writ scan
	// --report` (credentials on a "scan:TARGET" host); only a target's
	// latest scan counts.
	latestScan := map[string]time.Time{}
	for _, it := range in.Inventory {
		if it.Kind == store.InventoryCredential && strings.HasPrefix(it.Host, ScanHostPrefix) && it.LastSeen.After(latestScan[it.Host]) {
			latestScan[it.Host] = it.LastSeen
		}
	}
	for _, it := range in.Inventory {
		if it.Kind == store.InventoryCredential && strings.HasPrefix(it.Host, ScanHostPrefix) {
			if it.LastSeen.Equal(latestScan[it.Host]) {
				scanFinding(it, reach, add)
			}
			continue
		}
		switch it.Kind {
		case store.InventoryAgent, store.InventoryMCPServer:
			if it.Identity != "" {
				continue
			}
			node := graph.NodeID(graph.KindProcess, it.Key)
			r, cj := reach.from(node)
			add(Finding{ID: it.Key, Check: "agent_without_identity", Severity: "high", Nodes: []string{node}, Reaches: r, CrownJewels: cj,
				Title:    fmt.Sprintf("%s %q on %s runs without a writ identity", strings.ReplaceAll(it.Kind, "_", " "), it.Name, it.Host),
				Evidence: []string{fmt.Sprintf("discovered %s, last seen %s", it.FirstSeen.Format(time.RFC3339), it.LastSeen.Format(time.RFC3339))},
				Fix:      "register it (writ entry create --spiffe-id ... --selector unix:sha256:...) and send its traffic through the proxy, or stop it"})
		case store.InventoryCredential:
			if !it.Shadow {
				continue
			}
			var c struct {
				ID, Kind, Source, Path, Fingerprint string
				PIDs                                []int
			}
			json.Unmarshal(it.Data, &c)
			node := graph.NodeID(graph.KindCredential, graph.DiscoveredCredentialName(it.Host, c.ID))
			r, cj := reach.holders(node)
			sev := "medium"
			if len(c.PIDs) > 0 {
				sev = "high"
			}
			where := c.Path
			if where == "" {
				where = "the environment of pid " + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(c.PIDs)), ","), "[]")
			}
			add(Finding{ID: it.Host + "/" + c.ID, Check: "static_credential", Severity: sev, Nodes: []string{node}, Reaches: r, CrownJewels: cj,
				Title:    fmt.Sprintf("static %s credential %s in %s on %s", c.Kind, it.Name, where, it.Host),
				Evidence: []string{"fingerprint " + c.Fingerprint + " (keyed; never the value)", "source " + c.Source},
				Fix:      "writ credential put NAME < the value, inject it through a Service (writ scan --fix-plan writes the documents), then delete it here and rotate it"})
		}
	}
	if in.Graph != nil {
		for _, e := range in.Graph.Edges {
			if e.Kind != graph.EdgeDirect {
				continue
			}
			sev, cj := "high", []string(nil)
			if reach.crown[e.To] {
				sev, cj = "critical", []string{e.To}
			}
			add(Finding{ID: strings.TrimPrefix(e.From, "process:") + "->" + strings.TrimPrefix(e.To, "service:"), Check: "direct_access",
				Severity: sev, Nodes: []string{e.From, e.To}, Reaches: []string{e.To}, CrownJewels: cj,
				Title:    fmt.Sprintf("%s reaches %s around writ", reach.label(e.From), e.To),
				Evidence: []string{fmt.Sprintf("direct connection to the upstream seen %s – %s", fmtTime(e.FirstSeen), fmtTime(e.LastSeen))},
				Fix:      "set HTTPS_PROXY to writ's proxy for the process, and block its direct route to the upstream"})
		}
		unattested(in.Graph, reach, add)
	}

	// Entries and policies.
	type subject struct {
		policy, pattern string
		glob            policy.Glob
	}
	var subjects []subject
	for _, p := range in.Policies {
		var spec policy.Spec
		if json.Unmarshal(p.Spec, &spec) != nil {
			continue
		}
		if spec.Mode == policy.ModeObserve {
			ev := []string{"spec.mode: observe: its decisions are recorded as would_deny/would_hold, not enforced"}
			if len(spec.Replaces) > 0 {
				ev = append(ev, "stands in for "+strings.Join(spec.Replaces, ", ")+", which stay enforcing until promote")
			}
			add(Finding{ID: p.Name, Check: "policy_in_observe_mode", Severity: "medium", Nodes: []string{},
				Title:    fmt.Sprintf("AccessPolicy %s is in observe mode: it does not enforce", p.Name),
				Evidence: ev,
				Fix:      "writ policy observe " + p.Name + " shows what it would change; replay it (writ policy replay), then writ policy promote " + p.Name + " --expect-digest DIGEST"})
		}
		if spec.Mode != policy.ModeObserve && in.RuleUse != nil {
			unusedGrants(in, p, &spec, reach, add)
		}
		for _, s := range spec.Subjects {
			if !strings.HasPrefix(s, "spiffe://") {
				continue
			}
			g, err := policy.ParseGlob(s)
			if err != nil {
				continue
			}
			subjects = append(subjects, subject{p.Name, s, g})
			td, rest, _ := strings.Cut(strings.TrimPrefix(s, "spiffe://"), "/")
			if rest == "" || rest == "*" || rest == "**" || strings.HasPrefix(rest, "**") {
				add(Finding{ID: p.Name + "/" + s, Check: "wildcard_subject", Severity: "medium", Nodes: []string{},
					Title:    fmt.Sprintf("AccessPolicy %s applies to every identity of %s (%s)", p.Name, td, s),
					Evidence: []string{"subject " + s},
					Fix:      "name the identities (spiffe://" + td + "/agent/NAME) or a narrow path; least agency starts with who"})
			}
		}
	}
	for _, e := range in.Entries {
		node := graph.NodeID(graph.KindIdentity, e.SpiffeID)
		r, cj := reach.from(node)
		var policies []string
		for _, s := range subjects {
			if s.glob.Match(e.SpiffeID) && !slices.Contains(policies, s.policy) {
				policies = append(policies, s.policy)
			}
		}
		if len(policies) == 0 {
			add(Finding{ID: e.SpiffeID, Check: "identity_without_policy", Severity: "medium", Nodes: []string{node}, Reaches: r, CrownJewels: cj,
				Title:    fmt.Sprintf("identity %s (entry %s) is named by no AccessPolicy", e.SpiffeID, e.Name),
				Evidence: []string{"no spiffe:// subject of the stored policies matches it; every call it makes is denied by default"},
				Fix:      "write its least-agency policy (writ policy learn --identity " + e.SpiffeID + " proposes one from its traffic), or delete the entry"})
		}
		hasDigest := slices.ContainsFunc(e.Selectors, func(s store.Selector) bool { return s.Type == "unix" && strings.HasPrefix(s.Value, "sha256:") })
		if !hasDigest {
			add(Finding{ID: e.SpiffeID, Check: "entry_without_digest", Severity: "low", Nodes: []string{node}, Reaches: r, CrownJewels: cj,
				Title:    fmt.Sprintf("entry %s identifies %s without the executable's digest", e.Name, e.SpiffeID),
				Evidence: []string{"selectors " + selectors(e.Selectors)},
				Fix:      "add --selector unix:sha256:DIGEST so another program running as the same user is not given the identity"})
		}
		if e.X509TTL > in.MaxX509TTL || e.JWTTTL > in.MaxJWTTTL {
			add(Finding{ID: e.SpiffeID, Check: "long_ttl", Severity: "low", Nodes: []string{node}, Reaches: r, CrownJewels: cj,
				Title:    fmt.Sprintf("entry %s issues long-lived credentials", e.Name),
				Evidence: []string{fmt.Sprintf("x509_ttl %v (at most %v), jwt_ttl %v (at most %v)", e.X509TTL, in.MaxX509TTL, e.JWTTTL, in.MaxJWTTTL)},
				Fix:      "shorten the TTLs; workloads rotate at half-life"})
		}
		if e.Labels["owner"] == "" && e.Labels["team"] == "" {
			add(Finding{ID: e.SpiffeID, Check: "identity_without_owner", Severity: "low", Nodes: []string{node}, Reaches: r, CrownJewels: cj,
				Title:    fmt.Sprintf("identity %s has no owner", e.SpiffeID),
				Evidence: []string{"no owner or team label on entry " + e.Name},
				Fix:      "label the Identity with owner: (a person or team) so someone answers for it"})
		}
	}

	// The deployment.
	if !in.HardwareKeys {
		add(Finding{ID: "ca", Check: "ca_keys_not_hardware", Severity: "medium", Nodes: []string{},
			Title:    "the CA's signing keys are not hardware-backed",
			Evidence: []string{"key provider " + cmp.Or(in.KeyProvider, "sealed-file") + ": keys are sealed on disk under the KEK"},
			Fix:      "use a PKCS#11 (HSM) or TPM key provider when it is available (the Advanced tier asks for it)"})
	}
	if in.Witnesses == 0 {
		add(Finding{ID: "audit", Check: "audit_not_witnessed", Severity: "medium", Nodes: []string{},
			Title:    "audit checkpoints are not witnessed",
			Evidence: []string{"audit.witnesses is empty: a rolled-back log is detected only against checkpoints this host kept"},
			Fix:      "add a witness (audit.witnesses: file, URL or command) so checkpoints are cosigned elsewhere"})
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(slices.Index(Severities, a.Severity), slices.Index(Severities, b.Severity)),
			cmp.Compare(b.BlastRadius(), a.BlastRadius()), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return t.Format(time.RFC3339)
}

func selectors(ss []store.Selector) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.String())
	}
	return strings.Join(out, ", ")
}

// reach answers what a node can reach in the lineage graph.
type reach struct {
	out    map[string][]string
	in     map[string][]string
	crown  map[string]bool
	labels map[string]string
}

func newReach(g *graph.Graph) *reach {
	r := &reach{out: map[string][]string{}, in: map[string][]string{}, crown: map[string]bool{}, labels: map[string]string{}}
	if g == nil {
		return r
	}
	for _, n := range g.Nodes {
		r.crown[n.ID] = n.CrownJewel
		r.labels[n.ID] = n.Kind + " " + n.Label
	}
	for _, e := range g.Edges {
		r.out[e.From] = append(r.out[e.From], e.To)
		r.in[e.To] = append(r.in[e.To], e.From)
	}
	return r
}

func (r *reach) label(id string) string {
	if l, ok := r.labels[id]; ok {
		return l
	}
	return id
}

// from returns the services and MCP servers reachable from node, and the
// crown jewels among them.
func (r *reach) from(node string) (targets, crown []string) {
	seen := map[string]bool{node: true}
	queue := []string{node}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range r.out[n] {
			if seen[m] {
				continue
			}
			seen[m] = true
			if strings.HasPrefix(m, graph.KindService+":") || strings.HasPrefix(m, graph.KindMCPServer+":") {
				targets = append(targets, m)
				if r.crown[m] {
					crown = append(crown, m)
				}
				continue // a service's credentials are not the principal's reach
			}
			queue = append(queue, m)
		}
	}
	slices.Sort(targets)
	slices.Sort(crown)
	return targets, crown
}

// holders returns what the holders of credential node reach.
func (r *reach) holders(node string) (targets, crown []string) {
	for _, h := range r.in[node] {
		t, c := r.from(h)
		targets = append(targets, t...)
		crown = append(crown, c...)
	}
	slices.Sort(targets)
	slices.Sort(crown)
	return slices.Compact(targets), slices.Compact(crown)
}

// unusedGrants adds an unused_grant finding for each allow or escalate
// rule of policy p (in force at least in.UnusedAfter) that decided no
// request within in.UnusedAfter: a grant nobody uses is reach an
// attacker gets for free.
func unusedGrants(in Inputs, p store.Resource, spec *policy.Spec, reach *reach, add func(Finding)) {
	if p.UpdatedAt.IsZero() || in.Now.Sub(p.UpdatedAt) < in.UnusedAfter {
		return // not in force long enough to tell
	}
	window := days(in.UnusedAfter)
	for _, r := range spec.Rules {
		if r.Effect != "allow" && r.Effect != "escalate" || r.Name == "" {
			continue
		}
		last := in.RuleUse[p.Name+"/"+r.Name]
		if !last.IsZero() && in.Now.Sub(last) < in.UnusedAfter {
			continue
		}
		var targets, crown []string
		for _, t := range r.Targets {
			id := ""
			switch {
			case t.HTTP != nil && t.HTTP.Service != "":
				id = graph.NodeID(graph.KindService, t.HTTP.Service)
			case t.MCP != nil && t.MCP.Server != "":
				id = graph.NodeID(graph.KindMCPServer, t.MCP.Server)
			}
			if id != "" && !slices.Contains(targets, id) {
				targets = append(targets, id)
				if reach.crown[id] {
					crown = append(crown, id)
				}
			}
		}
		used := "it has decided no request since the log began"
		if !last.IsZero() {
			used = "it last decided a request at " + last.UTC().Format(time.RFC3339)
		}
		add(Finding{ID: p.Name + "/" + r.Name, Check: "unused_grant", Severity: "low", Nodes: targets, Reaches: targets, CrownJewels: crown,
			Title: fmt.Sprintf("rule %s (%s) of AccessPolicy %s decided no request in %s", r.Name, r.Effect, p.Name, window),
			Evidence: []string{fmt.Sprintf("AccessPolicy %s version %d in force since %s", p.Name, p.Version, p.UpdatedAt.UTC().Format(time.RFC3339)),
				used, "subjects " + strings.Join(spec.Subjects, ", ")},
			Fix: "remove the rule or narrow it (least agency: an unused grant is reach for free); writ policy learn --identity ID shows what its subjects use"})
	}
}

// days says d in days when it is a whole number of them.
func days(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// unattested adds an unattested_instance finding for each identity whose
// accesses the lineage graph holds without an attested instance (a
// bearer token or certificate presented with no instance behind it): the
// Foundation tier asks that every access name the running instance that
// made it.
func unattested(g *graph.Graph, reach *reach, add func(Finding)) {
	type sum struct {
		n       int64
		targets []string
		first   time.Time
		last    time.Time
	}
	by := map[string]*sum{}
	var order []string
	for _, e := range g.Edges {
		if e.Kind != graph.EdgeReached || !strings.HasPrefix(e.From, graph.KindIdentity+":") || e.From == graph.NodeID(graph.KindIdentity, graph.Unidentified) {
			continue
		}
		s := by[e.From]
		if s == nil {
			s = &sum{first: e.FirstSeen}
			by[e.From] = s
			order = append(order, e.From)
		}
		s.n += e.Allowed + e.Denied
		s.targets = append(s.targets, e.To)
		if !e.FirstSeen.IsZero() && (s.first.IsZero() || e.FirstSeen.Before(s.first)) {
			s.first = e.FirstSeen
		}
		if e.LastSeen.After(s.last) {
			s.last = e.LastSeen
		}
	}
	for _, id := range order {
		s := by[id]
		slices.Sort(s.targets)
		var crown []string
		for _, t := range s.targets {
			if reach.crown[t] {
				crown = append(crown, t)
			}
		}
		spiffeID := strings.TrimPrefix(id, graph.KindIdentity+":")
		add(Finding{ID: spiffeID, Check: "unattested_instance", Severity: "medium", Nodes: append([]string{id}, s.targets...),
			Reaches: s.targets, CrownJewels: crown,
			Title: fmt.Sprintf("identity %s made %d accesses no attested instance is named for", spiffeID, s.n),
			Evidence: []string{fmt.Sprintf("%d accesses to %s between %s and %s without an instance (a token or certificate presented with no attested process behind it)",
				s.n, strings.Join(s.targets, ", "), fmtTime(s.first), fmtTime(s.last))},
			Fix: "let writ attest the caller: fetch the SVID from the Workload API on its host or call through the local proxy (both name the instance), and bind its task tokens to the instance (writ task open --bind-instance)"})
	}
}

// ScanHostPrefix starts the inventory host of the findings `writ scan
// --report` recorded: "scan:" and the target scanned.
const ScanHostPrefix = "scan:"

// scanFinding adds a static_secret finding for a secret `writ scan
// --report` found in code or history: it reaches the services its blast
// radius found it opens (the lineage graph's opens edges).
func scanFinding(it store.InventoryItem, reach *reach, add func(Finding)) {
	var c struct {
		ID, Kind, Path, Fingerprint, Severity, Commit string
		AtHEAD                                        *bool `json:"at_head"`
		Blast                                         struct {
			Score   int
			Via     []string
			Holders []string
			UsedBy  []string `json:"used_by"`
		} `json:"blast_radius"`
		Finding struct {
			Validation *struct{ State, Provider, Reason string } `json:"validation"`
		} `json:"finding"`
	}
	json.Unmarshal(it.Data, &c)
	node := graph.NodeID(graph.KindCredential, graph.DiscoveredCredentialName(it.Host, c.ID))
	r, cj := reach.from(node)
	sev := c.Severity
	switch {
	case len(cj) > 0:
		sev = "critical"
	case len(r) > 0 || len(c.Blast.Holders) > 0:
		sev = "high"
	case !slices.Contains(Severities, sev):
		sev = "medium"
	}
	where := strings.TrimPrefix(it.Host, ScanHostPrefix) + " " + c.Path
	ev := []string{"fingerprint " + c.Fingerprint + " (keyed; never the value)", fmt.Sprintf("blast radius score %d (docs/scan.md#blast-radius)", c.Blast.Score)}
	if c.AtHEAD != nil && !*c.AtHEAD {
		ev = append(ev, "only in history (first written by commit "+c.Commit+"): still valid until rotated")
	}
	if v := c.Finding.Validation; v != nil {
		ev = append(ev, fmt.Sprintf("live validation (writ scan --validate): %s, %s", v.State, v.Reason))
	}
	ev = append(ev, c.Blast.Via...)
	if len(c.Blast.UsedBy) > 0 {
		ev = append(ev, fmt.Sprintf("the services it opens are used by %d identities: %s", len(c.Blast.UsedBy), strings.Join(c.Blast.UsedBy, ", ")))
	}
	if len(c.Blast.Holders) > 0 {
		ev = append(ev, "held by "+strings.Join(c.Blast.Holders, ", "))
	}
	add(Finding{ID: it.Host + "/" + c.ID, Check: "static_secret", Severity: sev, Nodes: []string{node}, Reaches: r, CrownJewels: cj,
		Title:    fmt.Sprintf("static %s secret in %s", c.Kind, where),
		Evidence: ev,
		Fix:      "writ scan --fix-plan writes the writ credential put command, the Service and the AccessPolicy that replace it with brokered injection; delete it from the code and rotate it"})
}
