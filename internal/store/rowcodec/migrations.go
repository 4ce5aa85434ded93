package rowcodec

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered schema change of a store.
type Migration struct {
	Version int
	Name    string // the file's base name, NNNN_description.sql
	Body    string
}

// Migrations reads the migrations/*.sql files of fsys in order, those
// numbered up to last (all if last is negative). Both stores keep their
// schema changes this way, with the same numbers; each applies them in
// its own dialect and transaction.
func Migrations(fsys fs.FS, last int) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	var out []Migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", base)
		}
		version, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %s: bad number: %v", base, err)
		}
		if last >= 0 && version > last {
			break
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", base, err)
		}
		out = append(out, Migration{Version: version, Name: base, Body: string(body)})
	}
	return out, nil
}
