package verify

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestRefusesTrailingData: a request followed by a stray "}" or "]" or a
// second object is refused, not answered for its first object.
func TestRefusesTrailingData(t *testing.T) {
	f := newFixture(t)
	e := newEcho(f)
	good := f.issueAt(t, "acme", t0.AddDate(-1, 0, 0)).Certificate
	body, _ := json.Marshal(map[string]string{"certificate": string(pemOf(good)), "username": "acme"})
	if rec := post(e, "X-API-Key", f.key, bytes.NewReader(body)); rec.Code != 200 {
		t.Fatalf("good request: %d %s", rec.Code, rec.Body)
	}
	for _, tail := range []string{"}", "]", " {}", `{"certificate":"x"}`, "\n}\n"} {
		rec := post(e, "X-API-Key", f.key, strings.NewReader(string(body)+tail))
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "trailing data") {
			t.Errorf("body + %q: %d %s", tail, rec.Code, rec.Body)
		}
	}
}
