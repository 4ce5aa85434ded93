package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/audit/audittest"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

const testIssuer = "http://127.0.0.1:8080"

var testTD = spiffeid.RequireTrustDomainFromString("writ.test")

// env is a real CA over a real store, a revocation list and a verifier.
type env struct {
	db     *sqlite.DB
	ca     *ca.Authority
	bundle *Bundle
	rev    *revoke.List
	rec    *audittest.Recorder
	ver    *Verifier
	now    time.Time
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kek := make([]byte, 32)
	rand.Read(kek)
	sealer, err := keys.NewSealer(kek)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, rec: &audittest.Recorder{}, now: time.Now()}
	e.ca, err = ca.New(ctx, ca.Config{TrustDomain: testTD, Keys: db, Resources: db, Sealer: sealer, Emitter: audit.Discard})
	if err != nil {
		t.Fatal(err)
	}
	e.bundle = &Bundle{}
	e.bundle.Set(e.ca.Bundle())
	e.rev, err = revoke.New(ctx, revoke.Config{Store: db, Emitter: e.rec})
	if err != nil {
		t.Fatal(err)
	}
	e.ver, err = NewVerifier(VerifierConfig{Issuer: testIssuer, Keys: e.bundle, Revocations: e.rev, Emitter: e.rec,
		Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// mint signs claims as writ would, with the CA's JWT key.
func (e *env) mint(t testing.TB, mutate func(c *Claims)) string {
	t.Helper()
	c := &Claims{Issuer: testIssuer, Subject: "spiffe://writ.test/agent/a", Audience: Audience{"mail-api"},
		Expiry: time.Now().Add(5 * time.Minute).Unix(), IssuedAt: time.Now().Unix(), ID: "at_" + rand.Text(),
		ClientID: "spiffe://writ.test/agent/a", Scope: "mail.read", Instance: "inst_1", Task: "task_1"}
	if mutate != nil {
		mutate(c)
	}
	m, err := claimsMap(c)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.ca.SignJWT(context.Background(), AccessTokenType, m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// dpopKey is a client's DPoP key.
type dpopKey struct {
	priv *ecdsa.PrivateKey
	jkt  string
}

func newDPoPKey(t testing.TB) *dpopKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: &priv.PublicKey}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &dpopKey{priv: priv, jkt: base64.RawURLEncoding.EncodeToString(tp)}
}

// proof builds a DPoP proof; accessToken sets ath.
func (k *dpopKey) proof(t testing.TB, method, url, accessToken string, iat time.Time, mutate func(map[string]any)) string {
	t.Helper()
	claims := map[string]any{"jti": rand.Text(), "htm": method, "htu": url, "iat": iat.Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if mutate != nil {
		mutate(claims)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.priv}, &jose.SignerOptions{
		EmbedJWK: true, ExtraHeaders: map[jose.HeaderKey]any{jose.HeaderType: "dpop+jwt"}})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bigOne() *big.Int { n, _ := rand.Int(rand.Reader, big.NewInt(1<<62)); return n }

func caJWTSVID(e *env, aud string) ca.JWTSVIDParams {
	return ca.JWTSVIDParams{ID: spiffeid.RequireFromPath(testTD, "/agent/a"), Audience: []string{aud}, Instance: "inst_1"}
}
