package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/zbca/zbca/store"
)

// TestAdminRefusesTrailingData: an admin request followed by a stray "}"
// or "]" or a second object is refused and issues nothing.
func TestAdminRefusesTrailingData(t *testing.T) {
	s, st := newTestServer(t)
	body, _ := json.Marshal(map[string]string{"enterprise": "acme", "csr": csrPEM(t)})
	for _, tail := range []string{"}", "]", " {}", `{"enterprise":"acme"}`} {
		rec := do(s.admin, "POST", "/admin/v1/certificates", "Bearer "+token, string(body)+tail)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "trailing data") {
			t.Errorf("body + %q: %d %s", tail, rec.Code, rec.Body)
		}
	}
	certs, err := st.ListCertificates(context.Background(), store.CertFilter{Username: "acme"})
	if err != nil || len(certs) != 0 {
		t.Fatalf("refused requests issued %d certificates (%v)", len(certs), err)
	}
}
