package workload

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestRenewAtIsHalfLifeWithJitter(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(time.Hour)
	seen := map[time.Time]bool{}
	for range 200 {
		r := renewAt(nb, na)
		// Half-life, pulled earlier by at most a tenth of the life.
		if r.After(nb.Add(30*time.Minute)) || r.Before(nb.Add(24*time.Minute)) {
			t.Fatalf("renewAt = %v, want within [24m, 30m] after NotBefore", r.Sub(nb))
		}
		seen[r] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct renewal times in 200 draws: no jitter", len(seen))
	}
	if r := renewAt(nb, nb.Add(5*time.Nanosecond)); r.Before(nb) {
		t.Errorf("tiny lifetime renewAt %v before NotBefore", r)
	}
}

func TestCheckHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		md   metadata.MD
		ok   bool
	}{
		{"missing", nil, false},
		{"false", metadata.Pairs(HeaderKey, "false"), false},
		{"twice", metadata.Pairs(HeaderKey, "true", HeaderKey, "true"), false},
		{"true", metadata.Pairs(HeaderKey, "true"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tc.md)
			}
			err := checkHeader(ctx)
			if tc.ok != (err == nil) {
				t.Fatalf("checkHeader = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && status.Code(err) != codes.InvalidArgument {
				t.Errorf("code %v, want InvalidArgument", status.Code(err))
			}
		})
	}
}

func TestSweepDropsExpired(t *testing.T) {
	s := &Server{x509: map[string]*x509Entry{}, jwt: map[string]*jwtEntry{}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.x509["old"] = &x509Entry{expires: now.Add(-time.Second)}
	s.x509["live"] = &x509Entry{expires: now.Add(time.Hour)}
	s.jwt["old"] = &jwtEntry{expires: now}
	s.inserts = 1023 // the next insert sweeps
	s.sweepLocked(now)
	if _, ok := s.x509["old"]; ok {
		t.Error("expired X.509 entry kept")
	}
	if _, ok := s.jwt["old"]; ok {
		t.Error("expired JWT entry kept")
	}
	if _, ok := s.x509["live"]; !ok {
		t.Error("live entry dropped")
	}
}
