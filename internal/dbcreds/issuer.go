package dbcreds

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
)

// Credentials hands out broker credentials (broker.Broker).
type Credentials interface {
	Get(ctx context.Context, name string) (broker.Info, broker.Secret, error)
}

// Tasks reads tasks (task.Service).
type Tasks interface {
	Get(ctx context.Context, id string) (store.Task, error)
}

// Revocations is the kill switch (revoke.List): a revoked task, instance
// or SPIFFE ID ends its roles at once.
type Revocations interface {
	Revoked(kind, value string) bool
}

// Config configures an [Issuer]. Store, Sealer, Credentials and Tasks are
// required.
type Config struct {
	Store       store.DBRoles
	Sealer      *keys.Sealer
	Credentials Credentials
	Tasks       Tasks
	Revocations Revocations
	// Emitter records every create and drop. Defaults to discarding.
	Emitter audit.Emitter
	Log     *slog.Logger
	Now     func() time.Time
	// StaleCreating is how long a role may stay recorded as being created
	// before the sweep takes it for a crash's leftover and drops it
	// (default 1m).
	StaleCreating time.Duration
}

// Login is the upstream login of a task's role. Its password is a
// [broker.Secret]: it never prints.
type Login struct {
	Role       string
	Password   broker.Secret
	ValidUntil time.Time
	// Created reports that this call created the role.
	Created bool
}

// Issuer creates, hands out and drops dynamic roles. It is safe for
// concurrent use.
type Issuer struct {
	c Config

	mu       sync.Mutex
	inflight map[string]*sync.Mutex // task/service -> creation lock
	pools    map[string]*pgxpool.Pool
	dropping map[string]bool
	newRole  func() string // roleName; tests name roles to find them
}

// ErrNoTask refuses a role outside a task.
var ErrNoTask = errors.New("dynamic database credentials are issued per task")

// New returns an Issuer. Call [Issuer.Run] to drop roles when their task
// ends, and [Issuer.Close] to release its admin connections.
func New(c Config) (*Issuer, error) {
	if c.Store == nil || c.Sealer == nil || c.Credentials == nil || c.Tasks == nil {
		return nil, errors.New("create database credential issuer: store, sealer, credentials and tasks are required")
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
	if c.StaleCreating == 0 {
		c.StaleCreating = time.Minute
	}
	return &Issuer{c: c, inflight: map[string]*sync.Mutex{}, pools: map[string]*pgxpool.Pool{}, dropping: map[string]bool{}, newRole: roleName}, nil
}

// Close releases the admin connection pools.
func (is *Issuer) Close() {
	is.mu.Lock()
	defer is.mu.Unlock()
	for k, p := range is.pools {
		p.Close()
		delete(is.pools, k)
	}
}

// ad binds a sealed password to its role.
func ad(role string) []byte { return []byte("writ database role " + role) }

// Issue returns the role of task t for svc, creating it on the task's
// first access. t must be open (the enforcement core checked it).
func (is *Issuer) Issue(ctx context.Context, svc *Service, t store.Task) (Login, error) {
	if t.ID == "" {
		return Login{}, ErrNoTask
	}
	now := is.c.Now()
	if t.State != store.TaskOpen || !now.Before(t.ExpiresAt) {
		return Login{}, fmt.Errorf("task %s is %s or expired; open a new task", t.ID, t.State)
	}
	key := t.ID + "/" + svc.Name
	is.mu.Lock()
	l := is.inflight[key]
	if l == nil {
		l = &sync.Mutex{}
		is.inflight[key] = l
	}
	is.mu.Unlock()
	l.Lock()
	defer func() {
		l.Unlock()
		is.mu.Lock()
		if is.inflight[key] == l {
			delete(is.inflight, key)
		}
		is.mu.Unlock()
	}()

	for range 50 {
		rec, err := is.c.Store.GetDBRole(ctx, t.ID, svc.Name)
		switch {
		case err == nil && rec.State == store.DBRoleActive:
			pw, err := is.c.Sealer.Open(rec.Sealed, ad(rec.Role))
			if err != nil {
				return Login{}, fmt.Errorf("unseal the password of role %s: %w (was the key-encryption key changed?)", rec.Role, err)
			}
			return Login{Role: rec.Role, Password: broker.NewSecret(pw), ValidUntil: rec.ValidUntil}, nil
		case err == nil:
			// Another server is creating it: wait for it.
			select {
			case <-ctx.Done():
				return Login{}, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		case !errors.Is(err, store.ErrNotFound):
			return Login{}, err
		}
		login, err := is.create(ctx, svc, t)
		if errors.Is(err, store.ErrExists) {
			continue // lost a race with another server
		}
		return login, err
	}
	return Login{}, fmt.Errorf("the role of task %s for Service/%s is still being created; try again", t.ID, svc.Name)
}

// roleName returns a fresh role name: writ_ and 26 random base32
// characters (lower case, so it needs no quoting anywhere).
func roleName() string { return "writ_" + strings.ToLower(rand.Text()) }

func (is *Issuer) create(ctx context.Context, svc *Service, t store.Task) (Login, error) {
	role, password := is.newRole(), rand.Text()+rand.Text()
	until := t.ExpiresAt
	rec := store.DBRole{Role: role, Service: svc.Name, Task: t.ID, SpiffeID: t.SpiffeID, Instance: t.Instance,
		Upstream: svc.Upstream, AdminCredential: svc.Spec.Admin, Sealed: is.c.Sealer.Seal([]byte(password), ad(role)), ValidUntil: until}
	if _, err := is.c.Store.CreateDBRole(ctx, rec); err != nil {
		return Login{}, err
	}
	if err := is.createRole(ctx, svc, role, password, until); err != nil {
		// The transaction rolled back: nothing exists; forget the record.
		if derr := is.c.Store.DeleteDBRole(context.WithoutCancel(ctx), role); derr != nil {
			is.c.Log.WarnContext(ctx, "forget a role that was not created", "role", role, "error", derr)
		}
		return Login{}, err
	}
	if err := is.c.Store.ActivateDBRole(ctx, role); err != nil {
		return Login{}, err
	}
	if err := is.c.Emitter.Emit(ctx, audit.Event{Type: audit.DBRoleCreated, SpiffeID: t.SpiffeID, Instance: t.Instance, Task: t.ID,
		Target: svc.target.Ref, Action: "create_role", Details: map[string]string{"role": role, "database": svc.Database,
			"valid_until": until.UTC().Format(time.RFC3339)}}); err != nil {
		// Fail closed: a role that is not on record is not handed out.
		is.drop(context.WithoutCancel(ctx), rec, "not recorded in the audit log")
		return Login{}, fmt.Errorf("record creation of role %s: %w", role, err)
	}
	return Login{Role: role, Password: broker.NewSecret([]byte(password)), ValidUntil: until, Created: true}, nil
}

// createRole creates the role and its grants in one transaction.
func (is *Issuer) createRole(ctx context.Context, svc *Service, role, password string, until time.Time) error {
	pool, err := is.admin(ctx, svc.Upstream, svc.Spec.Admin)
	if err != nil {
		return err
	}
	var salt [16]byte
	rand.Read(salt[:])
	verifier, err := scramVerifier(password, salt[:], scramIterations)
	if err != nil {
		return err
	}
	id := pgx.Identifier{role}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create role for Service/%s: connect as %s: %w", svc.Name, svc.Spec.Admin, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	lit := func(s string) (string, error) {
		e, err := tx.Conn().PgConn().EscapeString(s)
		return "'" + e + "'", err
	}
	pw, err := lit(verifier)
	if err != nil {
		return err
	}
	vu, err := lit(until.UTC().Format("2006-01-02 15:04:05.999999Z07:00"))
	if err != nil {
		return err
	}
	stmts := []string{fmt.Sprintf("CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT CONNECTION LIMIT %d PASSWORD %s VALID UNTIL %s",
		id.Sanitize(), svc.Spec.ConnectionLimit, pw, vu),
		"GRANT CONNECT ON DATABASE " + pgx.Identifier{svc.Database}.Sanitize() + " TO " + id.Sanitize()}
	for _, g := range svc.grants {
		stmts = append(stmts, g(id))
	}
	for i, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			what := "create the role"
			if i > 0 {
				what = "grant " + strings.TrimPrefix(strings.SplitN(s, " TO ", 2)[0], "GRANT ")
			}
			return fmt.Errorf("%s for Service/%s: %w (check the Service's postgres.grants and what %s may grant)", what, svc.Name, pgMessage(err), svc.Spec.Admin)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit the role for Service/%s: %w", svc.Name, pgMessage(err))
	}
	return nil
}

// pgMessage keeps a PostgreSQL error's message and code, nothing else (no
// statement text).
func pgMessage(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return err
}

// admin returns the admin pool for upstream, logged in with the broker
// credential named admin (a new pool when the credential changed).
func (is *Issuer) admin(ctx context.Context, upstream, admin string) (*pgxpool.Pool, error) {
	info, sec, err := is.c.Credentials.Get(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("admin credential %s: %w (put it with `writ credential put %s --type basic`)", admin, err, admin)
	}
	user, password, ok := strings.Cut(sec.Reveal(), ":")
	if info.Type != broker.Basic || !ok || user == "" {
		return nil, fmt.Errorf("admin credential %s must be of type basic, USER:PASSWORD", admin)
	}
	sum := sha256.Sum256([]byte(upstream + "\x00" + admin + "\x00" + sec.Reveal()))
	key := string(sum[:])
	is.mu.Lock()
	p := is.pools[key]
	is.mu.Unlock()
	if p != nil {
		return p, nil
	}
	cfg, err := pgxpool.ParseConfig(upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", upstream, err)
	}
	cfg.ConnConfig.User, cfg.ConnConfig.Password = user, password
	cfg.MaxConns = 4
	cfg.MaxConnIdleTime = time.Minute
	p, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", upstream, err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if q := is.pools[key]; q != nil {
		p.Close()
		return q, nil
	}
	is.pools[key] = p
	return p, nil
}

// drop terminates the role's sessions and drops it, then forgets it. It
// reports whether the role is gone.
func (is *Issuer) drop(ctx context.Context, rec store.DBRole, reason string) bool {
	is.mu.Lock()
	if is.dropping[rec.Role] {
		is.mu.Unlock()
		return false
	}
	is.dropping[rec.Role] = true
	is.mu.Unlock()
	defer func() {
		is.mu.Lock()
		delete(is.dropping, rec.Role)
		is.mu.Unlock()
	}()
	if err := is.dropRole(ctx, rec); err != nil {
		is.c.Log.ErrorContext(ctx, "drop database role; will retry", "role", rec.Role, "task", rec.Task, "service", rec.Service, "error", err)
		return false
	}
	// The role is gone: finish the bookkeeping even if ctx ends now.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := is.c.Store.DeleteDBRole(ctx, rec.Role); err != nil && !errors.Is(err, store.ErrNotFound) {
		is.c.Log.ErrorContext(ctx, "forget dropped database role", "role", rec.Role, "error", err)
	}
	if err := is.c.Emitter.Emit(ctx, audit.Event{Type: audit.DBRoleDropped, SpiffeID: rec.SpiffeID, Instance: rec.Instance, Task: rec.Task,
		Target: "Service/" + rec.Service, Action: "drop_role", Reason: reason, Details: map[string]string{"role": rec.Role}}); err != nil {
		is.c.Log.ErrorContext(ctx, "record drop of database role", "role", rec.Role, "error", err)
	}
	is.c.Log.InfoContext(ctx, "database role dropped", "role", rec.Role, "task", rec.Task, "service", rec.Service, "reason", reason)
	return true
}

func (is *Issuer) dropRole(ctx context.Context, rec store.DBRole) error {
	pool, err := is.admin(ctx, rec.Upstream, rec.AdminCredential)
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", rec.Upstream, err)
	}
	defer conn.Release()
	id := pgx.Identifier{rec.Role}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, rec.Role).Scan(&exists); err != nil {
		return pgMessage(err)
	}
	if !exists {
		return nil // never created (a crash before CREATE ROLE), or dropped already
	}
	// No new sessions, then end the running ones (waiting up to 1 s for
	// each to exit), then drop what the role owns and the role.
	for _, s := range []string{`ALTER ROLE ` + id + ` NOLOGIN`} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return pgMessage(err)
		}
	}
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid, 1000) FROM pg_stat_activity WHERE usename = $1`, rec.Role); err != nil {
		return pgMessage(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return pgMessage(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, s := range []string{`REASSIGN OWNED BY ` + id + ` TO CURRENT_USER`, `DROP OWNED BY ` + id, `DROP ROLE IF EXISTS ` + id} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return pgMessage(err)
		}
	}
	return pgMessage(tx.Commit(ctx))
}

// Sweep drops every recorded role whose task has ended (closed, expired
// or revoked), and roles a crash left half-created; at start it is the
// reaper of a previous run's leftovers. It returns when the earliest
// remaining role's VALID UNTIL falls (zero when none remain).
func (is *Issuer) Sweep(ctx context.Context) (time.Time, error) {
	recs, err := is.c.Store.ListDBRoles(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("list database roles: %w", err)
	}
	now := is.c.Now()
	var next time.Time
	for _, rec := range recs {
		reason := is.ended(ctx, rec, now)
		if reason == "" {
			if next.IsZero() || rec.ValidUntil.Before(next) {
				next = rec.ValidUntil
			}
			continue
		}
		is.drop(ctx, rec, reason)
	}
	return next, nil
}

// ended says why rec's role must go, or "" when its task still runs.
func (is *Issuer) ended(ctx context.Context, rec store.DBRole, now time.Time) string {
	if r := is.c.Revocations; r != nil {
		switch {
		case r.Revoked(store.RevokeTask, rec.Task):
			return "task revoked or closed"
		case r.Revoked(store.RevokeSpiffeID, rec.SpiffeID):
			return "identity revoked"
		case rec.Instance != "" && r.Revoked(store.RevokeInstance, rec.Instance):
			return "instance revoked"
		}
	}
	if !now.Before(rec.ValidUntil) {
		return "expired"
	}
	if rec.State == store.DBRoleCreating && now.Sub(rec.CreatedAt) > is.c.StaleCreating {
		return "left half-created by a crash"
	}
	t, err := is.c.Tasks.Get(ctx, rec.Task)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "task gone"
	case err != nil:
		is.c.Log.WarnContext(ctx, "read task of database role", "task", rec.Task, "error", err)
		return ""
	case t.State != store.TaskOpen:
		return "task " + t.State
	case !now.Before(t.ExpiresAt):
		return "task expired"
	}
	return ""
}

// Run sweeps at start (reaping what a crash left), whenever changed
// fires (the kill switch changed: every task close revokes the task) and
// when the next role expires, until ctx ends. Sweeps are retried every
// interval (default 30s) so that roles another server issued, and drops
// that failed, are handled too.
func (is *Issuer) Run(ctx context.Context, changed <-chan struct{}, interval time.Duration) error {
	if interval <= 0 {
		interval = 30 * time.Second
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-timer.C:
		}
		wait := interval
		next, err := is.Sweep(ctx)
		if err != nil {
			is.c.Log.WarnContext(ctx, "sweep database roles", "error", err)
		} else if !next.IsZero() {
			wait = min(wait, max(next.Sub(is.c.Now()), 10*time.Millisecond))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}
