package nodeattest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/writ-dev/writ/internal/store"
)

// GateType is the type of the entry selectors that gate issuance on node
// attestation: an entry with `node:attestor:x509pop` (or any selector a
// node attestor vouched for, such as `node:x509pop:subject:cn:host-1`)
// is issued only to workloads on a node whose attestation carries it. A
// workload on an unattested host (the server's own Workload API) never
// has a node selector, so it gets nothing from such an entry.
const GateType = "node"

// ValidateGate checks the value of a node selector: "attestor:NAME" or
// "ATTESTOR:..." as an attestor produces it.
func ValidateGate(value string) error {
	kind, rest, ok := strings.Cut(value, ":")
	if !ok || kind == "" || rest == "" || len(value) > 256 {
		return fmt.Errorf("node selector %q: write node:attestor:NAME (join_token, x509pop, ...) or node:ATTESTOR:VALUE as the node's attestation records it, e.g. node:x509pop:subject:cn:host-1", value)
	}
	for _, c := range value {
		if c < 0x21 || c == 0x7f {
			return fmt.Errorf("node selector %q: no spaces or control characters", value)
		}
	}
	return nil
}

// Gates returns the node selector values a node's attestation satisfies:
// "attestor:NAME" and each selector it vouched for.
func Gates(n store.Node) []string {
	out := []string{"attestor:" + n.Attestor}
	for _, s := range n.Selectors {
		out = append(out, s.Type+":"+s.Value)
	}
	return out
}

// Required returns the node selector values of an entry.
func Required(e store.Entry) []string {
	var out []string
	for _, s := range e.Selectors {
		if s.Type == GateType {
			out = append(out, s.Value)
		}
	}
	return out
}

// Satisfied reports whether every required value is among have.
func Satisfied(required, have []string) bool {
	for _, r := range required {
		if !slices.Contains(have, r) {
			return false
		}
	}
	return true
}
