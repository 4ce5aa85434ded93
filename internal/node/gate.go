package node

import (
	"slices"
	"strings"

	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/store"
)

// gatedRegistry matches entries on a node as if the node carried the node
// selectors (node:..., nodeattest.GateType) entries name: the server knows
// the node's attestation and refuses to sign an SVID for an entry whose
// node selectors the node lacks, so that check is made there. Only
// node:attestor:NAME is known here, when the node joined in this run
// (attestor is then its prover's name): entries gated to another
// attestor are not matched at all.
type gatedRegistry struct {
	*registry.Registry
	attestor string // "" when unknown
}

// Match implements workload.Registry.
func (g gatedRegistry) Match(attested []store.Selector) []store.Entry {
	var extra []store.Selector
	for _, e := range g.Registry.List() {
		for _, s := range e.Selectors {
			if s.Type != nodeattest.GateType || slices.Contains(extra, s) {
				continue
			}
			if name, ok := strings.CutPrefix(s.Value, "attestor:"); ok && g.attestor != "" && name != g.attestor {
				continue
			}
			extra = append(extra, s)
		}
	}
	if len(extra) == 0 {
		return g.Registry.Match(attested)
	}
	return g.Registry.Match(append(slices.Clip(attested), extra...))
}
