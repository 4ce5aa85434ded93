package rowcodec

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/writ-dev/writ/internal/store"
)

// UserColumns is the column list [ScanUser] reads, in order, with groups
// an expression giving the account's groups as a JSON array of strings
// (each store aggregates the user_groups rows in its own dialect).
func UserColumns(groups string) string {
	return `name, role, source, password_hash, created_at, updated_at, last_login, ` + groups
}

// ScanUser reads one row of [UserColumns]. Groups come back in byte
// order, nil when there are none.
func ScanUser(scan func(dest ...any) error) (store.User, error) {
	var (
		u          store.User
		ca, ua, ll int64
		groups     string
	)
	if err := scan(&u.Name, &u.Role, &u.Source, &u.PasswordHash, &ca, &ua, &ll, &groups); err != nil {
		return store.User{}, err
	}
	u.CreatedAt, u.UpdatedAt, u.LastLogin = FromNano(ca), FromNano(ua), FromNano(ll)
	if err := json.Unmarshal([]byte(groups), &u.Groups); err != nil {
		return store.User{}, fmt.Errorf("groups of user %q: %w", u.Name, err)
	}
	if len(u.Groups) == 0 {
		u.Groups = nil
	}
	slices.Sort(u.Groups)
	return u, nil
}
