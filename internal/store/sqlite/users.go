package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
)

// userColumns reads an account with its groups (a JSON array).
var userColumns = rowcodec.UserColumns(`(SELECT json_group_array(group_name) FROM user_groups g WHERE g.user_name = users.name)`)

const userInsertColumns = `name, role, source, password_hash, created_at, updated_at, last_login`

// CreateUser implements store.Users.
func (d *DB) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	now := d.now().UTC()
	u.CreatedAt, u.UpdatedAt = now, now
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Name, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO users (`+userInsertColumns+`) VALUES (?,?,?,?,?,?,?)`,
		u.Name, u.Role, u.Source, u.PasswordHash, unixNano(now), unixNano(now), unixNano(u.LastLogin))
	if isUnique(err) {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Name, store.ErrExists)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Name, err)
	}
	if err := addGroups(ctx, tx, u.Name, u.Groups); err != nil {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Name, err)
	}
	return d.GetUser(ctx, u.Name)
}

// ChangeUserGroups implements store.Users.
func (d *DB) ChangeUserGroups(ctx context.Context, name string, c store.GroupChange) (store.User, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return store.User{}, fmt.Errorf("change groups of user %q: %w", name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE users SET updated_at = ? WHERE name = ?`, unixNano(d.now().UTC()), name)
	if err != nil {
		return store.User{}, fmt.Errorf("change groups of user %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.User{}, fmt.Errorf("change groups of user %q: %w", name, store.ErrNotFound)
	}
	if c.Replace {
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_groups WHERE user_name = ?`, name); err != nil {
			return store.User{}, fmt.Errorf("change groups of user %q: %w", name, err)
		}
	}
	if err := addGroups(ctx, tx, name, append(slices.Clip(c.Set), c.Add...)); err != nil {
		return store.User{}, fmt.Errorf("change groups of user %q: %w", name, err)
	}
	for _, g := range c.Remove {
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_groups WHERE user_name = ? AND group_name = ?`, name, g); err != nil {
			return store.User{}, fmt.Errorf("change groups of user %q: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return store.User{}, fmt.Errorf("change groups of user %q: %w", name, err)
	}
	return d.GetUser(ctx, name)
}

func addGroups(ctx context.Context, tx *sql.Tx, name string, groups []string) error {
	for _, g := range groups {
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_groups (user_name, group_name) VALUES (?, ?) ON CONFLICT DO NOTHING`, name, g); err != nil {
			return fmt.Errorf("add group %q: %w", g, err)
		}
	}
	return nil
}

// UpdateUser implements store.Users.
func (d *DB) UpdateUser(ctx context.Context, u store.User) (store.User, error) {
	now := d.now().UTC()
	res, err := d.db.ExecContext(ctx, `UPDATE users SET role = ?, source = ?, password_hash = ?, updated_at = ?,
		last_login = MAX(last_login, ?) WHERE name = ?`,
		u.Role, u.Source, u.PasswordHash, unixNano(now), unixNano(u.LastLogin), u.Name)
	if err != nil {
		return store.User{}, fmt.Errorf("update user %q: %w", u.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.User{}, fmt.Errorf("update user %q: %w", u.Name, store.ErrNotFound)
	}
	return d.GetUser(ctx, u.Name)
}

// GetUser implements store.Users.
func (d *DB) GetUser(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(d.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	if err != nil {
		return store.User{}, fmt.Errorf("get user %q: %w", name, notFound(err))
	}
	return u, nil
}

// ListUsers implements store.Users.
func (d *DB) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// DeleteUser implements store.Users. Its sessions go with it (ON DELETE
// CASCADE).
func (d *DB) DeleteUser(ctx context.Context, name string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete user %q: %w", name, store.ErrNotFound)
	}
	return nil
}

func scanUser(r interface{ Scan(...any) error }) (store.User, error) {
	return rowcodec.ScanUser(r.Scan)
}

// CreateSession implements store.Sessions.
func (d *DB) CreateSession(ctx context.Context, s store.Session) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO sessions (hash, user_name, csrf, created_at, expires_at) VALUES (?,?,?,?,?)`,
		s.Hash, s.User, s.CSRF, unixNano(s.CreatedAt), unixNano(s.ExpiresAt))
	if isUnique(err) {
		return fmt.Errorf("create session: %w", store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create session for %q: %w", s.User, err)
	}
	return nil
}

// GetSession implements store.Sessions.
func (d *DB) GetSession(ctx context.Context, hash []byte, now time.Time) (store.Session, error) {
	var (
		s      store.Session
		ca, ea int64
	)
	err := d.db.QueryRowContext(ctx, `SELECT hash, user_name, csrf, created_at, expires_at FROM sessions
		WHERE hash = ? AND expires_at > ?`, hash, unixNano(now)).Scan(&s.Hash, &s.User, &s.CSRF, &ca, &ea)
	if err == sql.ErrNoRows {
		return store.Session{}, fmt.Errorf("get session: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("get session: %w", err)
	}
	s.CreatedAt, s.ExpiresAt = fromNano(ca), fromNano(ea)
	return s, nil
}

// DeleteSession implements store.Sessions.
func (d *DB) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := d.db.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, hash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions implements store.Sessions.
func (d *DB) DeleteUserSessions(ctx context.Context, user string) error {
	if _, err := d.db.ExecContext(ctx, `DELETE FROM sessions WHERE user_name = ?`, user); err != nil {
		return fmt.Errorf("delete sessions of %q: %w", user, err)
	}
	return nil
}

// DeleteExpiredSessions implements store.Sessions.
func (d *DB) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := d.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, unixNano(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
