package server

import (
	"context"

	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/registry"
)

// processes explains how a local process is identified, for the admin
// API: the attestor's selectors and the registry's most-specific rule.
type processes struct{ s *Server }

func (p processes) ExplainPID(ctx context.Context, pid int) (attest.Result, registry.Explanation, error) {
	peer, err := p.s.attestor.PeerFromPID(ctx, pid)
	if err != nil {
		return attest.Result{}, registry.Explanation{}, err
	}
	defer peer.Close()
	res, err := p.s.attestor.Attest(ctx, peer)
	if err != nil {
		return attest.Result{}, registry.Explanation{}, err
	}
	return res, p.s.registry.Explain(res.Selectors), nil
}
