package attest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// AuthType is the gRPC auth type of connections accepted with
// [TransportCredentials].
const AuthType = "writ-unix-peer"

// AuthInfo is the gRPC auth information of a connection accepted with
// [TransportCredentials]: the process at the other end of the socket.
type AuthInfo struct {
	credentials.CommonAuthInfo
	Peer Peer
}

// AuthType implements credentials.AuthInfo.
func (AuthInfo) AuthType() string { return AuthType }

// TransportCredentials returns server-side gRPC transport credentials for a
// unix socket listener. The handshake reads the peer's credentials from
// the kernel and pins the process with a pidfd, which is closed when the
// connection closes; handlers read the peer with [PeerFromContext].
// Connections that are not unix sockets are refused.
//
// The credentials are for servers only; clients of a unix socket use
// insecure credentials.
func TransportCredentials() credentials.TransportCredentials { return unixPeerCreds{} }

type unixPeerCreds struct{}

var _ credentials.TransportCredentials = unixPeerCreds{}

func (unixPeerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	sc, ok := c.(syscall.Conn)
	if !ok || c.LocalAddr().Network() != "unix" {
		return nil, nil, fmt.Errorf("attest peer: connection from %s is not a unix socket; serve the Workload API on a unix socket listener", c.RemoteAddr())
	}
	p, err := peerFromConn(sc)
	if err != nil {
		return nil, nil, fmt.Errorf("attest peer: %w", err)
	}
	info := AuthInfo{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		Peer:           p,
	}
	return &peerConn{Conn: c, peer: p}, info, nil
}

func (unixPeerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("attest peer: transport credentials are for the server side only; clients use insecure credentials on the unix socket")
}

func (unixPeerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: AuthType}
}

func (c unixPeerCreds) Clone() credentials.TransportCredentials { return c }

func (unixPeerCreds) OverrideServerName(string) error { return nil }

// peerConn closes the peer's pidfd with the connection.
type peerConn struct {
	net.Conn
	peer Peer
}

func (c *peerConn) Close() error {
	perr := c.peer.Close()
	return errors.Join(c.Conn.Close(), perr)
}

// PeerFromContext returns the peer of the gRPC connection a request came
// in on, if the server was built with [TransportCredentials]. The peer
// belongs to the connection: do not close it.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p == nil {
		return Peer{}, false
	}
	info, ok := p.AuthInfo.(AuthInfo)
	if !ok {
		return Peer{}, false
	}
	return info.Peer, true
}
