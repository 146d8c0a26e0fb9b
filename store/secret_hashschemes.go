package store

import (
	"context"
	"database/sql"
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
	out, _, err := s.PasswordHashSchemesSince(ctx, skipPrefix, 0)
	return out, err
}

// PasswordHashSchemesSince is PasswordHashSchemes over the accounts whose
// id is above afterID (ids only grow: an import adds rows above every
// existing one), and returns the highest id it read (afterID when none),
// for the next call. The primary key makes it cheap when little is new.
func (s *SQL) PasswordHashSchemesSince(ctx context.Context, skipPrefix string, afterID int64) ([]string, int64, error) {
	q := `SELECT id, password_hash FROM enterprises WHERE id > ?`
	args := []any{afterID}
	if skipPrefix != "" {
		// substr, not LIKE, so that no character of the prefix is a
		// pattern on either dialect.
		q += ` AND substr(password_hash, 1, ?) <> ?`
		args = append(args, len(skipPrefix), skipPrefix)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, afterID, fmt.Errorf("reading password hash schemes: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	maxID := afterID
	var id int64
	var h string
	for rows.Next() {
		if err := rows.Scan(&id, &h); err != nil {
			return nil, afterID, fmt.Errorf("reading password hash schemes: %w", err)
		}
		maxID = max(maxID, id)
		if sc := password.Scheme(h); sc != "" {
			seen[sc] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, afterID, fmt.Errorf("reading password hash schemes: %w", err)
	}
	// Rows of the configured scheme are skipped by the query: the highest
	// id overall is what the next call starts from.
	var top sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT max(id) FROM enterprises`).Scan(&top); err != nil {
		return nil, afterID, fmt.Errorf("reading password hash schemes: %w", err)
	}
	if top.Valid {
		maxID = max(maxID, top.Int64)
	}
	out := make([]string, 0, len(seen))
	for sc := range seen {
		out = append(out, sc)
	}
	sort.Strings(out)
	return out, maxID, nil
}
