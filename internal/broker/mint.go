package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
)

// JWTSigner signs JWTs with writ's current JWT key (ca.Authority does).
type JWTSigner interface {
	SignJWT(ctx context.Context, typ string, claims map[string]any) (string, error)
}

// MintParams describe a writ access token minted for an internal service.
type MintParams struct {
	Issuer   string
	Subject  string // the caller's SPIFFE ID
	Instance string // agent_instance claim
	Task     string // task claim, when the call belongs to a task
	Audience string // the Service's audience
	Scopes   []string
	TTL      time.Duration
	Now      time.Time
}

// MaxMintTTL bounds the lifetime of a minted token.
const MaxMintTTL = time.Hour

// Mint signs an RFC 9068 style access token (typ at+jwt) for p with s. The
// token is returned as a Secret so that it is never logged.
func Mint(ctx context.Context, s JWTSigner, p MintParams) (Secret, string, error) {
	if s == nil {
		return Secret{}, "", errors.New("mint access token: no JWT signer configured")
	}
	if p.Audience == "" || p.Subject == "" {
		return Secret{}, "", errors.New("mint access token: audience and subject are required")
	}
	if p.TTL <= 0 || p.TTL > MaxMintTTL {
		return Secret{}, "", fmt.Errorf("mint access token for %s: lifetime %v must be between 1s and %v", p.Audience, p.TTL, MaxMintTTL)
	}
	jti := "at_" + rand.Text()
	claims := map[string]any{
		"iss": p.Issuer, "sub": p.Subject, "aud": p.Audience, "jti": jti,
		"iat": p.Now.Unix(), "nbf": p.Now.Unix(), "exp": p.Now.Add(p.TTL).Unix(),
		"client_id": p.Subject,
	}
	if len(p.Scopes) > 0 {
		claims["scope"] = strings.Join(p.Scopes, " ")
	}
	if p.Instance != "" {
		claims["agent_instance"] = p.Instance
	}
	if p.Task != "" {
		claims["task"] = p.Task
	}
	tok, err := s.SignJWT(ctx, "at+jwt", claims)
	if err != nil {
		return Secret{}, "", fmt.Errorf("mint access token for %s: %w", p.Audience, err)
	}
	return Secret{b: []byte(tok)}, jti, nil
}
