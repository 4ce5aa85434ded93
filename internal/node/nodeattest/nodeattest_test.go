package nodeattest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func openStore(t testing.TB) *sqlite.DB {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func challenge(t testing.TB) nodeattest.Challenge {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return nodeattest.Challenge{Nonce: nodeattest.NewNonce(), Key: der}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestJoinToken(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	clk := &clock{t0}
	vs, err := nodeattest.NewVerifiers(nodeattest.JoinTokens{Store: db, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	create := func(ttl time.Duration, node string) string {
		secret, rec, err := nodeattest.NewJoinToken(clk.t, ttl, node)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(rec.ID, secret) || len(rec.Hash) != 32 {
			t.Fatalf("record %+v gives the secret away or has no hash", rec)
		}
		if err := db.CreateJoinToken(ctx, rec); err != nil {
			t.Fatal(err)
		}
		return secret
	}
	attest := func(secret, name string) (nodeattest.Result, error) {
		payload, err := nodeattest.JoinTokenProver{Token: secret}.Prove(ctx, challenge(t))
		if err != nil {
			t.Fatal(err)
		}
		return vs.Verify(ctx, nodeattest.Request{Challenge: challenge(t), Attestor: "join_token", Payload: payload, Name: name})
	}

	tok := create(time.Hour, "")
	res, err := attest(tok, "host-1")
	if err != nil || res.Name != "host-1" || len(res.Selectors) != 1 || !strings.HasPrefix(res.Selectors[0].Value, "id:jt_") {
		t.Fatalf("first use = %+v, %v", res, err)
	}
	if _, err := attest(tok, "host-2"); !errors.Is(err, nodeattest.ErrRefused) || !strings.Contains(err.Error(), "already used") {
		t.Errorf("second use: %v, want refused as used", err)
	}

	// A token bound to a name gives that name.
	named := create(time.Hour, "mail-1")
	if res, err := attest(named, "other"); err != nil || res.Name != "mail-1" {
		t.Errorf("named token = %+v, %v; want mail-1", res, err)
	}

	expiring := create(time.Minute, "")
	clk.t = t0.Add(time.Minute)
	if _, err := attest(expiring, "host-3"); !errors.Is(err, nodeattest.ErrRefused) {
		t.Errorf("expired token: %v, want refused", err)
	}

	// A name the node asks for must be a valid SPIFFE path segment.
	if _, err := attest(create(time.Hour, ""), "../root"); err == nil || !strings.Contains(err.Error(), "node name") {
		t.Errorf("bad name: %v", err)
	}
	if _, err := attest(create(time.Hour, ""), ""); err == nil {
		t.Error("a join token without any name was accepted")
	}
	if _, _, err := nodeattest.NewJoinToken(t0, 0, ""); err == nil {
		t.Error("a zero TTL was accepted")
	}
	if _, _, err := nodeattest.NewJoinToken(t0, time.Hour, "Bad Name"); err == nil {
		t.Error("a bad node name was accepted")
	}
}

func TestVerifiers(t *testing.T) {
	ctx := context.Background()
	if _, err := nodeattest.NewVerifiers(nodeattest.JoinTokens{}, nodeattest.JoinTokens{}); err == nil {
		t.Error("two verifiers of one name were accepted")
	}
	vs, _ := nodeattest.NewVerifiers(nodeattest.JoinTokens{Store: openStore(t)})
	for name, req := range map[string]nodeattest.Request{
		"unknown attestor": {Challenge: challenge(t), Attestor: "tpm", Payload: []byte(`{}`), Name: "a"},
		"short nonce":      {Challenge: nodeattest.Challenge{Nonce: []byte{1}, Key: []byte{1}}, Attestor: "join_token", Payload: []byte(`{"token":"wjt_x"}`), Name: "a"},
		"no key":           {Challenge: nodeattest.Challenge{Nonce: nodeattest.NewNonce()}, Attestor: "join_token", Name: "a"},
		"unknown field":    {Challenge: challenge(t), Attestor: "join_token", Payload: []byte(`{"token":"wjt_x","x":1}`), Name: "a"},
		"trailing data":    {Challenge: challenge(t), Attestor: "join_token", Payload: []byte(`{"token":"wjt_x"} {}`), Name: "a"},
		"not a token":      {Challenge: challenge(t), Attestor: "join_token", Payload: []byte(`{"token":"hunter2"}`), Name: "a"},
	} {
		if _, err := vs.Verify(ctx, req); !errors.Is(err, nodeattest.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", name, err)
		}
	}
	var zero nodeattest.Verifiers
	if _, err := zero.Verify(ctx, nodeattest.Request{Challenge: challenge(t), Attestor: "join_token"}); err == nil {
		t.Error("the zero Verifiers accepted an attestation")
	}
}

// pki is a machine CA and certificates it issued.
type pki struct {
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

func newPKI(t testing.TB, cn string) *pki {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: t0.Add(-time.Hour),
		NotAfter: t0.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &pki{ca: c, caKey: k}
}

func (p *pki) issue(t testing.TB, cn string, eku x509.ExtKeyUsage, notAfter time.Time) tls.Certificate {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn}, NotBefore: t0.Add(-time.Hour),
		NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{eku}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

func TestX509PoP(t *testing.T) {
	ctx := context.Background()
	machines := newPKI(t, "machines")
	other := newPKI(t, "other")
	roots := x509.NewCertPool()
	roots.AddCert(machines.ca)
	clk := &clock{t0}
	vs, _ := nodeattest.NewVerifiers(&nodeattest.X509PoP{Roots: roots, Now: clk.now})

	prove := func(c tls.Certificate, ch nodeattest.Challenge) []byte {
		b, err := (&nodeattest.X509PoPProver{Cert: c}).Prove(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := machines.issue(t, "host-7", x509.ExtKeyUsageClientAuth, t0.Add(time.Hour))
	ch := challenge(t)
	res, err := vs.Verify(ctx, nodeattest.Request{Challenge: ch, Attestor: "x509pop", Payload: prove(good, ch), Name: "ignored"})
	if err != nil || res.Name != "host-7" || len(res.Selectors) != 3 || res.Selectors[0].Value != "subject:cn:host-7" {
		t.Fatalf("good machine certificate = %+v, %v", res, err)
	}

	refused := map[string]nodeattest.Request{}
	// Evidence bound to another challenge (replayed) or another key.
	other1 := challenge(t)
	refused["replayed for another nonce"] = nodeattest.Request{Challenge: other1, Attestor: "x509pop", Payload: prove(good, ch)}
	refused["replayed for another key"] = nodeattest.Request{Challenge: nodeattest.Challenge{Nonce: ch.Nonce, Key: other1.Key}, Attestor: "x509pop", Payload: prove(good, ch)}
	foreign := other.issue(t, "host-8", x509.ExtKeyUsageClientAuth, t0.Add(time.Hour))
	refused["another CA"] = nodeattest.Request{Challenge: ch, Attestor: "x509pop", Payload: prove(foreign, ch)}
	serverOnly := machines.issue(t, "host-9", x509.ExtKeyUsageServerAuth, t0.Add(time.Hour))
	refused["not for client auth"] = nodeattest.Request{Challenge: ch, Attestor: "x509pop", Payload: prove(serverOnly, ch)}
	expired := machines.issue(t, "host-10", x509.ExtKeyUsageClientAuth, t0.Add(-time.Minute))
	refused["expired"] = nodeattest.Request{Challenge: ch, Attestor: "x509pop", Payload: prove(expired, ch)}
	// Someone else's certificate with a key that is not its.
	stolen := good
	stolen.PrivateKey = foreign.PrivateKey
	refused["certificate without its key"] = nodeattest.Request{Challenge: ch, Attestor: "x509pop", Payload: prove(stolen, ch)}
	badName := machines.issue(t, "Host With Spaces", x509.ExtKeyUsageClientAuth, t0.Add(time.Hour))
	refused["common name is no node name"] = nodeattest.Request{Challenge: ch, Attestor: "x509pop", Payload: prove(badName, ch)}
	refused["no chain"] = nodeattest.Request{Challenge: ch, Attestor: "x509pop", Payload: []byte(`{"chain":[],"signature":""}`)}
	refused["garbage certificate"] = nodeattest.Request{Challenge: ch, Attestor: "x509pop", Payload: []byte(`{"chain":["AAAA"],"signature":""}`)}
	for name, req := range refused {
		if _, err := vs.Verify(ctx, req); !errors.Is(err, nodeattest.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", name, err)
		}
	}
}

// FuzzVerify: whatever a node sends, verification answers without
// panicking, and never accepts a payload it did not produce.
func FuzzVerify(f *testing.F) {
	ctx := context.Background()
	machines := newPKI(f, "machines")
	roots := x509.NewCertPool()
	roots.AddCert(machines.ca)
	db := openStore(f)
	vs, _ := nodeattest.NewVerifiers(&nodeattest.X509PoP{Roots: roots, Now: func() time.Time { return t0 }}, nodeattest.JoinTokens{Store: db})
	ch := challenge(f)
	good := machines.issue(f, "host-1", x509.ExtKeyUsageClientAuth, t0.Add(time.Hour))
	payload, _ := (&nodeattest.X509PoPProver{Cert: good}).Prove(ctx, ch)
	f.Add("x509pop", payload, "a")
	f.Add("join_token", []byte(`{"token":"wjt_AAAA"}`), "a")
	f.Add("join_token", []byte(`{"token":1}`), "")
	f.Add("x509pop", []byte(`{"chain":null,"signature":null}`), "")
	f.Add("tpm", []byte(`[]`), "x")
	other := challenge(f)
	f.Fuzz(func(t *testing.T, attestor string, payload []byte, name string) {
		// Against a fresh challenge nothing the fuzzer makes verifies.
		if res, err := vs.Verify(ctx, nodeattest.Request{Challenge: other, Attestor: attestor, Payload: payload, Name: name}); err == nil {
			t.Fatalf("fuzzed evidence accepted: %+v", res)
		}
	})
}
