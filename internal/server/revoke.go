package server

import (
	"context"
	"errors"
	"time"

	"github.com/writ-dev/writ/internal/api"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store"
)

// tokenLookback is how far back the kill switch looks for the mint of a
// token it is asked to revoke by jti. Access tokens live 5 minutes (policy
// may only shorten that), so a token minted earlier has expired and its
// revocation would change nothing.
const tokenLookback = time.Hour

// revokeTargets tells the admin API's kill switch what exists.
type revokeTargets struct{ s *Server }

var _ api.RevokeTargets = revokeTargets{}

func (t revokeTargets) Token(raw string) (string, time.Time, error) {
	c, err := t.s.tok.verifier.ParseOwn(raw)
	if err != nil {
		return "", time.Time{}, err
	}
	return c.ID, c.ExpiresAt(), nil
}

func (t revokeTargets) Find(ctx context.Context, kind, value string) (bool, time.Time, error) {
	s := t.s
	switch kind {
	case store.RevokeSpiffeID:
		for _, e := range s.registry.List() {
			if e.SpiffeID == value {
				return true, time.Time{}, nil
			}
		}
		tasks, err := s.tok.tasks.List(ctx, store.TaskFilter{SpiffeID: value})
		return len(tasks) > 0, time.Time{}, err
	case store.RevokeInstance:
		_, err := s.db.GetInstance(ctx, value)
		return found(err)
	case store.RevokeTask:
		_, err := s.tok.tasks.Get(ctx, value)
		return found(err)
	case store.RevokeToken:
		return t.findToken(ctx, value)
	}
	return false, time.Time{}, nil
}

func found(err error) (bool, time.Time, error) {
	if errors.Is(err, store.ErrNotFound) {
		return false, time.Time{}, nil
	}
	return err == nil, time.Time{}, err
}

// findToken looks for the token.minted event of jti and returns the
// token's expiry.
func (t revokeTargets) findToken(ctx context.Context, jti string) (bool, time.Time, error) {
	q := auditlog.Query{Type: audit.TokenMinted, Since: t.s.now().Add(-tokenLookback), Limit: 1000}
	for {
		recs, err := t.s.auditLog.Backend().SearchRecords(ctx, q)
		if err != nil {
			return false, time.Time{}, err
		}
		for _, rec := range recs {
			e, err := rec.Event()
			if err != nil {
				return false, time.Time{}, err
			}
			if e.Credential == jti {
				exp, _ := time.Parse(time.RFC3339, e.Details["expires"])
				if exp.IsZero() {
					exp = e.Time.Add(tokenLookback)
				}
				return true, exp, nil
			}
		}
		if len(recs) < q.Limit {
			return false, time.Time{}, nil
		}
		q.Before = recs[len(recs)-1].Index
	}
}
