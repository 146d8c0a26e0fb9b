package server

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestAdminFollowsClock: the admin API's "expired" follows Options.Now,
// not the wall clock.
func TestAdminFollowsClock(t *testing.T) {
	s, _ := newTestServer(t)
	body, _ := json.Marshal(map[string]string{"enterprise": "acme", "csr": csrPEM(t)})
	rec := do(s.admin, "POST", "/admin/v1/certificates", "Bearer "+token, string(body))
	if rec.Code != http.StatusCreated {
		t.Fatalf("issue: %d %s", rec.Code, rec.Body)
	}
	var issued CertificateJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &issued); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now    time.Time
		status string
	}{
		{issued.NotAfter, "active"},
		{issued.NotAfter.Add(time.Nanosecond), "expired"},
		{issued.NotAfter.AddDate(10, 0, 0), "expired"},
	} {
		s.opts.Now = func() time.Time { return tc.now }
		rec := do(s.admin, "GET", "/admin/v1/certificates/"+issued.Serial, "Bearer "+token, "")
		var got CertificateJSON
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("get: %d %s", rec.Code, rec.Body)
		}
		if got.Status != tc.status {
			t.Errorf("at %s: status %q, want %q", tc.now, got.Status, tc.status)
		}
	}
}
