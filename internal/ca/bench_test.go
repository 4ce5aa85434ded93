package ca

import (
	"context"
	"testing"
	"time"
)

// BenchmarkSignX509SVID measures X.509-SVID issuance including the
// caller's P-256 key generation, on all GOMAXPROCS cores.
func BenchmarkSignX509SVID(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.Now = time.Now })
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k, err := generateKey()
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := e.a.SignX509SVID(ctx, X509SVIDParams{ID: drafter, PublicKey: k.Public(), Instance: "inst_01JD5Z8Q"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSignJWTSVID measures JWT-SVID issuance on all GOMAXPROCS cores.
func BenchmarkSignJWTSVID(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.Now = time.Now })
	ctx := context.Background()
	p := JWTSVIDParams{ID: drafter, Audience: []string{"https://mail.example"}, Instance: "inst_01JD5Z8Q"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := e.a.SignJWTSVID(ctx, p); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSignJWT measures general JWT signing (access tokens).
func BenchmarkSignJWT(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.Now = time.Now })
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			claims := map[string]any{"sub": drafter.String(), "aud": "api", "exp": time.Now().Add(time.Minute).Unix(), "scope": "mail:send"}
			if _, err := e.a.SignJWT(ctx, "at+jwt", claims); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
