package store

import (
	"context"
	"fmt"
	"sort"

	"github.com/zbca/zbca/internal/password"
)

// PasswordHashSchemes returns the distinct cost classes
// (password.Scheme) of the stored password hashes, leaving out the hashes
// that begin with skipPrefix (the configured argon2id parameters, which
// the caller knows already) so that the rows read are the ones still to
// be upgraded. Unusable hashes are left out. The local authenticator uses
// it at start-up to hold every failed login as long as the slowest hash
// in use takes, whichever account is tried.
//
// It reads every row not skipped: right after an import of a million
// bcrypt accounts, about a second on SQLite.
func (s *SQL) PasswordHashSchemes(ctx context.Context, skipPrefix string) ([]string, error) {
	q := `SELECT password_hash FROM enterprises`
	var args []any
	if skipPrefix != "" {
		// substr, not LIKE, so that no character of the prefix is a
		// pattern on either dialect.
		q += ` WHERE substr(password_hash, 1, ?) <> ?`
		args = append(args, len(skipPrefix), skipPrefix)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading password hash schemes: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var h string
	for rows.Next() {
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("reading password hash schemes: %w", err)
		}
		if sc := password.Scheme(h); sc != "" {
			seen[sc] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading password hash schemes: %w", err)
	}
	out := make([]string, 0, len(seen))
	for sc := range seen {
		out = append(out, sc)
	}
	sort.Strings(out)
	return out, nil
}
