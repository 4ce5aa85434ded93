package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
)

// userColumns reads an account with its groups (a JSON array).
var userColumns = rowcodec.UserColumns(`(SELECT coalesce(json_agg(group_name), '[]'::json)::text FROM user_groups g WHERE g.user_name = users.name)`)

const userInsertColumns = `name, role, source, password_hash, created_at, updated_at, last_login`

// CreateUser implements store.Users.
func (d *DB) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	now := d.now().UTC()
	u.CreatedAt, u.UpdatedAt = now, now
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO users (`+userInsertColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
			u.Name, u.Role, u.Source, u.PasswordHash, unixNano(now), unixNano(now), unixNano(u.LastLogin)); err != nil {
			return err
		}
		return addGroups(ctx, tx, u.Name, u.Groups)
	})
	if isUnique(err) {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Name, store.ErrExists)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Name, err)
	}
	return d.GetUser(ctx, u.Name)
}

// ChangeUserGroups implements store.Users.
func (d *DB) ChangeUserGroups(ctx context.Context, name string, c store.GroupChange) (store.User, error) {
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		// The row lock orders concurrent changes of one account.
		res, err := tx.Exec(ctx, `UPDATE users SET updated_at = $1 WHERE name = $2`, unixNano(d.now().UTC()), name)
		if err != nil {
			return err
		}
		if res.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		if c.Replace {
			if _, err := tx.Exec(ctx, `DELETE FROM user_groups WHERE user_name = $1`, name); err != nil {
				return err
			}
		}
		if err := addGroups(ctx, tx, name, append(slices.Clip(c.Set), c.Add...)); err != nil {
			return err
		}
		if len(c.Remove) > 0 {
			_, err = tx.Exec(ctx, `DELETE FROM user_groups WHERE user_name = $1 AND group_name = ANY($2)`, name, c.Remove)
		}
		return err
	})
	if err != nil {
		return store.User{}, fmt.Errorf("change groups of user %q: %w", name, err)
	}
	return d.GetUser(ctx, name)
}

func addGroups(ctx context.Context, tx pgx.Tx, name string, groups []string) error {
	if len(groups) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO user_groups (user_name, group_name) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, name, groups)
	if err != nil {
		return fmt.Errorf("add groups: %w", err)
	}
	return nil
}

// UpdateUser implements store.Users.
func (d *DB) UpdateUser(ctx context.Context, u store.User) (store.User, error) {
	now := d.now().UTC()
	res, err := d.pool.Exec(ctx, `UPDATE users SET role = $1, source = $2, password_hash = $3, updated_at = $4,
		last_login = GREATEST(last_login, $5) WHERE name = $6`,
		u.Role, u.Source, u.PasswordHash, unixNano(now), unixNano(u.LastLogin), u.Name)
	if err != nil {
		return store.User{}, fmt.Errorf("update user %q: %w", u.Name, err)
	}
	if res.RowsAffected() == 0 {
		return store.User{}, fmt.Errorf("update user %q: %w", u.Name, store.ErrNotFound)
	}
	return d.GetUser(ctx, u.Name)
}

// GetUser implements store.Users.
func (d *DB) GetUser(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(d.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE name = $1`, name))
	if err != nil {
		return store.User{}, fmt.Errorf("get user %q: %w", name, notFound(err))
	}
	return u, nil
}

// ListUsers implements store.Users.
func (d *DB) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
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
	res, err := d.pool.Exec(ctx, `DELETE FROM users WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	if res.RowsAffected() == 0 {
		return fmt.Errorf("delete user %q: %w", name, store.ErrNotFound)
	}
	return nil
}

func scanUser(r interface{ Scan(...any) error }) (store.User, error) {
	return rowcodec.ScanUser(r.Scan)
}

// CreateSession implements store.Sessions.
func (d *DB) CreateSession(ctx context.Context, s store.Session) error {
	_, err := d.pool.Exec(ctx, `INSERT INTO sessions (hash, user_name, csrf, created_at, expires_at) VALUES ($1,$2,$3,$4,$5)`,
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
	err := d.pool.QueryRow(ctx, `SELECT hash, user_name, csrf, created_at, expires_at FROM sessions
		WHERE hash = $1 AND expires_at > $2`, hash, unixNano(now)).Scan(&s.Hash, &s.User, &s.CSRF, &ca, &ea)
	if errors.Is(err, pgx.ErrNoRows) {
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
	if _, err := d.pool.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, hash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions implements store.Sessions.
func (d *DB) DeleteUserSessions(ctx context.Context, user string) error {
	if _, err := d.pool.Exec(ctx, `DELETE FROM sessions WHERE user_name = $1`, user); err != nil {
		return fmt.Errorf("delete sessions of %q: %w", user, err)
	}
	return nil
}

// DeleteExpiredSessions implements store.Sessions.
func (d *DB) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := d.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, unixNano(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return int(res.RowsAffected()), nil
}
