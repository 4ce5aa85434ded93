package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// forged returns tokens an attacker could build without writ's key.
func forged(t *testing.T, e *env, good string) map[string]string {
	parts := strings.Split(good, ".")
	var hdr map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
	json.Unmarshal(raw, &hdr)
	kid := hdr["kid"].(string)
	out := map[string]string{}
	out["alg none"] = b64(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + parts[1] + "."
	// HMAC confusion: the public key (as published) used as an HS256 secret.
	pub, _ := e.bundle.FindJWTAuthority(kid)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: der},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{jose.HeaderType: "at+jwt", "kid": kid}})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	jws, _ := hs.Sign(payload)
	out["HS256 with the public key"], _ = jws.CompactSerialize()
	// A valid ES256 signature by a key writ does not trust, claiming writ's kid.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: other},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{jose.HeaderType: "at+jwt", "kid": kid}})
	jws, _ = es.Sign(payload)
	out["foreign key, writ's kid"], _ = jws.CompactSerialize()
	out["tampered payload"] = parts[0] + "." + b64(map[string]any{"iss": testIssuer, "sub": "spiffe://writ.test/agent/root",
		"aud": "mail-api", "exp": time.Now().Add(time.Hour).Unix(), "jti": "x"}) + "." + parts[2]
	out["oversized"] = good + strings.Repeat("A", maxTokenBytes)
	out["two parts"] = parts[0] + "." + parts[1]
	out["garbage"] = "not a token"
	return out
}

func TestVerifyRefusesForgeries(t *testing.T) {
	e := newEnv(t)
	good := e.mint(t, nil)
	if _, err := e.ver.Verify(context.Background(), good, VerifyOptions{Audience: "mail-api"}); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	for name, tok := range forged(t, e, good) {
		t.Run(name, func(t *testing.T) {
			_, err := e.ver.Verify(context.Background(), tok, VerifyOptions{Audience: "mail-api"})
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) {
				t.Errorf("Verify = %v, want ErrMalformed or ErrSignature", err)
			}
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svid, _, err := e.ca.SignJWTSVID(ctx, caJWTSVID(e, "mail-api"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		tok     string
		opts    VerifyOptions
		wantErr error
	}{
		{"valid", e.mint(t, nil), VerifyOptions{Audience: "mail-api"}, nil},
		{"aud array", e.mint(t, func(c *Claims) { c.Audience = Audience{"x", "mail-api"} }), VerifyOptions{Audience: "mail-api"}, nil},
		{"wrong audience", e.mint(t, nil), VerifyOptions{Audience: "billing-api"}, ErrAudience},
		{"no audience to check", e.mint(t, nil), VerifyOptions{}, ErrAudience},
		{"wrong issuer", e.mint(t, func(c *Claims) { c.Issuer = "https://evil" }), VerifyOptions{Audience: "mail-api"}, ErrIssuer},
		{"not yet valid", e.mint(t, func(c *Claims) { c.NotBefore = time.Now().Add(time.Hour).Unix() }), VerifyOptions{Audience: "mail-api"}, ErrExpired},
		{"JWT-SVID is not an access token", svid, VerifyOptions{Audience: "mail-api"}, ErrType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ver.Verify(ctx, tc.tok, tc.opts)
			if !errors.Is(err, tc.wantErr) && !(tc.wantErr == nil && err == nil) {
				t.Errorf("Verify = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestVerifyExpiryLeeway(t *testing.T) {
	e := newEnv(t)
	exp := time.Now().Add(2 * time.Minute)
	tok := e.mint(t, func(c *Claims) { c.Expiry = exp.Unix() })
	for _, tc := range []struct {
		at   time.Time
		want error
	}{
		{exp.Add(-time.Second), nil},
		{exp.Add(20 * time.Second), nil}, // within the 30s leeway
		{exp.Add(31 * time.Second), ErrExpired},
	} {
		e.now = tc.at
		_, err := e.ver.Verify(context.Background(), tok, VerifyOptions{Audience: "mail-api"})
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("at exp%+v: Verify = %v, want %v", tc.at.Sub(exp), err, tc.want)
		}
	}
}

func TestVerifyCertBinding(t *testing.T) {
	e := newEnv(t)
	cert := selfSigned(t)
	other := selfSigned(t)
	tok := e.mint(t, func(c *Claims) { c.Cnf = &Confirmation{X5tS256: CertThumbprint(cert)} })
	for _, tc := range []struct {
		name string
		peer *x509.Certificate
		want error
	}{{"matching certificate", cert, nil}, {"no certificate", nil, ErrBinding}, {"other certificate", other, ErrBinding}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ver.Verify(context.Background(), tok, VerifyOptions{Audience: "mail-api", PeerCert: tc.peer})
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyDPoPBinding(t *testing.T) {
	e := newEnv(t)
	key := newDPoPKey(t)
	tok := e.mint(t, func(c *Claims) { c.Cnf = &Confirmation{JKT: key.jkt} })
	const url = "https://mail.example/v1/messages"
	now := time.Now()
	e.now = now
	replayed := key.proof(t, "GET", url, tok, now, nil)
	if _, err := e.ver.Verify(context.Background(), tok, VerifyOptions{Audience: "mail-api", HTTPMethod: "GET", HTTPURL: url, DPoPProof: replayed}); err != nil {
		t.Fatalf("valid DPoP proof refused: %v", err)
	}
	for _, tc := range []struct {
		name  string
		proof string
	}{
		{"no proof", ""},
		{"replayed proof", replayed},
		{"wrong method", key.proof(t, "POST", url, tok, now, nil)},
		{"wrong URL", key.proof(t, "GET", "https://mail.example/v1/other", tok, now, nil)},
		{"no ath", key.proof(t, "GET", url, "", now, nil)},
		{"ath of another token", key.proof(t, "GET", url, "other-token", now, nil)},
		{"stale iat", key.proof(t, "GET", url, tok, now.Add(-5*time.Minute), nil)},
		{"future iat", key.proof(t, "GET", url, tok, now.Add(time.Minute), nil)},
		{"another key", newDPoPKey(t).proof(t, "GET", url, tok, now, nil)},
		{"no jti", key.proof(t, "GET", url, tok, now, func(m map[string]any) { delete(m, "jti") })},
		{"the access token as proof", tok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ver.Verify(context.Background(), tok, VerifyOptions{Audience: "mail-api", HTTPMethod: "GET", HTTPURL: url, DPoPProof: tc.proof})
			if !errors.Is(err, ErrDPoP) {
				t.Errorf("Verify = %v, want ErrDPoP", err)
			}
		})
	}
	// The query string is not part of htu.
	p := key.proof(t, "GET", url, tok, now, nil)
	if _, err := e.ver.Verify(context.Background(), tok, VerifyOptions{Audience: "mail-api", HTTPMethod: "GET", HTTPURL: url + "?page=2", DPoPProof: p}); err != nil {
		t.Errorf("proof for the URL without query refused: %v", err)
	}
}

func TestVerifyRevocation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.mint(t, func(c *Claims) { c.ID = "at_x"; c.Task = "task_9"; c.Instance = "inst_9" })
	if _, err := e.ver.Verify(ctx, tok, VerifyOptions{Audience: "mail-api"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []store.Revocation{{Kind: store.RevokeTask, Value: "task_9"}, {Kind: store.RevokeToken, Value: "at_x"}} {
		e2 := newEnv(t)
		tok := e2.mint(t, func(c *Claims) { c.ID = "at_x"; c.Task = "task_9" })
		if _, _, err := e2.rev.Revoke(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := e2.ver.Verify(ctx, tok, VerifyOptions{Audience: "mail-api"}); !errors.Is(err, ErrRevoked) {
			t.Errorf("after revoking %s: Verify = %v, want ErrRevoked", r.Kind, err)
		}
	}
}

func TestVerifySingleUse(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.mint(t, func(c *Claims) { c.SingleUse = true })
	if _, err := e.ver.Verify(ctx, tok, VerifyOptions{Audience: "mail-api", SkipReplay: true}); err != nil {
		t.Fatalf("peek: %v", err)
	}
	if _, err := e.ver.Verify(ctx, tok, VerifyOptions{Audience: "mail-api"}); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := e.ver.Verify(ctx, tok, VerifyOptions{Audience: "mail-api"}); !errors.Is(err, ErrReplayed) {
		t.Errorf("second use: %v, want ErrReplayed", err)
	}
	if used := e.rec.OfType(audit.TokenUsed); len(used) != 1 || used[0].Task != "task_1" {
		t.Errorf("token.used events = %+v, want one with the task", used)
	}
}

func TestReplayCacheBounded(t *testing.T) {
	c := NewReplayCache(2)
	now := time.Now()
	for i, tc := range []struct {
		id        string
		exp       time.Time
		at        time.Time
		wantFirst bool
		wantErr   bool
	}{
		{"a", now.Add(time.Minute), now, true, false},
		{"a", now.Add(time.Minute), now, false, false},
		{"b", now.Add(2 * time.Minute), now, true, false},
		{"c", now.Add(time.Minute), now, false, true},                            // full: refuse, never forget a live id
		{"c", now.Add(3 * time.Minute), now.Add(90 * time.Second), true, false},  // a expired, room again
		{"a", now.Add(3 * time.Minute), now.Add(150 * time.Second), true, false}, // b expired too: a is new again
	} {
		first, err := c.Use(tc.id, tc.exp, tc.at)
		if first != tc.wantFirst || (err != nil) != tc.wantErr {
			t.Errorf("step %d Use(%s) = %v, %v; want %v, err %v", i, tc.id, first, err, tc.wantFirst, tc.wantErr)
		}
	}
}

func selfSigned(t *testing.T) *x509.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: bigOne(), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// TestSignatureCacheFollowsKeys: a cached signature counts only while its
// key is trusted, and claims checks still run on every presentation.
func TestSignatureCacheFollowsKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.mint(t, nil)
	for i := 0; i < 2; i++ {
		if _, err := e.ver.Verify(ctx, tok, VerifyOptions{Audience: "mail-api"}); err != nil {
			t.Fatalf("presentation %d: %v", i, err)
		}
	}
	if _, err := e.ver.Verify(ctx, tok, VerifyOptions{Audience: "billing"}); !errors.Is(err, ErrAudience) {
		t.Errorf("cached token for another audience: %v, want ErrAudience", err)
	}
	trusted := e.bundle.Get()
	e.bundle.Set(spiffebundle.New(testTD))
	if _, err := e.ver.Verify(ctx, tok, VerifyOptions{Audience: "mail-api"}); !errors.Is(err, ErrSignature) {
		t.Errorf("after its key left the bundle: %v, want ErrSignature", err)
	}
	e.bundle.Set(trusted)
	if _, err := e.ver.Verify(ctx, tok, VerifyOptions{Audience: "mail-api"}); err != nil {
		t.Errorf("key back: %v", err)
	}
}

// TestClaimsMapMatchesJSON: the map the issuer signs encodes exactly as
// the Claims struct does, so verifiers decode what was minted.
func TestClaimsMapMatchesJSON(t *testing.T) {
	c := &Claims{Issuer: "i", Subject: "s", Audience: Audience{"a"}, Expiry: 10, IssuedAt: 5, NotBefore: 4, ID: "j", ClientID: "s",
		Scope: "x y", Instance: "inst", Task: "t", Purpose: "p", OnBehalfOf: "u", Act: &Actor{Subject: "a2", Act: &Actor{Subject: "a3"}},
		Cnf: &Confirmation{JKT: "k"}, SingleUse: true, AuthorizationDetails: []json.RawMessage{json.RawMessage(`{"type":"t"}`)}}
	for _, cc := range []*Claims{c, {Issuer: "i", Subject: "s", Audience: Audience{"a", "b"}, Expiry: 1, ID: "j"}} {
		m, _ := claimsMap(cc)
		a, _ := json.Marshal(m)
		var fromMap, fromStruct Claims
		json.Unmarshal(a, &fromMap)
		b, _ := json.Marshal(cc)
		json.Unmarshal(b, &fromStruct)
		x, _ := json.Marshal(fromMap)
		y, _ := json.Marshal(fromStruct)
		if string(x) != string(y) {
			t.Errorf("map encoding %s != struct encoding %s", x, y)
		}
	}
}
