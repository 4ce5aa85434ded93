package ca

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/store"
)

var drafter = spiffeid.RequireFromString("spiffe://writ.test/agent/email-drafter")

func TestSignX509SVID(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		params       X509SVIDParams
		wantLifetime time.Duration
	}{
		{"default TTL", X509SVIDParams{ID: drafter, PublicKey: workloadKey(t).Public(), Instance: "inst_01JD5Z8Q"}, DefaultX509SVIDTTL},
		{"explicit TTL", X509SVIDParams{ID: drafter, PublicKey: workloadKey(t).Public(), TTL: 10 * time.Minute}, 10 * time.Minute},
		{"no instance", X509SVIDParams{ID: spiffeid.RequireFromString("spiffe://writ.test/svc"), PublicKey: workloadKey(t).Public()}, DefaultX509SVIDTTL},
		{"ed25519 workload key", X509SVIDParams{ID: drafter, PublicKey: edPub, Instance: "inst_2"}, DefaultX509SVIDTTL},
	}
	serials := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := e.clock.Now()
			chain, err := e.a.SignX509SVID(ctx, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 1 {
				t.Fatalf("self-signed CA returned a chain of %d, want the leaf alone", len(chain))
			}
			id, _, err := x509svid.Verify(chain, e.a.X509Bundle(), x509svid.WithTime(now))
			if err != nil {
				t.Fatalf("x509svid.Verify: %v", err)
			}
			if id != tt.params.ID {
				t.Errorf("verified ID %s, want %s", id, tt.params.ID)
			}
			leaf := chain[0]
			if got := leaf.Subject.SerialNumber; got != tt.params.Instance {
				t.Errorf("subject serialNumber %q, want %q", got, tt.params.Instance)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Errorf("leaf IsCA=%v BasicConstraintsValid=%v, want a non-CA with basic constraints", leaf.IsCA, leaf.BasicConstraintsValid)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("key usage %v, want digitalSignature only", leaf.KeyUsage)
			}
			if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
				t.Errorf("ext key usage %v, want server and client auth", leaf.ExtKeyUsage)
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != tt.params.ID.String() {
				t.Errorf("URI SANs %v, want only %s", leaf.URIs, tt.params.ID)
			}
			if !leaf.NotBefore.Equal(now.Add(-backdate)) {
				t.Errorf("NotBefore %s, want %s (backdated %v)", leaf.NotBefore, now.Add(-backdate), backdate)
			}
			if got := leaf.NotAfter.Sub(now); got != tt.wantLifetime {
				t.Errorf("lifetime %v, want %v", got, tt.wantLifetime)
			}
			if n := leaf.SerialNumber.BitLen(); n > 128 || n < 64 {
				t.Errorf("serial has %d bits, want a random 128-bit number", n)
			}
			if serials[leaf.SerialNumber.String()] {
				t.Error("serial number repeated")
			}
			serials[leaf.SerialNumber.String()] = true
			if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.params.PublicKey) {
				t.Error("leaf does not certify the workload key")
			}
		})
	}
}

func TestSignX509SVIDErrors(t *testing.T) {
	e := newEnv(t, nil)
	pub := workloadKey(t).Public()
	tests := []struct {
		name   string
		params X509SVIDParams
		want   string
	}{
		{"no ID", X509SVIDParams{PublicKey: pub}, "no SPIFFE ID"},
		{"other trust domain", X509SVIDParams{ID: spiffeid.RequireFromString("spiffe://other.test/a"), PublicKey: pub}, "not in trust domain writ.test"},
		{"no public key", X509SVIDParams{ID: drafter}, "no public key"},
		{"negative TTL", X509SVIDParams{ID: drafter, PublicKey: pub, TTL: -time.Second}, "negative"},
		{"instance with space", X509SVIDParams{ID: drafter, PublicKey: pub, Instance: "inst 1"}, "printable ASCII"},
		{"instance too long", X509SVIDParams{ID: drafter, PublicKey: pub, Instance: strings.Repeat("i", 65)}, "at most 64"},
		{"unsupported key", X509SVIDParams{ID: drafter, PublicKey: struct{}{}}, "sign X.509-SVID for spiffe://writ.test/agent/email-drafter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := e.a.SignX509SVID(context.Background(), tt.params)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SignX509SVID = %d certs, %v; want error containing %q", len(chain), err, tt.want)
			}
		})
	}
}

// jwtHeader returns the protected header fields of a compact JWS.
func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Protected
	out := map[string]any{"alg": h.Algorithm, "kid": h.KeyID}
	for k, v := range h.ExtraHeaders {
		out[string(k)] = v
	}
	return out
}

func TestSignJWTSVID(t *testing.T) {
	// go-spiffe validates against the real time, so the clock is real.
	e := newEnv(t, func(c *Config) { c.Now = time.Now })
	ctx := context.Background()
	activeKID := e.keyIDs(t, store.KeyJWT, store.KeyActive)[0]
	tests := []struct {
		name    string
		params  JWTSVIDParams
		wantTTL time.Duration
	}{
		{"one audience, default TTL", JWTSVIDParams{ID: drafter, Audience: []string{"https://mail.example"}, Instance: "inst_01JD"}, DefaultJWTSVIDTTL},
		{"two audiences", JWTSVIDParams{ID: drafter, Audience: []string{"a", "b"}, TTL: time.Minute}, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			token, exp, err := e.a.SignJWTSVID(ctx, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			svid, err := jwtsvid.ParseAndValidate(token, e.a.JWTBundle(), tt.params.Audience[len(tt.params.Audience)-1:])
			if err != nil {
				t.Fatalf("jwtsvid.ParseAndValidate: %v", err)
			}
			if svid.ID != tt.params.ID {
				t.Errorf("sub %s, want %s", svid.ID, tt.params.ID)
			}
			if !svid.Expiry.Equal(exp) {
				t.Errorf("exp claim %s, returned expiry %s", svid.Expiry, exp)
			}
			if d := exp.Sub(before); d < tt.wantTTL-time.Second || d > tt.wantTTL {
				t.Errorf("lifetime %v, want %v", d, tt.wantTTL)
			}
			h := jwtHeader(t, token)
			if h["alg"] != "ES256" || h["kid"] != activeKID || h["typ"] != "JWT" {
				t.Errorf("header %v, want alg ES256, kid %s, typ JWT", h, activeKID)
			}
			if got, _ := svid.Claims["agent_instance"].(string); got != tt.params.Instance {
				t.Errorf("agent_instance %q, want %q", got, tt.params.Instance)
			}
			if _, ok := svid.Claims["iat"]; !ok {
				t.Error("no iat claim")
			}
			if _, err := jwtsvid.ParseAndValidate(token, e.a.JWTBundle(), []string{"someone-else"}); err == nil {
				t.Error("token validated for an audience it was not issued to")
			}
		})
	}
}

func TestSignJWTSVIDErrors(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name   string
		params JWTSVIDParams
		want   string
	}{
		{"no ID", JWTSVIDParams{Audience: []string{"a"}}, "no SPIFFE ID"},
		{"other trust domain", JWTSVIDParams{ID: spiffeid.RequireFromString("spiffe://other.test/a"), Audience: []string{"a"}}, "not in trust domain"},
		{"no audience", JWTSVIDParams{ID: drafter}, "no audience"},
		{"empty audience", JWTSVIDParams{ID: drafter, Audience: []string{"a", ""}}, "audience 2 is empty"},
		{"negative TTL", JWTSVIDParams{ID: drafter, Audience: []string{"a"}, TTL: -1}, "negative"},
		{"bad instance", JWTSVIDParams{ID: drafter, Audience: []string{"a"}, Instance: "inst\n"}, "printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := e.a.SignJWTSVID(context.Background(), tt.params)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SignJWTSVID error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestSignJWT(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	now := e.clock.Now()
	claims := map[string]any{
		"iss":   "https://writ.test",
		"sub":   drafter.String(),
		"aud":   "https://api.example",
		"exp":   now.Add(5 * time.Minute).Unix(),
		"iat":   now.Unix(),
		"jti":   "tok_1",
		"scope": "mail:send",
	}
	token, err := e.a.SignJWT(ctx, "at+jwt", claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jwtHeader(t, token)
	if h["typ"] != "at+jwt" || h["alg"] != "ES256" {
		t.Errorf("header %v, want typ at+jwt, alg ES256", h)
	}
	kid, _ := h["kid"].(string)
	pub, ok := e.a.JWTBundle().FindJWTAuthority(kid)
	if !ok {
		t.Fatalf("kid %q is not in the JWT bundle", kid)
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := tok.Claims(pub, &got); err != nil {
		t.Fatalf("verify with the bundle key: %v", err)
	}
	want, _ := json.Marshal(claims)
	have, _ := json.Marshal(got)
	if string(want) != string(have) {
		t.Errorf("claims %s, want exactly %s", have, want)
	}

	keyEnd := e.storeKeys(t, store.KeyJWT)[0].NotAfter
	bad := []struct {
		name   string
		typ    string
		claims map[string]any
		want   string
	}{
		{"no typ", "", map[string]any{"exp": now.Add(time.Minute).Unix()}, "typ"},
		{"typ with space", "at jwt", map[string]any{"exp": now.Add(time.Minute).Unix()}, "printable"},
		{"no exp", "at+jwt", map[string]any{"sub": "x"}, "claim exp: missing"},
		{"exp as string", "at+jwt", map[string]any{"exp": "soon"}, "has type string"},
		{"exp as time", "at+jwt", map[string]any{"exp": now.Add(time.Minute)}, "time.Time"},
		{"exp in the past", "at+jwt", map[string]any{"exp": now.Add(-time.Minute).Unix()}, "not in the future"},
		{"exp after the key", "at+jwt", map[string]any{"exp": keyEnd.Unix() + 1}, "after jwt key"},
		{"fractional exp after the key", "at+jwt", map[string]any{"exp": float64(keyEnd.Unix()) + 0.5}, "after jwt key"},
		{"unencodable claim", "at+jwt", map[string]any{"exp": now.Add(time.Minute).Unix(), "f": func() {}}, "encode claims"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.a.SignJWT(ctx, tt.typ, tt.claims)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SignJWT error %v, want one containing %q", err, tt.want)
			}
		})
	}
	for _, exp := range []any{keyEnd.Unix(), float64(keyEnd.Unix()), json.Number("1e3"), jwt.NewNumericDate(now.Add(time.Minute))} {
		_, err := e.a.SignJWT(ctx, "at+jwt", map[string]any{"exp": exp})
		if _, isNumber := exp.(json.Number); isNumber {
			if err == nil || !strings.Contains(err.Error(), "not in the future") {
				t.Errorf("exp json.Number 1e3: %v, want 'not in the future'", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("exp %v (%T): %v", exp, exp, err)
		}
	}
}

func TestTTLCapping(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	ca := e.storeKeys(t, store.KeyX509CA)[0]
	jk := e.storeKeys(t, store.KeyJWT)[0]
	pub := workloadKey(t).Public()

	tests := []struct {
		name       string
		at         time.Duration // after start, without rotation
		ttl        time.Duration
		wantX509NA func(now time.Time) time.Time
		wantJWTExp func(now time.Time) time.Time
	}{
		{"zero means default", 0, 0,
			func(now time.Time) time.Time { return now.Add(DefaultX509SVIDTTL) },
			func(now time.Time) time.Time { return now.Add(DefaultJWTSVIDTTL) }},
		{"long TTL capped at key end", 0, 48 * time.Hour,
			func(time.Time) time.Time { return ca.NotAfter },
			func(time.Time) time.Time { return jk.NotAfter }},
		{"default capped late in key life", 23*time.Hour + 58*time.Minute, 0,
			func(time.Time) time.Time { return ca.NotAfter },
			func(time.Time) time.Time { return jk.NotAfter }},
	}
	start := e.clock.Now()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Set(start.Add(tt.at))
			now := e.clock.Now()
			chain, err := e.a.SignX509SVID(ctx, X509SVIDParams{ID: drafter, PublicKey: pub, TTL: tt.ttl})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := chain[0].NotAfter, tt.wantX509NA(now); !got.Equal(want) {
				t.Errorf("X.509-SVID NotAfter %s, want %s", got, want)
			}
			if chain[0].NotAfter.After(ca.NotAfter) {
				t.Errorf("X.509-SVID outlives its CA key")
			}
			_, exp, err := e.a.SignJWTSVID(ctx, JWTSVIDParams{ID: drafter, Audience: []string{"a"}, TTL: tt.ttl})
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.wantJWTExp(now); !exp.Equal(want) {
				t.Errorf("JWT-SVID exp %s, want %s", exp, want)
			}
			if exp.After(jk.NotAfter) {
				t.Errorf("JWT-SVID outlives its key")
			}
		})
	}

	t.Run("expired key refuses", func(t *testing.T) {
		e.clock.Set(ca.NotAfter.Add(time.Second))
		if _, err := e.a.SignX509SVID(ctx, X509SVIDParams{ID: drafter, PublicKey: pub}); err == nil || !strings.Contains(err.Error(), "Run") {
			t.Errorf("SignX509SVID with an expired CA: %v, want an error naming the rotation loop", err)
		}
		if _, _, err := e.a.SignJWTSVID(ctx, JWTSVIDParams{ID: drafter, Audience: []string{"a"}}); err == nil {
			t.Error("SignJWTSVID with an expired key succeeded")
		}
	})
}
