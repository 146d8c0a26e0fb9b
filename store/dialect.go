package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
)

// dialect adapts the store's SQL, written once in SQLite's spelling with
// ? placeholders, to the database at hand. Like cfssl's certdb/sql, one
// implementation serves every database; what differs is kept here, in the
// migrations (migrations/<dialect>/) and in pg.go.
type dialect struct {
	name  string   // "sqlite" or "postgres": also the migrations directory
	pg    bool     // PostgreSQL
	cache sync.Map // statement text → rewritten text (PostgreSQL)
}

var (
	sqliteDialect = &dialect{name: "sqlite"}
	pgDialect     = &dialect{name: "postgres", pg: true}
)

// q returns query in this dialect's spelling. For PostgreSQL it numbers the
// placeholders ($1..$n) and rewrites the few SQLite-only spellings the store
// uses; each statement text is rewritten once and cached.
func (d *dialect) q(query string) string {
	if !d.pg {
		return query
	}
	if r, ok := d.cache.Load(query); ok {
		return r.(string)
	}
	r := rewritePG(query)
	d.cache.Store(query, r)
	return r
}

// rewritePG numbers ? placeholders outside quotes and comments, and
// rewrites SQLite's empty blob literal (x and two quotes) and LIMIT -1
// (no limit).
func rewritePG(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) && query[j] != c {
				j++
			}
			b.WriteString(query[i:min(j+1, len(query))])
			i = j
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j - 1
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		case (c == 'x' || c == 'X') && strings.HasPrefix(query[i+1:], "''") && (i == 0 || !isIdent(query[i-1])):
			b.WriteString(`'\x'::bytea`)
			i += 2
		case (c == 'L' || c == 'l') && strings.HasPrefix(strings.ToUpper(query[i:]), "LIMIT -1") && (i == 0 || !isIdent(query[i-1])):
			b.WriteString("LIMIT ALL")
			i += len("LIMIT -1") - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isIdent(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// db is a *sql.DB whose statements are rewritten for its dialect, so the
// store's methods call it as they would call database/sql.
type db struct {
	*sql.DB
	d *dialect
}

func (b *db) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return b.DB.ExecContext(ctx, b.d.q(q), args...)
}

func (b *db) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return b.DB.QueryContext(ctx, b.d.q(q), args...)
}

func (b *db) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return b.DB.QueryRowContext(ctx, b.d.q(q), args...)
}

func (b *db) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return b.DB.PrepareContext(ctx, b.d.q(q))
}

func (b *db) BeginTx(ctx context.Context, o *sql.TxOptions) (*tx, error) {
	t, err := b.DB.BeginTx(ctx, o)
	if err != nil {
		return nil, err
	}
	return &tx{Tx: t, d: b.d}, nil
}

// tx is a *sql.Tx whose statements are rewritten for its dialect.
type tx struct {
	*sql.Tx
	d *dialect
}

func (t *tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, t.d.q(q), args...)
}

func (t *tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, t.d.q(q), args...)
}

func (t *tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, t.d.q(q), args...)
}

func (t *tx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.Tx.PrepareContext(ctx, t.d.q(q))
}
