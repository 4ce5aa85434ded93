package registry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/writ-dev/writ/internal/store"
)

// The rule for a process that matches several entries: the most specific
// entry wins. Entry A is more specific than entry B when A's selectors
// include all of B's and more (a strict superset): a process that matches
// A matches B too, so A was written for it in particular. When no single
// entry is more specific than every other match (two entries with the same
// selectors, or with selectors neither of which includes the other's),
// the match is ambiguous.
//
// The Workload API serves an SVID for every entry a process matches, as
// SPIFFE specifies, most specific first (clients that take the first SVID
// as the default get the chosen one). Where one identity must be picked,
// as for a process calling through the access proxy, the chosen entry is
// used, and an ambiguous match must be resolved by the caller (the
// Writ-Identity header).

// moreSpecific reports whether a's selectors are a strict superset of
// b's. Both are normalised (sorted, without duplicates) by Validate.
func moreSpecific(a, b store.Entry) bool {
	if len(a.Selectors) <= len(b.Selectors) {
		return false
	}
	for _, s := range b.Selectors {
		if !slices.Contains(a.Selectors, s) {
			return false
		}
	}
	return true
}

// sortSpecificFirst orders matches so that an entry comes before every
// entry it is more specific than: by number of selectors, most first,
// then by name.
func sortSpecificFirst(matches []store.Entry) {
	slices.SortStableFunc(matches, func(a, b store.Entry) int {
		if d := len(b.Selectors) - len(a.Selectors); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// Choose applies the most-specific rule to the entries one process
// matches (as [Registry.Match] returns them). It returns the chosen entry
// and true, or, when the match is ambiguous or empty, false and the
// candidates: the matches no other match is more specific than. Entries
// that name the same SPIFFE ID are one identity, never ambiguous.
func Choose(matches []store.Entry) (store.Entry, []store.Entry, bool) {
	var cands []store.Entry
	for i, m := range matches {
		outranked := false
		for j, o := range matches {
			if i != j && moreSpecific(o, m) {
				outranked = true
				break
			}
		}
		if !outranked {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return store.Entry{}, nil, false
	}
	for _, c := range cands[1:] {
		if c.SpiffeID != cands[0].SpiffeID {
			return store.Entry{}, cands, false
		}
	}
	return cands[0], cands, true
}

// EntryMatch is one entry as [Registry.Explain] sees it.
type EntryMatch struct {
	Entry store.Entry
	// Matched is whether all of the entry's selectors are the process's.
	Matched bool
	// Missing are the entry's selectors the process does not have.
	Missing []store.Selector
	// Outranks names the matching entries this one is more specific than.
	Outranks []string
}

// Explanation says which entries a process matches and which identity
// it gets.
type Explanation struct {
	// Entries are the entries that share at least one selector with the
	// process: those that match first (most specific first), then the
	// others by name.
	Entries []EntryMatch
	// Chosen is the entry the most-specific rule picks; its Name is empty
	// when no entry matches or the match is ambiguous.
	Chosen store.Entry
	// Reason says why, in a sentence for an operator.
	Reason string
}

// Explain reports how the entries match a process with the attested
// selectors, and the identity the rule chooses.
func (r *Registry) Explain(attested []store.Selector) Explanation {
	matches := r.Match(attested)
	have := make(map[store.Selector]bool, len(attested))
	for _, a := range attested {
		have[a] = true
	}
	var ex Explanation
	for _, m := range matches {
		em := EntryMatch{Entry: m, Matched: true}
		for _, o := range matches {
			if moreSpecific(m, o) {
				em.Outranks = append(em.Outranks, o.Name)
			}
		}
		ex.Entries = append(ex.Entries, em)
	}
	for _, e := range r.snap.Load().all { // ordered by name
		var missing []store.Selector
		for _, s := range e.Selectors {
			if !have[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 && len(missing) < len(e.Selectors) {
			ex.Entries = append(ex.Entries, EntryMatch{Entry: e, Missing: missing})
		}
	}
	chosen, cands, ok := Choose(matches)
	switch {
	case len(matches) == 0:
		ex.Reason = "no entry matches: none has all of its selectors among the process's"
	case ok && len(matches) == 1:
		ex.Chosen, ex.Reason = chosen, fmt.Sprintf("entry %s is the only match", chosen.Name)
	case ok:
		ex.Chosen, ex.Reason = chosen, fmt.Sprintf("entry %s is the most specific match: its selectors include those of every other match", chosen.Name)
	default:
		names := make([]string, len(cands))
		for i, c := range cands {
			names[i] = c.Name + " (" + c.SpiffeID + ")"
		}
		ex.Reason = fmt.Sprintf("ambiguous: entries %s match and none has selectors that include the others'; the Workload API serves an SVID for each, and the access proxy refuses the process's calls unless they send a Writ-Identity header naming one. Add a selector to the entry that should win, or narrow the others",
			strings.Join(names, ", "))
	}
	return ex
}
