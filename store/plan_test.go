package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournalPolicyPlans: the queries of every issuance search an index;
// a scan of the journal or the orders grows with every certificate ever
// issued.
func TestJournalPolicyPlans(t *testing.T) {
	s, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "zbca.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name, q string
		args    []any
	}{
		{"key owned elsewhere", qKeyOwnedElsewhere, []any{"ab", 1}},
		{"issued today", qIssuedToday, []any{1, 0, 10}},
		{"order processing", qOrderProcessing, []any{"a", 1, "o", 1}},
		{"order valid", qOrderValid, []any{1, "a"}},
		{"order failed", qOrderFailed, []any{"e", 1, "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := s.r.Query("EXPLAIN QUERY PLAN "+tc.q, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			for _, d := range plan {
				if strings.HasPrefix(d, "SCAN issuance_journal") || strings.HasPrefix(d, "SCAN acme_orders") {
					t.Errorf("plan %q scans a table", plan)
				}
			}
		})
	}
}
