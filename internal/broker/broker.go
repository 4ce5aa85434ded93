// Package broker is writ's credential broker: it keeps the upstream
// credentials that the access proxy injects into allowed requests, sealed at
// rest with AES-256-GCM under the key-encryption key ([keys.Sealer]), and it
// mints short-lived writ access tokens for internal services that trust
// writ's JWKS.
//
// Values only leave the broker as a [Secret], which redacts itself in every
// printed, logged or encoded form; the admin API and the CLI see [Info]
// (name, type, version, times), never a value. The proxy asks for a value
// per request with [Broker.Get], served from a small in-memory cache that a
// put, rotate or delete through the same broker invalidates at once.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// Type says what shape a credential value has and how the proxy injects it
// by default.
type Type string

// Credential types.
const (
	// Bearer values are sent as "Authorization: Bearer VALUE".
	Bearer Type = "bearer"
	// Basic values are "user:password", sent as HTTP basic authentication.
	Basic Type = "basic"
	// Header values are sent in a header the Service names, optionally
	// through a template such as "token {value}".
	Header Type = "header"
	// Query values are sent as a query parameter the Service names.
	Query Type = "query"
)

// Types lists the credential types, for messages.
var Types = []Type{Bearer, Basic, Header, Query}

// ParseType checks s names a credential type.
func ParseType(s string) (Type, error) {
	for _, t := range Types {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("credential type %q: use bearer, basic, header or query", s)
}

// MaxValue is the largest credential value accepted, in bytes.
const MaxValue = 16 << 10

// Errors callers may test for with errors.Is.
var (
	ErrNotFound = store.ErrNotFound
	ErrExists   = store.ErrExists
)

// Info is everything about a credential except its value.
type Info struct {
	Name      string
	Type      Type
	Version   int64
	Actor     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Config configures a [Broker]. Store and Sealer are required.
type Config struct {
	Store  store.Credentials
	Sealer *keys.Sealer
	// Emitter records credential changes (never values). Defaults to
	// discarding.
	Emitter audit.Emitter
	Log     *slog.Logger
	Now     func() time.Time
	// CacheTTL bounds how long an unsealed value is reused before the
	// store is read again (changes made by another process show up within
	// it). Default 10s; negative disables the cache.
	CacheTTL time.Duration
}

// Broker stores and hands out upstream credentials. It is safe for
// concurrent use.
type Broker struct {
	c Config

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	info    Info
	secret  Secret
	fetched time.Time
}

// New returns a Broker.
func New(c Config) (*Broker, error) {
	if c.Store == nil || c.Sealer == nil {
		return nil, errors.New("create credential broker: store and sealer are required")
	}
	if c.Emitter == nil {
		c.Emitter = audit.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = 10 * time.Second
	}
	return &Broker{c: c, cache: map[string]cached{}}, nil
}

// ad binds a sealed value to its credential name, so that one credential's
// ciphertext cannot be swapped in for another's.
func ad(name string) []byte { return []byte("writ credential " + name) }

// Validate checks a name, type and value before they are stored. Its
// messages never include the value.
func Validate(name string, typ Type, v Secret) error {
	if !resource.ValidName(name) {
		return fmt.Errorf("credential name %q: use 1-128 lower-case letters, digits, '.', '_' or '-', starting and ending with a letter or digit", name)
	}
	if _, err := ParseType(string(typ)); err != nil {
		return err
	}
	if v.IsZero() {
		return fmt.Errorf("credential %s: the value is empty; pass it with --value-stdin, --from-file or --from-env", name)
	}
	if v.Len() > MaxValue {
		return fmt.Errorf("credential %s: the value is %d bytes, more than the %d allowed", name, v.Len(), MaxValue)
	}
	for _, c := range v.b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("credential %s: the value holds a control character (newline?); strip trailing newlines or use --from-file with the exact value", name)
		}
	}
	if typ == Basic && !strings.Contains(v.Reveal(), ":") {
		return fmt.Errorf("credential %s: a basic credential is USER:PASSWORD and this value has no ':'", name)
	}
	return nil
}

// Put stores a new credential; it fails with [ErrExists] if the name is
// taken (use Rotate to replace a value).
func (b *Broker) Put(ctx context.Context, actor, name string, typ Type, v Secret) (Info, error) {
	if err := Validate(name, typ, v); err != nil {
		return Info{}, err
	}
	rec, err := b.c.Store.CreateCredential(ctx, store.Credential{Name: name, Type: string(typ), Sealed: b.c.Sealer.Seal(v.b, ad(name)), Actor: actor})
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return Info{}, fmt.Errorf("put credential %s: %w; replace its value with `writ credential rotate %s`", name, ErrExists, name)
		}
		return Info{}, fmt.Errorf("put credential %s: %w", name, err)
	}
	b.forget(name)
	info := toInfo(rec)
	return info, b.record(ctx, audit.ResourceCreated, actor, info)
}

// Rotate replaces the value of an existing credential (and its type, when
// typ is not empty) and bumps its version. Requests that start after
// Rotate returns use the new value.
func (b *Broker) Rotate(ctx context.Context, actor, name string, typ Type, v Secret) (Info, error) {
	if typ == "" {
		cur, err := b.c.Store.GetCredential(ctx, name)
		if err != nil {
			return Info{}, fmt.Errorf("rotate credential %s: %w", name, err)
		}
		typ = Type(cur.Type)
	}
	if err := Validate(name, typ, v); err != nil {
		return Info{}, err
	}
	rec, err := b.c.Store.RotateCredential(ctx, store.Credential{Name: name, Type: string(typ), Sealed: b.c.Sealer.Seal(v.b, ad(name)), Actor: actor})
	if err != nil {
		return Info{}, fmt.Errorf("rotate credential %s: %w", name, err)
	}
	b.forget(name)
	info := toInfo(rec)
	return info, b.record(ctx, audit.ResourceChanged, actor, info)
}

// Delete removes a credential. Services that name it fail closed (502)
// until it is put again.
func (b *Broker) Delete(ctx context.Context, actor, name string) error {
	if err := b.c.Store.DeleteCredential(ctx, name); err != nil {
		return fmt.Errorf("delete credential %s: %w", name, err)
	}
	b.forget(name)
	return b.record(ctx, audit.ResourceDeleted, actor, Info{Name: name})
}

// List returns every credential's Info, ordered by name.
func (b *Broker) List(ctx context.Context) ([]Info, error) {
	recs, err := b.c.Store.ListCredentials(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(recs))
	for _, r := range recs {
		out = append(out, toInfo(r))
	}
	return out, nil
}

// Get returns a credential and its value, unsealed.
func (b *Broker) Get(ctx context.Context, name string) (Info, Secret, error) {
	now := b.c.Now()
	b.mu.Lock()
	c, ok := b.cache[name]
	b.mu.Unlock()
	if ok && now.Sub(c.fetched) < b.c.CacheTTL {
		return c.info, c.secret, nil
	}
	rec, err := b.c.Store.GetCredential(ctx, name)
	if err != nil {
		return Info{}, Secret{}, fmt.Errorf("get credential %s: %w", name, err)
	}
	pt, err := b.c.Sealer.Open(rec.Sealed, ad(name))
	if err != nil {
		return Info{}, Secret{}, fmt.Errorf("unseal credential %s: %w (was the key-encryption key changed?)", name, err)
	}
	c = cached{info: toInfo(rec), secret: Secret{b: pt}, fetched: now}
	if b.c.CacheTTL > 0 {
		b.mu.Lock()
		if len(b.cache) > 4096 {
			clear(b.cache)
		}
		b.cache[name] = c
		b.mu.Unlock()
	}
	return c.info, c.secret, nil
}

func (b *Broker) forget(name string) {
	b.mu.Lock()
	delete(b.cache, name)
	b.mu.Unlock()
}

func (b *Broker) record(ctx context.Context, typ audit.Type, actor string, info Info) error {
	e := audit.Event{Type: typ, Actor: actor, Target: "Credential/" + info.Name, Credential: info.Name}
	if info.Version > 0 {
		e.Details = map[string]string{"type": string(info.Type), "version": fmt.Sprint(info.Version)}
	}
	if err := b.c.Emitter.Emit(ctx, e); err != nil {
		return fmt.Errorf("record change of credential %s: %w", info.Name, err)
	}
	return nil
}

func toInfo(r store.Credential) Info {
	return Info{Name: r.Name, Type: Type(r.Type), Version: r.Version, Actor: r.Actor, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}
