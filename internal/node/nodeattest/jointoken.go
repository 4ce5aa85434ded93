package nodeattest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// JoinTokenAttestor is the name of the join token attestor.
const JoinTokenAttestor = "join_token"

// tokenPrefix starts every join token, so that a leaked one is
// recognisable (and secret scanners can find it).
const tokenPrefix = "wjt_"

// NewJoinToken returns a fresh join token secret and its record, valid
// for ttl from now. node, when set, is the name the joining node gets.
// The secret is shown once; only its hash is stored.
func NewJoinToken(now time.Time, ttl time.Duration, node string) (string, store.JoinToken, error) {
	if ttl <= 0 {
		return "", store.JoinToken{}, fmt.Errorf("join token TTL %v: must be positive", ttl)
	}
	if node != "" {
		if err := CheckName(node); err != nil {
			return "", store.JoinToken{}, err
		}
	}
	secret := tokenPrefix + rand.Text()
	h := hashToken(secret)
	return secret, store.JoinToken{
		ID:        "jt_" + hex.EncodeToString(h[:6]),
		Hash:      h,
		Node:      node,
		CreatedAt: now.UTC(),
		ExpiresAt: now.Add(ttl).UTC(),
	}, nil
}

func hashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// JoinTokens verifies join tokens: a token is good once, before it
// expires. The store makes use atomic, so two nodes racing with one token
// cannot both join.
type JoinTokens struct {
	Store store.JoinTokens
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
}

type joinTokenPayload struct {
	Token string `json:"token"`
}

// Name implements Verifier and Prover.
func (JoinTokens) Name() string { return JoinTokenAttestor }

// Verify implements Verifier.
func (j JoinTokens) Verify(ctx context.Context, req Request) (Result, error) {
	var p joinTokenPayload
	if err := decodeStrict(req.Payload, &p); err != nil {
		return Result{}, err
	}
	if !strings.HasPrefix(p.Token, tokenPrefix) || len(p.Token) > 128 {
		return Result{}, fmt.Errorf("%w: join token: not a writ join token (create one with `writ node token create`)", ErrRefused)
	}
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	// The name is recorded as the token's user; a token bound to a name
	// gives that name whatever the node asked for.
	t, err := j.Store.UseJoinToken(ctx, hashToken(p.Token), req.Name, now())
	if errors.Is(err, store.ErrTokenUnusable) {
		return Result{}, fmt.Errorf("%w: join token: unknown, expired or already used (tokens are single-use; create a new one with `writ node token create`)", ErrRefused)
	}
	if err != nil {
		return Result{}, fmt.Errorf("join token: %w", err)
	}
	return Result{Name: t.Node, Selectors: []store.Selector{{Type: JoinTokenAttestor, Value: "id:" + t.ID}}}, nil
}

// JoinTokenProver presents a join token.
type JoinTokenProver struct{ Token string }

// Name implements Prover.
func (JoinTokenProver) Name() string { return JoinTokenAttestor }

// Prove implements Prover: the token is the evidence (the TLS channel to
// the server, whose certificate the node checks, protects it).
func (p JoinTokenProver) Prove(context.Context, Challenge) ([]byte, error) {
	if !strings.HasPrefix(p.Token, tokenPrefix) {
		return nil, fmt.Errorf("join token: does not start with %q; pass the token `writ node token create` printed", tokenPrefix)
	}
	return json.Marshal(joinTokenPayload(p))
}

// decodeStrict decodes one JSON object into v, refusing unknown fields,
// trailing data and oversized payloads.
func decodeStrict(b []byte, v any) error {
	if len(b) > 64<<10 {
		return fmt.Errorf("%w: payload of %d bytes is larger than 64 KiB", ErrRefused, len(b))
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: malformed payload: %v", ErrRefused, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: malformed payload: data after the object", ErrRefused)
	}
	return nil
}
