package scan

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writ-dev/writ/internal/secrets"
)

// Blast radius (#15): what a found secret opens and who uses it, joined
// from what a writ deployment knows, and one score to rank findings by.
//
// A finding opens a Service when
//   - its fingerprint equals the fingerprint of a brokered credential's
//     value (under the deployment key, [secrets.DeploymentKey]) that the
//     Service injects, or
//   - a host name written next to it (within [hostWindow] lines, see
//     [Finding.Hosts]) is the host of the Service's upstream.
//
// Its holders are the processes the runtime sensor found holding a
// credential with the same fingerprint (in their environment or a file
// they read), and the credentials themselves; it is used by the
// identities the lineage graph saw reaching a Service it opens.
//
// The score (documented in docs/scan.md#blast-radius):
//
//	reach = 1 + 4×services opened + 10×crown jewels among them
//	          + 2×identities using them + 2×holders
//	score = severity × reach × present × valid + age
//
// severity is 3 (high), 2 (medium) or 1 (low); present is 2 when the
// secret is still at HEAD (or in the scanned tree) and 1 when only history
// holds it (it stays valid until rotated, so it still counts); valid is 2
// when live validation ([Validator], --validate) found the secret still
// valid, 1/2 when the provider refused it (rounded down, at least 1), 1
// when unknown or not validated; age adds 1 per 30 days since the first
// commit that wrote it, at most 12.

// Knowledge is what a deployment knows that findings are joined with. Every
// fingerprint is under the deployment key; no value is ever held.
type Knowledge struct {
	// Brokered maps a fingerprint to the broker credentials whose value
	// has it.
	Brokered map[string][]string
	// Services are the deployment's Services.
	Services []ServiceRef
	// Discovered maps a fingerprint to the discovered credentials with it.
	Discovered map[string][]DiscoveredRef
	// UsedBy maps a Service name to the identities that reached it.
	UsedBy map[string][]string
	// CrownJewels are the Services marked as crown jewels.
	CrownJewels map[string]bool
	// Now dates findings' age.
	Now time.Time
}

// ServiceRef is a Service: its name, the host of its upstream and the
// broker credential it injects ("" for none).
type ServiceRef struct{ Name, Host, Credential string }

// DiscoveredRef is a credential the runtime sensor found ("HOST/ID") and
// the processes holding it (their identity, or process name when they
// have none).
type DiscoveredRef struct {
	Credential string
	Holders    []string
}

// Blast is a finding's blast radius.
type Blast struct {
	Score int `json:"score"`
	// Opens are the Services it opens, CrownJewels those of them that are
	// crown jewels, Via how each join was made.
	Opens       []string `json:"opens"`
	CrownJewels []string `json:"crown_jewels,omitempty"`
	Via         []string `json:"via"`
	// Discovered are the credentials the sensor found with its
	// fingerprint; Holders the processes holding them.
	Discovered []string `json:"discovered,omitempty"`
	Holders    []string `json:"holders"`
	// UsedBy are the identities that reached a Service it opens.
	UsedBy []string `json:"used_by"`
	// Present is whether HEAD (or the scanned tree) still holds it.
	Present bool `json:"present"`
	AgeDays int  `json:"age_days,omitempty"`
}

// Ranked is a finding with its blast radius.
type Ranked struct {
	Finding
	Blast Blast `json:"blast_radius"`
}

// Radius computes f's blast radius from k.
func Radius(f *Finding, k *Knowledge) Blast {
	b := Blast{Opens: []string{}, Via: []string{}, Holders: []string{}, UsedBy: []string{}, Present: f.AtHEAD == nil || *f.AtHEAD}
	open := func(svc, via string) {
		if !slices.Contains(b.Opens, svc) {
			b.Opens = append(b.Opens, svc)
		}
		b.Via = append(b.Via, via)
	}
	for _, cred := range k.Brokered[f.Fingerprint] {
		injected := false
		for _, s := range k.Services {
			if s.Credential == cred {
				open(s.Name, fmt.Sprintf("fingerprint matches broker credential %s, injected by Service %s", cred, s.Name))
				injected = true
			}
		}
		if !injected {
			b.Via = append(b.Via, "fingerprint matches broker credential "+cred+" (no Service injects it)")
		}
	}
	for _, h := range f.Hosts {
		for _, s := range k.Services {
			if s.Host != "" && strings.EqualFold(s.Host, h) {
				open(s.Name, fmt.Sprintf("host %s next to it is Service %s's upstream", h, s.Name))
			}
		}
	}
	for _, d := range k.Discovered[f.Fingerprint] {
		b.Discovered = append(b.Discovered, d.Credential)
		b.Via = append(b.Via, "fingerprint matches discovered credential "+d.Credential)
		b.Holders = append(b.Holders, d.Holders...)
	}
	for _, s := range b.Opens {
		b.UsedBy = append(b.UsedBy, k.UsedBy[s]...)
		if k.CrownJewels[s] {
			b.CrownJewels = append(b.CrownJewels, s)
		}
	}
	for _, l := range []*[]string{&b.Opens, &b.Holders, &b.UsedBy, &b.Discovered, &b.CrownJewels} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	slices.Sort(b.Via)
	b.Via = slices.Compact(b.Via)
	reach := 1 + 4*len(b.Opens) + 10*len(b.CrownJewels) + 2*len(b.UsedBy) + 2*len(b.Holders)
	present := 1
	if b.Present {
		present = 2
	}
	if !f.Date.IsZero() && k.Now.After(f.Date) {
		b.AgeDays = int(k.Now.Sub(f.Date).Hours() / 24)
	}
	b.Score = max(1, severityWeight(f.Severity)*reach*present*validityWeight(f.Validation)/2) + min(b.AgeDays/30, 12)
	return b
}

func severityWeight(s secrets.Severity) int { return max(1, severityRank(s)) }

// Rank returns findings with their blast radius, widest first (then by
// severity, path and line).
func Rank(findings []Finding, k *Knowledge) []Ranked {
	out := make([]Ranked, len(findings))
	for i := range findings {
		out[i] = Ranked{Finding: findings[i], Blast: Radius(&findings[i], k)}
	}
	slices.SortStableFunc(out, func(a, b Ranked) int {
		return cmp.Or(cmp.Compare(b.Blast.Score, a.Blast.Score), cmp.Compare(severityRank(b.Severity), severityRank(a.Severity)),
			cmp.Compare(a.Path, b.Path), cmp.Compare(a.Line, b.Line))
	})
	return out
}

// WriteRanked prints ranked findings as a table, widest blast radius
// first: score, severity, rule, place, what it opens, who uses and holds
// it, and whether it is still present.
func WriteRanked(w io.Writer, rs []Ranked) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	validated := false
	for i := range rs {
		validated = validated || rs[i].Validation != nil
	}
	head := "SCORE\tSEVERITY\tRULE\tLOCATION\tPRESENT\tOPENS\tUSED BY\tHOLDERS\tFINGERPRINT"
	if validated {
		head += "\tVALIDITY"
	}
	fmt.Fprintln(tw, head)
	dash := func(l []string) string {
		if len(l) == 0 {
			return "-"
		}
		return strings.Join(l, ",")
	}
	for _, r := range rs {
		present := "yes"
		if !r.Blast.Present {
			present = "history"
		}
		validity := ""
		if validated {
			validity = "\t" + r.Validation.String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s:%d\t%s\t%s\t%d\t%d\t%s%s\n", r.Blast.Score, r.Severity, r.RuleID, r.Path, r.Line, present,
			dash(r.Blast.Opens), len(r.Blast.UsedBy), len(r.Blast.Holders), short(r.Fingerprint), validity)
	}
	if len(rs) == 0 {
		fmt.Fprintln(tw, "no secrets found")
	}
	return tw.Flush()
}
