// Package workload is writ's SPIFFE Workload API: a gRPC server on a unix
// socket that official SPIFFE clients (go-spiffe's workloadapi,
// spiffe-helper, `spire-agent api fetch`) use unchanged. It uses the
// generated stubs from go-spiffe, requires the `workload.spiffe.io: true`
// security header, attests each caller from its kernel peer credentials,
// matches the attested selectors to registration entries, and serves the
// SVIDs and bundles of the matched identities.
//
// Streams send the full state at once and again whenever it changes: an
// entry is created, changed or deleted (the registry pushes a
// notification), the trust bundle changes (the authority pushes one), or an
// SVID reaches half its life. Nothing polls the store.
package workload

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// Attestor identifies the process behind a connection.
type Attestor interface {
	Attest(ctx context.Context, p attest.Peer) (attest.Result, error)
}

// Authority signs SVIDs and publishes the trust bundle.
type Authority interface {
	SignX509SVID(ctx context.Context, p ca.X509SVIDParams) ([]*x509.Certificate, error)
	SignJWTSVID(ctx context.Context, p ca.JWTSVIDParams) (string, time.Time, error)
	Bundle() *spiffebundle.Bundle
	Subscribe() (<-chan struct{}, func())
}

// Registry maps attested selectors to identities and reports changes.
type Registry interface {
	Match(attested []store.Selector) []store.Entry
	Watch() (<-chan struct{}, func())
}

// Config configures a Server. Attestor, Authority and Registry are required.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	Attestor    Attestor
	Authority   Authority
	Registry    Registry
	Emitter     audit.Emitter
	Log         *slog.Logger
	Metrics     *Metrics // optional
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// Revoked reports whether an instance's credentials were revoked; a
	// revoked instance gets no SVIDs. Optional.
	Revoked func(instance, spiffeID string) bool
	// RevocationWatch notifies streams that revocation state changed.
	// Optional.
	RevocationWatch func() (<-chan struct{}, func())
}

// Server implements the SPIFFE Workload API.
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	c    Config
	grpc *grpc.Server

	mu      sync.Mutex
	x509    map[string]*x509Entry // key: instance|identity|revision
	jwt     map[string]*jwtEntry  // key: instance|spiffe id|audiences
	inserts int
	seen    map[string]struct{} // instances whose attestation was recorded
}

type x509Entry struct {
	chain   []*x509.Certificate
	keyDER  []byte
	renewAt time.Time
	expires time.Time
}

type jwtEntry struct {
	token   string
	renewAt time.Time
	expires time.Time
}

// HeaderKey is the security header every Workload API call must carry.
const HeaderKey = "workload.spiffe.io"

// New returns a Server; call Serve to accept connections.
func New(c Config) (*Server, error) {
	if c.Attestor == nil || c.Authority == nil || c.Registry == nil {
		return nil, errors.New("workload API: attestor, authority and registry are required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Emitter == nil {
		c.Emitter = audit.SlogEmitter{Log: c.Log}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Revoked == nil {
		c.Revoked = func(string, string) bool { return false }
	}
	if c.RevocationWatch == nil {
		c.RevocationWatch = func() (<-chan struct{}, func()) { return nil, func() {} }
	}
	s := &Server{c: c, x509: map[string]*x509Entry{}, jwt: map[string]*jwtEntry{}, seen: map[string]struct{}{}}
	s.grpc = grpc.NewServer(
		grpc.Creds(attest.TransportCredentials()),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	)
	workload.RegisterSpiffeWorkloadAPIServer(s.grpc, s)
	return s, nil
}

// Listen creates the unix socket at path (replacing a stale one) with the
// given mode. A missing parent directory is created 0755, whatever the
// umask, so that workloads of other users can reach a socket given a mode
// that lets them; attestation, not file permissions, decides what a caller
// gets.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	if err := mkdirReachable(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on %s: a file that is not a socket is in the way; remove it or choose another --socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: another process is serving on this socket; stop it or choose another --socket", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, mode&os.ModePerm); err != nil {
		ln.Close()
		return nil, fmt.Errorf("set socket permissions: %w", err)
	}
	return ln, nil
}

// mkdirReachable creates dir and its missing parents with mode 0755,
// whatever the umask. Existing directories are left as they are.
func mkdirReachable(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			break
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create socket directory %s: %w", dir, err)
	}
	for _, d := range missing {
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("create socket directory %s: %w", d, err)
		}
	}
	return nil
}

// Serve accepts connections on ln until Stop.
func (s *Server) Serve(ln net.Listener) error { return s.grpc.Serve(ln) }

// Stop ends every stream and closes the listener. It waits for unary calls
// in flight up to ctx's deadline, then cuts them.
func (s *Server) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
	}
}

func checkHeader(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(HeaderKey); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	return nil
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := s.c.Now()
	if err := checkHeader(ctx); err != nil {
		s.c.Metrics.observe(info.FullMethod, start, err)
		return nil, err
	}
	resp, err := h(ctx, req)
	s.c.Metrics.observe(info.FullMethod, start, err)
	return resp, err
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := checkHeader(ss.Context()); err != nil {
		s.c.Metrics.observe(info.FullMethod, s.c.Now(), err)
		return err
	}
	return h(srv, ss)
}

// attest identifies the caller of ctx. It does not require identities.
func (s *Server) attest(ctx context.Context) (attest.Result, error) {
	p, ok := attest.PeerFromContext(ctx)
	if !ok {
		return attest.Result{}, status.Error(codes.Internal, "caller credentials unavailable")
	}
	res, err := s.c.Attestor.Attest(ctx, p)
	if err != nil {
		s.c.Metrics.attestFailed()
		s.c.Log.WarnContext(ctx, "attestation failed", "pid", p.PID, "uid", p.UID, "error", err)
		if emitErr := s.c.Emitter.Emit(ctx, audit.Event{Type: audit.AttestationFailed, Reason: err.Error(),
			Details: map[string]string{"pid": fmt.Sprint(p.PID), "uid": fmt.Sprint(p.UID)}}); emitErr != nil {
			s.c.Log.ErrorContext(ctx, "record attestation failure", "error", emitErr)
		}
		if errors.Is(err, attest.ErrSocketHandedOver) {
			return attest.Result{}, status.Error(codes.PermissionDenied, "no identity issued: the socket is held by a process other than the one that connected; connect from the process that makes the call")
		}
		return attest.Result{}, status.Error(codes.PermissionDenied, "no identity issued: attestation failed")
	}
	return res, nil
}

// identities matches res to entries, dropping revoked ones. It records the
// first successful attestation of each instance.
func (s *Server) identities(ctx context.Context, res attest.Result) ([]store.Entry, error) {
	ids := s.c.Registry.Match(res.Selectors)
	ids = slices.DeleteFunc(ids, func(id store.Entry) bool { return s.c.Revoked(res.Instance.ID, id.SpiffeID) })
	s.mu.Lock()
	_, seen := s.seen[res.Instance.ID]
	if !seen {
		if len(s.seen) > 100_000 {
			clear(s.seen)
		}
		s.seen[res.Instance.ID] = struct{}{}
	}
	s.mu.Unlock()
	if !seen {
		sel := make([]string, len(res.Selectors))
		for i, x := range res.Selectors {
			sel[i] = x.String()
		}
		var sids []string
		for _, id := range ids {
			sids = append(sids, id.SpiffeID)
		}
		if err := s.c.Emitter.Emit(ctx, audit.Event{Type: audit.AttestationOK, Instance: res.Instance.ID,
			SpiffeID: strings.Join(sids, ","),
			Details: map[string]string{"pid": fmt.Sprint(res.PID), "uid": fmt.Sprint(res.UID), "exe": res.Exe,
				"selectors": strings.Join(sel, ",")}}); err != nil {
			s.mu.Lock()
			delete(s.seen, res.Instance.ID)
			s.mu.Unlock()
			return nil, status.Error(codes.Unavailable, "audit log unavailable; try again")
		}
	}
	if len(ids) == 0 {
		return nil, status.Error(codes.PermissionDenied, "no identity issued")
	}
	return ids, nil
}

// FetchX509SVID implements the Workload API.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	ctx := stream.Context()
	res, err := s.attest(ctx)
	if err != nil {
		return err
	}
	var last string
	return s.watch(ctx, func(ctx context.Context) (time.Time, error) {
		ids, err := s.identities(ctx, res)
		if err != nil {
			return time.Time{}, err
		}
		resp, next, err := s.x509Response(ctx, res, ids)
		if err != nil {
			return time.Time{}, err
		}
		// Cached SVIDs make an unchanged state byte-identical, so only
		// real changes are sent.
		if st := x509State(resp); st != last {
			if err := stream.Send(resp); err != nil {
				return time.Time{}, err
			}
			last = st
		}
		return next, nil
	})
}

// watch runs build at once and again on every change until ctx ends or
// build fails. build returns when it must run again at the latest.
func (s *Server) watch(ctx context.Context, build func(context.Context) (time.Time, error)) error {
	regCh, stopReg := s.c.Registry.Watch()
	defer stopReg()
	bundleCh, stopBundle := s.c.Authority.Subscribe()
	defer stopBundle()
	revCh, stopRev := s.c.RevocationWatch()
	defer stopRev()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, err := build(ctx)
		if err != nil {
			return err
		}
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(s.c.Now()), time.Second)
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return nil
		case <-regCh:
		case <-bundleCh:
		case <-revCh:
		case <-timer.C:
		}
	}
}

// x509State is the content of a response, to detect real changes.
func x509State(r *workload.X509SVIDResponse) string {
	var b strings.Builder
	for _, sv := range r.Svids {
		b.WriteString(sv.SpiffeId)
		b.Write(sv.X509Svid)
	}
	if len(r.Svids) > 0 {
		b.Write(r.Svids[0].Bundle)
	}
	return b.String()
}

// x509Response builds the full X.509 state for an attested caller and
// returns the time of the earliest renewal.
func (s *Server) x509Response(ctx context.Context, res attest.Result, ids []store.Entry) (*workload.X509SVIDResponse, time.Time, error) {
	bundle := s.c.Authority.Bundle()
	bundleDER := concatDER(bundle.X509Authorities())
	resp := &workload.X509SVIDResponse{}
	var next time.Time
	for _, id := range ids {
		e, err := s.x509SVID(ctx, res, id)
		if err != nil {
			return nil, time.Time{}, err
		}
		if next.IsZero() || e.renewAt.Before(next) {
			next = e.renewAt
		}
		resp.Svids = append(resp.Svids, &workload.X509SVID{
			SpiffeId:    id.SpiffeID,
			X509Svid:    concatDER(e.chain),
			X509SvidKey: e.keyDER,
			Bundle:      bundleDER,
			Hint:        id.Name,
		})
	}
	return resp, next, nil
}

func (s *Server) x509SVID(ctx context.Context, res attest.Result, id store.Entry) (*x509Entry, error) {
	now := s.c.Now()
	key := fmt.Sprintf("%s|%s|%d", res.Instance.ID, id.Name, id.Revision)
	s.mu.Lock()
	e := s.x509[key]
	s.mu.Unlock()
	if e != nil && now.Before(e.renewAt) {
		return e, nil
	}
	sid, err := spiffeid.FromString(id.SpiffeID)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "entry %s has an invalid SPIFFE ID", id.Name)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, status.Error(codes.Internal, "generate key")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, status.Error(codes.Internal, "encode key")
	}
	chain, err := s.c.Authority.SignX509SVID(ctx, ca.X509SVIDParams{ID: sid, PublicKey: priv.Public(), TTL: id.X509TTL, Instance: res.Instance.ID})
	if err != nil {
		s.c.Log.ErrorContext(ctx, "sign X.509-SVID", "spiffe_id", id.SpiffeID, "instance", res.Instance.ID, "error", err)
		return nil, status.Error(codes.Unavailable, "could not sign an X.509-SVID; try again")
	}
	leaf := chain[0]
	if err := s.c.Emitter.Emit(ctx, audit.Event{Type: audit.SVIDIssued, SpiffeID: id.SpiffeID, Instance: res.Instance.ID,
		Credential: leaf.SerialNumber.Text(16),
		Details:    map[string]string{"kind": "x509", "entry": id.Name, "not_after": leaf.NotAfter.UTC().Format(time.RFC3339)}}); err != nil {
		return nil, status.Error(codes.Unavailable, "audit log unavailable; try again")
	}
	s.c.Metrics.issued("x509")
	e = &x509Entry{chain: chain, keyDER: keyDER, expires: leaf.NotAfter, renewAt: renewAt(leaf.NotBefore, leaf.NotAfter)}
	s.mu.Lock()
	s.x509[key] = e
	s.sweepLocked(now)
	s.mu.Unlock()
	return e, nil
}

// renewAt is the half-life of [nb, na) with up to 10% jitter earlier, so a
// fleet started together does not renew together.
func renewAt(nb, na time.Time) time.Time {
	life := na.Sub(nb)
	half := nb.Add(life / 2)
	if j := int64(life / 10); j > 0 {
		n, err := rand.Int(rand.Reader, big.NewInt(j))
		if err == nil {
			half = half.Add(-time.Duration(n.Int64()))
		}
	}
	return half
}

// sweepLocked drops expired cache entries now and then. s.mu is held.
func (s *Server) sweepLocked(now time.Time) {
	s.inserts++
	if s.inserts%1024 != 0 {
		return
	}
	for k, e := range s.x509 {
		if !now.Before(e.expires) {
			delete(s.x509, k)
		}
	}
	for k, e := range s.jwt {
		if !now.Before(e.expires) {
			delete(s.jwt, k)
		}
	}
}

// FetchX509Bundles implements the Workload API.
func (s *Server) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	return streamBundle(s, stream, func() ([]byte, error) {
		return concatDER(s.c.Authority.Bundle().X509Authorities()), nil
	}, func(b map[string][]byte) *workload.X509BundlesResponse {
		return &workload.X509BundlesResponse{Bundles: b}
	})
}

// FetchJWTBundles implements the Workload API.
func (s *Server) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream grpc.ServerStreamingServer[workload.JWTBundlesResponse]) error {
	return streamBundle(s, stream, func() ([]byte, error) {
		jwks, err := s.c.Authority.Bundle().JWTBundle().Marshal()
		if err != nil {
			return nil, status.Error(codes.Internal, "encode JWT bundle")
		}
		return jwks, nil
	}, func(b map[string][]byte) *workload.JWTBundlesResponse {
		return &workload.JWTBundlesResponse{Bundles: b}
	})
}

// streamBundle serves a bundle stream: the caller must hold an identity;
// the bundle (from encode) is sent at once and again whenever it changes.
func streamBundle[T any](s *Server, stream grpc.ServerStreamingServer[T], encode func() ([]byte, error), wrap func(map[string][]byte) *T) error {
	ctx := stream.Context()
	res, err := s.attest(ctx)
	if err != nil {
		return err
	}
	var last string
	return s.watch(ctx, func(ctx context.Context) (time.Time, error) {
		if _, err := s.identities(ctx, res); err != nil {
			return time.Time{}, err
		}
		b, err := encode()
		if err != nil {
			return time.Time{}, err
		}
		if string(b) == last {
			return time.Time{}, nil
		}
		if err := stream.Send(wrap(map[string][]byte{s.c.TrustDomain.Name(): b})); err != nil {
			return time.Time{}, err
		}
		last = string(b)
		return time.Time{}, nil
	})
}

// FetchJWTSVID implements the Workload API.
func (s *Server) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	if len(req.Audience) == 0 {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	for _, a := range req.Audience {
		if a == "" || len(a) > 1024 {
			return nil, status.Error(codes.InvalidArgument, "audience values must be non-empty and at most 1024 bytes")
		}
	}
	res, err := s.attest(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := s.identities(ctx, res)
	if err != nil {
		return nil, err
	}
	if req.SpiffeId != "" {
		if _, err := spiffeid.FromString(req.SpiffeId); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "spiffe_id %q is not a SPIFFE ID: %v", req.SpiffeId, err)
		}
		ids = slices.DeleteFunc(ids, func(id store.Entry) bool { return id.SpiffeID != req.SpiffeId })
		if len(ids) == 0 {
			return nil, status.Errorf(codes.PermissionDenied, "no identity issued for %s", req.SpiffeId)
		}
	}
	resp := &workload.JWTSVIDResponse{}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id.SpiffeID] {
			continue // two entries for one SPIFFE ID yield one token
		}
		seen[id.SpiffeID] = true
		tok, err := s.jwtSVID(ctx, res, id, req.Audience)
		if err != nil {
			return nil, err
		}
		resp.Svids = append(resp.Svids, &workload.JWTSVID{SpiffeId: id.SpiffeID, Svid: tok, Hint: id.Name})
	}
	return resp, nil
}

func (s *Server) jwtSVID(ctx context.Context, res attest.Result, id store.Entry, aud []string) (string, error) {
	now := s.c.Now()
	sorted := slices.Clone(aud)
	slices.Sort(sorted)
	key := res.Instance.ID + "|" + id.SpiffeID + "|" + fmt.Sprint(id.Revision) + "|" + strings.Join(sorted, "\x00")
	s.mu.Lock()
	e := s.jwt[key]
	s.mu.Unlock()
	if e != nil && now.Before(e.renewAt) {
		return e.token, nil
	}
	sid, err := spiffeid.FromString(id.SpiffeID)
	if err != nil {
		return "", status.Errorf(codes.Internal, "entry %s has an invalid SPIFFE ID", id.Name)
	}
	tok, exp, err := s.c.Authority.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: sid, Audience: aud, TTL: id.JWTTTL, Instance: res.Instance.ID})
	if err != nil {
		s.c.Log.ErrorContext(ctx, "sign JWT-SVID", "spiffe_id", id.SpiffeID, "instance", res.Instance.ID, "error", err)
		return "", status.Error(codes.Unavailable, "could not sign a JWT-SVID; try again")
	}
	if err := s.c.Emitter.Emit(ctx, audit.Event{Type: audit.JWTSVIDIssued, SpiffeID: id.SpiffeID, Instance: res.Instance.ID,
		Target:  strings.Join(aud, ","),
		Details: map[string]string{"kind": "jwt", "entry": id.Name, "expires": exp.UTC().Format(time.RFC3339)}}); err != nil {
		return "", status.Error(codes.Unavailable, "audit log unavailable; try again")
	}
	s.c.Metrics.issued("jwt")
	e = &jwtEntry{token: tok, expires: exp, renewAt: renewAt(now, exp)}
	s.mu.Lock()
	s.jwt[key] = e
	s.sweepLocked(now)
	s.mu.Unlock()
	return tok, nil
}

// ValidateJWTSVID implements the Workload API.
func (s *Server) ValidateJWTSVID(ctx context.Context, req *workload.ValidateJWTSVIDRequest) (*workload.ValidateJWTSVIDResponse, error) {
	if req.Audience == "" {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	if req.Svid == "" {
		return nil, status.Error(codes.InvalidArgument, "svid must be specified")
	}
	if len(req.Svid) > 64<<10 {
		return nil, status.Error(codes.InvalidArgument, "svid is larger than 64 KiB")
	}
	if _, err := s.attest(ctx); err != nil {
		return nil, err
	}
	svid, err := jwtsvid.ParseAndValidate(req.Svid, s.c.Authority.Bundle(), []string{req.Audience})
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid JWT-SVID: %v", err)
	}
	if s.c.Revoked(stringClaim(svid.Claims, "agent_instance"), svid.ID.String()) {
		return nil, status.Error(codes.InvalidArgument, "invalid JWT-SVID: its identity or instance was revoked")
	}
	claims, err := structpb.NewStruct(svid.Claims)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode claims: %v", err)
	}
	return &workload.ValidateJWTSVIDResponse{SpiffeId: svid.ID.String(), Claims: claims}, nil
}

func stringClaim(claims map[string]any, k string) string {
	s, _ := claims[k].(string)
	return s
}

func concatDER(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}
