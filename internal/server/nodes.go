package server

import (
	"context"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/node/nodeserver"
)

// initNodes starts the registry of scale-out nodes and join tokens.
func (s *Server) initNodes(ctx context.Context, td spiffeid.TrustDomain) error {
	var err error
	s.nodes, err = nodeserver.NewRegistry(ctx, nodeserver.RegistryConfig{TrustDomain: td, Store: s.db, Emitter: s.emit, Now: s.now})
	return err
}
