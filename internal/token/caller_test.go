package token

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/store"
)

func TestAuthenticateJWTSVID(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now()
	auth := &Authenticator{Bundle: e.bundle, Audience: testIssuer, Revocations: e.rev, Now: func() time.Time { return now }}
	sign := func(id, aud, inst string) string {
		s, _, err := e.ca.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: spiffeid.RequireFromString(id), Audience: []string{aud}, Instance: inst})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign("spiffe://writ.test/agent/a", testIssuer, "inst_1")
	c, err := auth.JWTSVID(good)
	if err != nil || c.ID.String() != "spiffe://writ.test/agent/a" || c.Instance != "inst_1" || c.Via != ViaJWTSVID {
		t.Fatalf("JWTSVID = %+v, %v", c, err)
	}
	for _, tc := range []struct {
		name  string
		raw   string
		setup func()
	}{
		{"wrong audience", sign("spiffe://writ.test/agent/a", "other", "inst_1"), nil},
		{"empty", "", nil},
		{"expired by writ's clock (cached)", good, func() { now = now.Add(10 * time.Minute) }},
		{"expired by writ's clock (fresh)", sign("spiffe://writ.test/agent/a", testIssuer, "inst_2"), nil},
		{"revoked instance", sign("spiffe://writ.test/agent/b", testIssuer, "inst_bad"), func() {
			now = time.Now()
			e.rev.Revoke(ctx, store.Revocation{Kind: store.RevokeInstance, Value: "inst_bad"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			if _, err := auth.JWTSVID(tc.raw); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("JWTSVID = %v, want ErrUnauthenticated", err)
			}
		})
	}
}
