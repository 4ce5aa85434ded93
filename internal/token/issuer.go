package token

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/task"
)

// Signer signs access tokens. *ca.Authority implements it.
type Signer interface {
	SignJWT(ctx context.Context, typ string, claims map[string]any) (string, error)
}

// Tasks is what the issuer needs of the task service.
type Tasks interface {
	// Get returns a task.
	Get(ctx context.Context, id string) (store.Task, error)
	// Charge counts one mint against an open task's call budget; it
	// fails with store.ErrPrecondition when the task is not open or its
	// budget is used up.
	Charge(ctx context.Context, id string) (store.Task, error)
}

// Decider answers policy questions. *policy.Engine implements it.
type Decider interface {
	Decide(ctx context.Context, req *policy.Request) policy.Decision
}

// Revoker pulls the kill switch for one token. *revoke.List implements it.
type Revoker interface {
	Revocations
	Revoke(ctx context.Context, r store.Revocation) (store.Revocation, bool, error)
}

// IssuerConfig configures an [Issuer].
type IssuerConfig struct {
	// Issuer is the iss of every token and the base of the endpoint URLs
	// (writ's server.public_url). Required.
	Issuer   string
	Signer   Signer
	Tasks    Tasks
	Policy   Decider
	Auth     *Authenticator
	Verifier *Verifier
	Revoker  Revoker
	Emitter  audit.Emitter
	Log      *slog.Logger
	// Lifetime is the default token lifetime; default 5m. Policy
	// (max_ttl) and the task's remaining life cap it.
	Lifetime time.Duration
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// JWKS returns the JSON Web Key Set document served at /jwks.json.
	JWKS func() ([]byte, error)
}

// Issuer mints access tokens by token exchange and serves the OAuth
// endpoints. It is safe for concurrent use.
type Issuer struct {
	c        IssuerConfig
	tokenURL string
	replay   *ReplayCache // DPoP proof jti at the token endpoint
}

// NewIssuer checks c and returns an issuer.
func NewIssuer(c IssuerConfig) (*Issuer, error) {
	switch {
	case c.Issuer == "":
		return nil, errors.New("token issuer: no issuer URL configured (server.public_url)")
	case c.Signer == nil, c.Tasks == nil, c.Policy == nil, c.Auth == nil, c.Verifier == nil, c.Revoker == nil, c.Emitter == nil, c.JWKS == nil:
		return nil, errors.New("token issuer: signer, tasks, policy, authenticator, verifier, revoker, emitter and JWKS are all required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Lifetime <= 0 {
		c.Lifetime = defaultLifetime
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Issuer{c: c, tokenURL: strings.TrimSuffix(c.Issuer, "/") + "/oauth2/token", replay: NewReplayCache(0)}, nil
}

// Response is a successful token exchange (RFC 8693 §2.2.1).
type Response struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"` // "Bearer" or "DPoP"
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
	// Claims are the minted token's claims (not part of the wire
	// response).
	Claims *Claims `json:"-"`
}

// Binding is the key a minted token is bound to.
type Binding struct {
	// JKT is the DPoP key thumbprint (from a verified proof).
	JKT string
	// Cert is the mTLS client certificate.
	Cert bool
}

// Exchange mints an access token for caller (already authenticated) per
// req. jkt, when not empty, is the thumbprint of a verified DPoP proof the
// token is bound to; otherwise a caller authenticated by mTLS gets a
// certificate-bound token. Errors are *Error; every refusal is audited.
func (i *Issuer) Exchange(ctx context.Context, caller Caller, req *ExchangeRequest, jkt, source string) (*Response, error) {
	start := i.c.Now()
	resp, denial, q, err := i.exchange(ctx, caller, req, jkt)
	if err != nil {
		reason := err.Error()
		var oe *Error
		if errors.As(err, &oe) {
			reason = oe.Code + ": " + oe.Description
		}
		e := audit.Event{Type: audit.TokenDenied, SpiffeID: caller.ID.String(), Instance: caller.Instance, Task: req.Task,
			Target: req.Audience, Action: "token_exchange", Decision: "deny", Reason: reason, Source: source,
			Policy: denial.Policy, Rule: denial.Rule, LatencyUS: i.c.Now().Sub(start).Microseconds(),
			Details: map[string]string{"scope": strings.Join(req.Scopes, " ")}}
		if q != nil {
			// The policy decided (or allowed, and the budget refused):
			// record its effect and what it saw, for `writ policy replay`.
			e.Details["policy_effect"] = string(denial.Effect)
			decisionDetails(q, e.Details)
		}
		if emitErr := i.c.Emitter.Emit(ctx, e); emitErr != nil {
			i.c.Log.ErrorContext(ctx, "audit denied token exchange", "spiffe_id", caller.ID.String(), "task", req.Task, "error", emitErr)
		}
		if oe == nil {
			i.c.Log.ErrorContext(ctx, "token exchange failed", "spiffe_id", caller.ID.String(), "task", req.Task, "error", err)
			return nil, oauthErr(500, CodeServerError, "the token could not be issued; see the server log")
		}
		return nil, oe
	}
	return resp, nil
}

// decisionDetails records in details what the policy decision on q saw
// beyond the exchange itself (caller labels, the task's purpose and calls),
// so that `writ policy replay` can decide it again (#16).
func decisionDetails(q *policy.Request, details map[string]string) {
	if l := audit.EncodeLabels(q.Subject.Labels); l != "" {
		details["subject_labels"] = l
	}
	details["task_purpose"] = q.Task.Purpose
	details["task_calls"] = strconv.FormatInt(q.Task.Calls, 10)
}

// exchange mints the token. q is the request policy decided, nil when the
// exchange was refused before policy was asked.
func (i *Issuer) exchange(ctx context.Context, caller Caller, req *ExchangeRequest, jkt string) (_ *Response, _ policy.Decision, q *policy.Request, _ error) {
	var none policy.Decision
	now := i.c.Now()
	t, err := i.c.Tasks.Get(ctx, req.Task)
	if errors.Is(err, store.ErrNotFound) {
		return nil, none, nil, oauthErr(400, CodeInvalidGrant, "task %q does not exist; open one with POST /v1/tasks", clip(req.Task))
	}
	if err != nil {
		return nil, none, nil, err
	}
	if err := task.Usable(t, caller.ID.String(), caller.Instance); err != nil {
		return nil, none, nil, oauthErr(400, CodeInvalidGrant, "%v", err)
	}
	if t.State != store.TaskOpen {
		return nil, none, nil, oauthErr(400, CodeInvalidGrant, "task %s is %s, not open", t.ID, t.State)
	}
	if !now.Before(t.ExpiresAt) {
		return nil, none, nil, oauthErr(400, CodeInvalidGrant, "task %s expired at %s", t.ID, t.ExpiresAt.Format(time.RFC3339))
	}
	if r, dead := i.c.Revoker.Check(revokeTarget(t)); dead {
		return nil, none, nil, oauthErr(400, CodeInvalidGrant, "task %s is dead: its %s was revoked", t.ID, r.Kind)
	}
	if !slices.Contains(t.Audiences, req.Audience) {
		return nil, none, nil, oauthErr(400, CodeInvalidTarget, "audience %q is not granted to task %s (granted: %s)",
			clip(req.Audience), t.ID, strings.Join(t.Audiences, ", "))
	}
	scopes := req.Scopes
	if len(scopes) == 0 {
		scopes = t.Scopes
	}
	for _, s := range scopes {
		if !slices.Contains(t.Scopes, s) {
			return nil, none, nil, oauthErr(400, CodeInvalidScope, "scope %q is not granted to task %s (granted: %s); an exchange never widens its task",
				clip(s), t.ID, strings.Join(t.Scopes, " "))
		}
	}
	scopes = dedupe(scopes)
	act, err := i.actor(ctx, req)
	if err != nil {
		return nil, none, nil, err
	}
	q = &policy.Request{
		Kind:     policy.KindToken,
		Subject:  policy.Subject{SpiffeID: caller.ID.String(), Labels: caller.Labels},
		Instance: caller.Instance,
		Task:     policy.Task{ID: t.ID, Purpose: t.Purpose, OnBehalfOf: t.OnBehalfOf, Calls: t.Calls},
		Token:    policy.TokenRequest{Audience: req.Audience, Scopes: scopes},
		Now:      now,
	}
	d := i.c.Policy.Decide(ctx, q)
	switch d.Effect {
	case policy.Allow:
	case policy.ApprovalRequired:
		return nil, d, q, oauthErr(403, CodeAccessDenied, "policy %s rule %s requires approval for this token; ask for it when opening the task", d.Policy, d.Rule)
	default:
		return nil, d, q, oauthErr(403, CodeAccessDenied, "policy denied the token: %s", strings.Join(d.Reasons, "; "))
	}
	if t, err = i.c.Tasks.Charge(ctx, t.ID); errors.Is(err, store.ErrPrecondition) {
		return nil, d, q, oauthErr(403, CodeAccessDenied, "task %s cannot mint: it is %s or its budget of %d calls is used up", t.ID, t.State, t.Budget)
	} else if err != nil {
		return nil, d, q, err
	}
	exp := now.Add(i.c.Lifetime)
	if m := time.Duration(d.Obligations.MaxTTL); m > 0 && now.Add(m).Before(exp) {
		exp = now.Add(m)
	}
	if t.ExpiresAt.Before(exp) {
		exp = t.ExpiresAt
	}
	if exp.Unix() <= now.Unix() {
		return nil, d, q, oauthErr(400, CodeInvalidGrant, "task %s expires within a second", t.ID)
	}
	c := &Claims{
		Issuer: i.c.Issuer, Subject: caller.ID.String(), Audience: Audience{req.Audience},
		Expiry: exp.Unix(), IssuedAt: now.Unix(), ID: "at_" + rand.Text(), ClientID: caller.ID.String(),
		Scope: strings.Join(scopes, " "), Instance: caller.Instance, Task: t.ID, Purpose: t.Purpose,
		OnBehalfOf: t.OnBehalfOf, Act: act, SingleUse: req.SingleUse, AuthorizationDetails: req.AuthorizationDetails,
	}
	tokenType := "Bearer"
	switch {
	case jkt != "":
		c.Cnf, tokenType = &Confirmation{JKT: jkt}, "DPoP"
	case caller.Cert != nil:
		c.Cnf = &Confirmation{X5tS256: CertThumbprint(caller.Cert)}
	}
	m, err := claimsMap(c)
	if err != nil {
		return nil, d, q, err
	}
	raw, err := i.c.Signer.SignJWT(ctx, AccessTokenType, m)
	if err != nil {
		return nil, d, q, err
	}
	binding := "bearer"
	if c.Cnf != nil && c.Cnf.JKT != "" {
		binding = "dpop"
	} else if c.Cnf != nil {
		binding = "mtls"
	}
	ev := audit.Event{Type: audit.TokenMinted, SpiffeID: c.Subject, Instance: c.Instance, Task: t.ID, OnBehalfOf: t.OnBehalfOf,
		Target: req.Audience, Action: "token_exchange", Decision: "allow", Policy: d.Policy, Rule: d.Rule, Credential: c.ID,
		Details: map[string]string{"scope": c.Scope, "binding": binding, "expires": c.ExpiresAt().Format(time.RFC3339),
			"single_use": fmt.Sprint(c.SingleUse), "authenticated_by": caller.Via}}
	decisionDetails(q, ev.Details)
	if act != nil {
		ev.Details["actor"] = act.Subject
	}
	if err := i.c.Emitter.Emit(ctx, ev); err != nil {
		// Fail closed: a token that is not on the record is not handed out.
		return nil, d, q, fmt.Errorf("audit token %s: %w", c.ID, err)
	}
	return &Response{AccessToken: raw, IssuedTokenType: TypeAccessToken, TokenType: tokenType,
		ExpiresIn: exp.Unix() - now.Unix(), Scope: c.Scope, Claims: c}, d, q, nil
}

// actor verifies the actor token, if any, and returns the act claim:
// the actor's identity, nesting the actor token's own act chain.
func (i *Issuer) actor(ctx context.Context, req *ExchangeRequest) (*Actor, error) {
	switch req.ActorTokenType {
	case "":
		return nil, nil
	case TypeJWT:
		a, err := i.c.Auth.JWTSVID(req.ActorToken)
		if err != nil {
			return nil, oauthErr(400, CodeInvalidGrant, "actor_token: %v", err)
		}
		return &Actor{Subject: a.ID.String(), Instance: a.Instance}, nil
	default: // TypeAccessToken, checked by ParseExchange
		c, err := i.c.Verifier.parseCached(req.ActorToken)
		if err == nil {
			err = i.c.Verifier.introspect(c)
		}
		if err != nil {
			return nil, oauthErr(400, CodeInvalidGrant, "actor_token: %v", err)
		}
		return &Actor{Subject: c.Subject, Instance: c.Instance, Act: c.Act}, nil
	}
}

func revokeTarget(t store.Task) revoke.Target {
	return revoke.Target{SpiffeID: t.SpiffeID, Instance: t.Instance, Task: t.ID}
}

// claimsMap returns c as the claim set SignJWT encodes (the same JSON as
// Claims' own encoding, without a marshal round trip).
func claimsMap(c *Claims) (map[string]any, error) {
	m := make(map[string]any, 20)
	m["iss"], m["sub"], m["exp"], m["iat"], m["jti"], m["client_id"] = c.Issuer, c.Subject, c.Expiry, c.IssuedAt, c.ID, c.ClientID
	if len(c.Audience) == 1 {
		m["aud"] = c.Audience[0]
	} else {
		m["aud"] = []string(c.Audience)
	}
	opt := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	opt("scope", c.Scope)
	opt("agent_instance", c.Instance)
	opt("task", c.Task)
	opt("purpose", c.Purpose)
	opt("on_behalf_of", c.OnBehalfOf)
	if c.NotBefore != 0 {
		m["nbf"] = c.NotBefore
	}
	if c.Act != nil {
		m["act"] = c.Act
	}
	if c.Cnf != nil {
		m["cnf"] = c.Cnf
	}
	if c.SingleUse {
		m["single_use"] = true
	}
	if len(c.AuthorizationDetails) > 0 {
		m["authorization_details"] = c.AuthorizationDetails
	}
	return m, nil
}

func dedupe(s []string) []string {
	out := make([]string, 0, len(s))
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
