package attest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// grpcServer serves the standard health service with TransportCredentials
// on ln and records the peer and attestation of every request.
type grpcServer struct {
	mu      sync.Mutex
	peers   []Peer
	results []Result
	errs    []error
}

func (s *grpcServer) serve(t *testing.T, a *Attestor, ln net.Listener) {
	t.Helper()
	srv := grpc.NewServer(
		grpc.Creds(TransportCredentials()),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			p, ok := PeerFromContext(ctx)
			if !ok {
				return nil, status.Error(codes.Unauthenticated, "no peer")
			}
			r, err := a.Attest(ctx, p)
			s.mu.Lock()
			s.peers, s.results, s.errs = append(s.peers, p), append(s.results, r), append(s.errs, err)
			s.mu.Unlock()
			if err != nil {
				return nil, status.Error(codes.PermissionDenied, err.Error())
			}
			return h(ctx, req)
		}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
}

func dialHealth(t *testing.T, target string) (*grpc.ClientConn, healthpb.HealthClient) {
	t.Helper()
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return cc, healthpb.NewHealthClient(cc)
}

func TestTransportCredentialsUnixSocket(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	path := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var s grpcServer
	s.serve(t, a, ln)

	cc, client := dialHealth(t, "unix://"+path)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	p, r, errs := s.peers[0], s.results[0], s.errs
	s.mu.Unlock()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p.PID != os.Getpid() || p.UID != os.Geteuid() || !p.Pinned() {
		t.Errorf("peer = %+v, want this process, pinned", p)
	}
	if r.Exe != selfExe(t) || r.Instance.ID == "" {
		t.Errorf("result = %+v", r)
	}

	// Closing the client closes the server's connection, and with it the
	// pidfd: the peer can no longer be attested.
	cc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := a.Attest(ctx, p)
		if errors.Is(err, ErrPeerClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Attest after the connection closed = %v, want ErrPeerClosed", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTransportCredentialsRefuseTCP(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var s grpcServer
	s.serve(t, a, ln)
	_, client := dialHealth(t, ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Check over TCP = %v, want the handshake refused", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.peers) != 0 {
		t.Errorf("a TCP request reached the handler with peer %+v", s.peers[0])
	}
}

func TestTransportCredentialsHandshakeDirect(t *testing.T) {
	creds := TransportCredentials()
	if _, _, err := creds.ClientHandshake(context.Background(), "x", nil); err == nil {
		t.Error("ClientHandshake succeeded; the credentials are server-only")
	}
	if creds.Info().SecurityProtocol != AuthType || creds.Clone().Info() != creds.Info() {
		t.Errorf("Info = %+v", creds.Info())
	}
	server, _ := unixPair(t)
	conn, info, err := creds.ServerHandshake(server)
	if err != nil {
		t.Fatal(err)
	}
	ai, ok := info.(AuthInfo)
	if !ok || ai.AuthType() != AuthType || ai.Peer.PID != os.Getpid() {
		t.Fatalf("auth info = %#v", info)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ai.Peer.checkAlive(); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("pidfd after conn.Close: %v, want ErrPeerClosed", err)
	}
	if _, ok := PeerFromContext(context.Background()); ok {
		t.Error("PeerFromContext found a peer in an empty context")
	}
}
