package access

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/writ-dev/writ/internal/broker"
)

// Credential is the upstream credential to put on an allowed access: a
// header value, or a query parameter. Its value is revealed only to be
// put on the wire; formatting a Credential never shows it.
type Credential struct {
	// Name is what the audit event records: the broker credential's name,
	// or "minted:AUDIENCE:JTI" for a minted token. Never the value.
	Name string
	// Header is the header to set, or Query the query parameter.
	Header string
	Query  string

	value string
}

// Reveal returns the value to inject.
func (c Credential) Reveal() string { return c.value }

// IsZero reports that there is nothing to inject.
func (c Credential) IsZero() bool { return c.Header == "" && c.Query == "" }

// String shows the credential without its value.
func (c Credential) String() string {
	switch {
	case c.Header != "":
		return c.Name + " in header " + c.Header
	case c.Query != "":
		return c.Name + " in query parameter " + c.Query
	}
	return c.Name
}

// GoString is String, so that %#v does not show the value either.
func (c Credential) GoString() string { return c.String() }

// credential returns the target's credential for an allowed access (a
// zero Credential when it has none), with its name set even when it
// fails.
func (e *Enforcer) credential(ctx context.Context, req *Request, out *Outcome) (Credential, error) {
	t := req.Target
	if m := t.Mint; m != nil {
		tok, jti, err := broker.Mint(ctx, e.c.Signer, broker.MintParams{
			Issuer: e.c.Issuer, Subject: req.Caller.SpiffeID, Instance: req.Caller.Instance, Task: out.Task.ID,
			Audience: m.Audience, Scopes: m.Scopes, TTL: m.TTL, Now: e.c.Now(),
		})
		name := "minted:" + m.Audience
		if err != nil {
			return Credential{Name: name}, err
		}
		return Credential{Name: name + ":" + jti, Header: "Authorization", value: "Bearer " + tok.Reveal()}, nil
	}
	cs := t.Credential
	if cs == nil {
		return Credential{}, nil
	}
	if e.c.Credentials == nil {
		return Credential{Name: cs.Name}, errors.New("no credential broker")
	}
	info, sec, err := e.c.Credentials.Get(ctx, cs.Name)
	if err != nil {
		if errors.Is(err, broker.ErrNotFound) {
			return Credential{Name: cs.Name}, fmt.Errorf("credential %s does not exist; add it with `writ credential put %s`", cs.Name, cs.Name)
		}
		return Credential{Name: cs.Name}, errors.New("the broker could not open it")
	}
	mode := cs.Inject
	if mode == "" {
		mode = info.Type
	}
	v := sec.Reveal()
	switch mode {
	case broker.Bearer:
		return Credential{Name: cs.Name, Header: "Authorization", value: "Bearer " + v}, nil
	case broker.Basic:
		return Credential{Name: cs.Name, Header: "Authorization", value: "Basic " + base64.StdEncoding.EncodeToString([]byte(v))}, nil
	case broker.Header:
		name := cs.Header
		if name == "" {
			name = "Authorization"
		}
		val := v
		if cs.Template != "" {
			val = strings.ReplaceAll(cs.Template, "{value}", v)
		}
		return Credential{Name: cs.Name, Header: name, value: val}, nil
	case broker.Query:
		if cs.Query == "" {
			return Credential{Name: cs.Name}, errors.New("query injection needs credential.query in the Service")
		}
		return Credential{Name: cs.Name, Query: cs.Query, value: v}, nil
	}
	return Credential{Name: cs.Name}, fmt.Errorf("unknown injection %q", mode)
}
