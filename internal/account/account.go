// Package account holds writ's named human accounts: who may use the
// console and with which role (viewer, approver, admin), how a local
// account's password is checked (argon2id, PHC strings in the store), and
// the console sessions a login opens. Accounts that log in through an
// external OIDC provider are recorded at their first login with the role
// the provider's claim gave them (see internal/web).
//
// Humans act as "user:NAME" ([Actor]); every account change, login and
// failed login is an audit event. The admin credential is not an account:
// it stays for automation and acts as "admin:ID".
package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

// ErrLogin is the one answer to a wrong name or password: which of the two
// was wrong is not told.
var ErrLogin = errors.New("name or password is wrong")

// InputError is a request the account rules refuse (a bad name, role or
// password); its text tells the user what to change.
type InputError struct{ msg string }

func (e *InputError) Error() string { return e.msg }

func inputErrorf(format string, args ...any) error { return &InputError{fmt.Sprintf(format, args...)} }

// ErrNoSession reports a missing, unknown or expired session.
var ErrNoSession = errors.New("not logged in or the session expired: log in again")

// Config configures a [Service].
type Config struct {
	Users    store.Users
	Sessions store.Sessions
	Emitter  audit.Emitter
	Log      *slog.Logger
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// SessionTTL is how long a console session lasts; default 12h.
	SessionTTL time.Duration
	// Argon2 is the cost of new password hashes; zero means RFC 9106's
	// recommendation (64 MiB, t=3, p=4).
	Argon2 Params
}

// Service manages accounts and sessions. It is safe for concurrent use.
type Service struct {
	c     Config
	dummy string // a hash checked for unknown names, so timing tells nothing
}

// New returns a Service over c.
func New(c Config) (*Service, error) {
	if c.Users == nil || c.Sessions == nil || c.Emitter == nil {
		return nil, errors.New("account: users, sessions and audit emitter are required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	return &Service{c: c, dummy: c.Argon2.unmatchable()}, nil
}

// Actor is how a human is named in audit events and approval decisions.
func Actor(name string) string { return "user:" + name }

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@+-]{0,127}$`)

// CheckName returns an error for a name that cannot be an account name.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return inputErrorf("user name %q: use 1 to 128 letters, digits and . _ @ + - (starting with a letter or digit)", name)
	}
	return nil
}

// validGroup is a group name: letters and digits of any script and
// . _ @ + - / : = and inner spaces, starting with a letter, digit or /,
// at most 128 characters. No comma (lists are comma-separated), no
// quote, no * ? [ (a policy's group:NAME is exact), no control
// character.
var validGroup = regexp.MustCompile(`^[\p{L}\p{N}/](?:[\p{L}\p{N}._@+:/=\- ]{0,126}[\p{L}\p{N}._@+:/=\-])?$`)

// CheckGroup returns an error for a name that cannot be a group. Group
// names compare exactly: "Leads" and "leads" are two groups.
func CheckGroup(name string) error {
	if g, ok := strings.CutPrefix(name, "group:"); ok {
		return inputErrorf("group name %q: write the name without group: (%q); group:NAME is how a policy names it", name, g)
	}
	if !validGroup.MatchString(name) {
		return inputErrorf("group name %q: use 1 to 128 letters, digits, spaces and . _ @ + - / : = (starting with a letter, digit or /, not ending with a space; no commas)", name)
	}
	return nil
}

// CheckGroups checks every name of groups with [CheckGroup].
func CheckGroups(groups []string) error {
	for _, g := range groups {
		if err := CheckGroup(g); err != nil {
			return err
		}
	}
	return nil
}

// CleanGroups keeps the values of an identity provider's groups claim
// that are group names ([CheckGroup]), once each, in byte order, and
// returns the others apart (to be logged: a name writ cannot hold is no
// membership, so leaving it out grants less, never more).
func CleanGroups(values []string) (groups, refused []string) {
	for _, v := range values {
		if CheckGroup(v) != nil {
			refused = append(refused, v)
		} else {
			groups = append(groups, v)
		}
	}
	slices.Sort(groups)
	return slices.Compact(groups), refused
}

// CheckRole returns an error for a role that is not viewer, approver or
// admin.
func CheckRole(role string) error {
	switch role {
	case store.RoleViewer, store.RoleApprover, store.RoleAdmin:
		return nil
	}
	return inputErrorf("role %q: use viewer, approver or admin", role)
}

// Allows reports whether role has at least the rights of need.
func Allows(role, need string) bool { return rank(role) >= rank(need) && rank(need) > 0 }

func rank(role string) int {
	switch role {
	case store.RoleViewer:
		return 1
	case store.RoleApprover:
		return 2
	case store.RoleAdmin:
		return 3
	}
	return 0
}

// Add creates a local account in groups (none when empty). actor is who
// asked ("admin:ID").
func (s *Service) Add(ctx context.Context, name, role string, groups []string, password, actor string) (store.User, error) {
	if err := CheckName(name); err != nil {
		return store.User{}, err
	}
	if err := CheckRole(role); err != nil {
		return store.User{}, err
	}
	if err := CheckGroups(groups); err != nil {
		return store.User{}, err
	}
	h, err := s.c.Argon2.Hash(password)
	if err != nil {
		return store.User{}, err
	}
	u, err := s.c.Users.CreateUser(ctx, store.User{Name: name, Role: role, Source: store.UserLocal, PasswordHash: h, Groups: groups})
	if err != nil {
		return store.User{}, err
	}
	d := map[string]string{"role": role, "source": store.UserLocal}
	if len(u.Groups) > 0 {
		d["groups"] = strings.Join(u.Groups, ",")
	}
	return u, s.emit(ctx, audit.Event{Type: audit.UserAdded, Actor: actor, Target: Actor(name), Details: d})
}

// ChangeGroups changes the groups of the local account name (see
// store.GroupChange) and returns the account. The change applies to the
// next decision the human makes: approvals read the groups at each one.
// An OIDC account's groups follow its provider's claim and are refused
// here.
func (s *Service) ChangeGroups(ctx context.Context, name string, c store.GroupChange, actor string) (store.User, error) {
	if !c.Replace && len(c.Add) == 0 && len(c.Remove) == 0 {
		return store.User{}, inputErrorf("say how to change the groups of %q: set them, or add or remove some", name)
	}
	for _, l := range [][]string{c.Set, c.Add, c.Remove} {
		if err := CheckGroups(l); err != nil {
			return store.User{}, err
		}
	}
	for _, g := range c.Add {
		if slices.Contains(c.Remove, g) {
			return store.User{}, inputErrorf("group %q is both added and removed: say one", g)
		}
	}
	u, err := s.c.Users.GetUser(ctx, name)
	if err != nil {
		return store.User{}, err
	}
	if u.Source != store.UserLocal {
		return store.User{}, inputErrorf("user %q logs in through OIDC: its groups come from the provider's groups claim at each login (console.oidc.groups_claim)", name)
	}
	old := u.Groups
	if u, err = s.c.Users.ChangeUserGroups(ctx, name, c); err != nil {
		return store.User{}, err
	}
	return u, s.emit(ctx, audit.Event{Type: audit.UserChanged, Actor: actor, Target: Actor(name),
		Details: map[string]string{"change": "groups", "from": strings.Join(old, ","), "groups": strings.Join(u.Groups, ",")}})
}

// GroupsIn returns a lookup of the groups the account name is a member
// of now, read from users (none for a name with no account): the
// approval service's Config.Groups, asked at every decision a human
// makes on a rule that names groups.
func GroupsIn(users store.Users) func(ctx context.Context, name string) ([]string, error) {
	return func(ctx context.Context, name string) ([]string, error) {
		u, err := users.GetUser(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return u.Groups, err
	}
}

// List returns every account, ordered by name.
func (s *Service) List(ctx context.Context) ([]store.User, error) { return s.c.Users.ListUsers(ctx) }

// Get returns one account.
func (s *Service) Get(ctx context.Context, name string) (store.User, error) {
	return s.c.Users.GetUser(ctx, name)
}

// Remove deletes an account and ends its sessions.
func (s *Service) Remove(ctx context.Context, name, actor string) error {
	if err := s.c.Users.DeleteUser(ctx, name); err != nil {
		return err
	}
	return s.emit(ctx, audit.Event{Type: audit.UserRemoved, Actor: actor, Target: Actor(name)})
}

// SetPassword replaces a local account's password and ends its sessions.
func (s *Service) SetPassword(ctx context.Context, name, password, actor string) error {
	u, err := s.c.Users.GetUser(ctx, name)
	if err != nil {
		return err
	}
	if u.Source != store.UserLocal {
		return inputErrorf("user %q logs in through OIDC and has no password here", name)
	}
	if u.PasswordHash, err = s.c.Argon2.Hash(password); err != nil {
		return err
	}
	if _, err := s.c.Users.UpdateUser(ctx, u); err != nil {
		return err
	}
	if err := s.c.Sessions.DeleteUserSessions(ctx, name); err != nil {
		return err
	}
	return s.emit(ctx, audit.Event{Type: audit.UserChanged, Actor: actor, Target: Actor(name), Details: map[string]string{"change": "password"}})
}

// Session is a logged-in human: the account as it is now and the session.
type Session struct {
	User store.User
	// CSRF is the token every state-changing request of this session
	// carries.
	CSRF      string
	ExpiresAt time.Time
}

// Login checks a local account's password and opens a session; it
// returns the cookie value (a secret: only its hash is stored). source is
// the client's address, for the audit event.
func (s *Service) Login(ctx context.Context, name, password, source string) (string, Session, error) {
	u, err := s.c.Users.GetUser(ctx, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Source != store.UserLocal) {
		CheckPassword(s.dummy, password)
		s.failed(ctx, name, source, "unknown local account")
		return "", Session{}, ErrLogin
	}
	if err != nil {
		return "", Session{}, err
	}
	ok, err := CheckPassword(u.PasswordHash, password)
	if err != nil {
		s.c.Log.ErrorContext(ctx, "check password", "user", name, "error", err)
	}
	if !ok {
		s.failed(ctx, name, source, "wrong password")
		return "", Session{}, ErrLogin
	}
	return s.open(ctx, u, source, store.UserLocal)
}

// LoginOIDC opens a session for a human the OIDC provider vouched for,
// with the role and groups its claims gave (groups: see [CleanGroups]).
// The account is created at the first login and its role and groups
// follow the provider's on every later one, for every session of it. A
// local account of the same name is refused: the provider must not take
// over an account it does not own.
func (s *Service) LoginOIDC(ctx context.Context, name, role string, groups []string, source string) (string, Session, error) {
	if err := CheckName(name); err != nil {
		return "", Session{}, err
	}
	if err := CheckRole(role); err != nil {
		return "", Session{}, err
	}
	if err := CheckGroups(groups); err != nil {
		return "", Session{}, err
	}
	groups = slices.Compact(slices.Sorted(slices.Values(groups)))
	u, err := s.c.Users.GetUser(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		u, err = s.c.Users.CreateUser(ctx, store.User{Name: name, Role: role, Source: store.UserOIDC, Groups: groups})
		if err != nil {
			return "", Session{}, err
		}
		d := map[string]string{"role": role, "source": store.UserOIDC}
		if len(groups) > 0 {
			d["groups"] = strings.Join(groups, ",")
		}
		if err := s.emit(ctx, audit.Event{Type: audit.UserAdded, Actor: "oidc", Target: Actor(name), Details: d}); err != nil {
			return "", Session{}, err
		}
	case err != nil:
		return "", Session{}, err
	case u.Source != store.UserOIDC:
		s.failed(ctx, name, source, "OIDC login for a local account")
		return "", Session{}, fmt.Errorf("user %q is a local account: it logs in with its password, not through OIDC", name)
	default:
		if u.Role != role {
			old := u.Role
			u.Role = role
			if u, err = s.c.Users.UpdateUser(ctx, u); err != nil {
				return "", Session{}, err
			}
			if err := s.emit(ctx, audit.Event{Type: audit.UserChanged, Actor: "oidc", Target: Actor(name), Details: map[string]string{"change": "role", "from": old, "role": role}}); err != nil {
				return "", Session{}, err
			}
		}
		if !slices.Equal(u.Groups, groups) {
			old := u.Groups
			if u, err = s.c.Users.ChangeUserGroups(ctx, name, store.GroupChange{Replace: true, Set: groups}); err != nil {
				return "", Session{}, err
			}
			if err := s.emit(ctx, audit.Event{Type: audit.UserChanged, Actor: "oidc", Target: Actor(name),
				Details: map[string]string{"change": "groups", "from": strings.Join(old, ","), "groups": strings.Join(groups, ",")}}); err != nil {
				return "", Session{}, err
			}
		}
	}
	return s.open(ctx, u, source, store.UserOIDC)
}

func (s *Service) open(ctx context.Context, u store.User, source, via string) (string, Session, error) {
	secret := rand.Text() + rand.Text()
	now := s.c.Now()
	// Recorded before the session exists: a login the log cannot hold
	// is refused.
	if err := s.emit(ctx, audit.Event{Type: audit.UserLogin, Actor: Actor(u.Name), Source: source, Details: map[string]string{"role": u.Role, "via": via}}); err != nil {
		return "", Session{}, err
	}
	st := store.Session{Hash: hashSecret(secret), User: u.Name, CSRF: rand.Text(), CreatedAt: now, ExpiresAt: now.Add(s.c.SessionTTL)}
	if err := s.c.Sessions.CreateSession(ctx, st); err != nil {
		return "", Session{}, err
	}
	u.LastLogin = now
	if nu, err := s.c.Users.UpdateUser(ctx, u); err == nil {
		u = nu
	}
	return secret, Session{User: u, CSRF: st.CSRF, ExpiresAt: st.ExpiresAt}, nil
}

// Session returns the session whose cookie value is secret, with the
// account as it is now (a role change applies at once).
func (s *Service) Session(ctx context.Context, secret string) (Session, error) {
	if secret == "" || len(secret) > 256 {
		return Session{}, ErrNoSession
	}
	st, err := s.c.Sessions.GetSession(ctx, hashSecret(secret), s.c.Now())
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, err
	}
	u, err := s.c.Users.GetUser(ctx, st.User)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, err
	}
	return Session{User: u, CSRF: st.CSRF, ExpiresAt: st.ExpiresAt}, nil
}

// Logout ends the session whose cookie value is secret.
func (s *Service) Logout(ctx context.Context, secret, user string) error {
	if err := s.c.Sessions.DeleteSession(ctx, hashSecret(secret)); err != nil {
		return err
	}
	return s.emit(ctx, audit.Event{Type: audit.UserLogout, Actor: Actor(user)})
}

// Sweep removes expired sessions.
func (s *Service) Sweep(ctx context.Context) error {
	_, err := s.c.Sessions.DeleteExpiredSessions(ctx, s.c.Now())
	return err
}

func (s *Service) failed(ctx context.Context, name, source, why string) {
	s.c.Log.WarnContext(ctx, "console login failed", "user", name, "source", source)
	_ = s.emit(ctx, audit.Event{Type: audit.UserLoginFailed, Target: Actor(name), Source: source, Reason: why})
}

// emit records e. An account change or login that cannot be recorded
// is reported as an error (a login is then refused: fail closed).
func (s *Service) emit(ctx context.Context, e audit.Event) error {
	if err := s.c.Emitter.Emit(ctx, e); err != nil {
		s.c.Log.ErrorContext(ctx, "record account event", "type", string(e.Type), "error", err)
		return fmt.Errorf("record %s in the audit log: %w", e.Type, err)
	}
	return nil
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}
