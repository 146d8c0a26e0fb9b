package store

import "testing"

func TestRewritePG(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = $1 AND c = $2`},
		{`SELECT '?', "a?" FROM t WHERE b = ?`, `SELECT '?', "a?" FROM t WHERE b = $1`},
		{`SELECT 'it''s ?' WHERE x = ?`, `SELECT 'it''s ?' WHERE x = $1`},
		{"-- why?\nSELECT ?", "-- why?\nSELECT $1"},
		{`INSERT INTO t VALUES (?, x'', ?)`, `INSERT INTO t VALUES ($1, '\x'::bytea, $2)`},
		{`SELECT prefix'' FROM t`, `SELECT prefix'' FROM t`},
		{`ORDER BY a LIMIT -1 OFFSET ?`, `ORDER BY a LIMIT ALL OFFSET $1`},
		{`SELECT ? FROM t WHERE`, `SELECT $1 FROM t WHERE`},
	} {
		if got := rewritePG(tc.in); got != tc.want {
			t.Errorf("rewritePG(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if sqliteDialect.q("a = ?") != "a = ?" {
		t.Error("sqlite dialect rewrote a statement")
	}
	if pgDialect.q("a = ?") != "a = $1" || pgDialect.q("a = ?") != "a = $1" {
		t.Error("postgres dialect: cached rewrite differs")
	}
}
