package verify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkVerifySeen: the core, for a certificate in the cache (one
// status lookup in SQLite).
func BenchmarkVerifySeen(b *testing.B) {
	f := newFixture(b)
	pemText := pemOf(f.issueAt(b, "acme", t0.AddDate(-1, 0, 0)).Certificate)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if a, err := f.svc.Verify(ctx, Request{Certificate: pemText, Username: "acme"}); err != nil || a.Result != Valid {
				b.Fatal(a, err)
			}
		}
	})
}

// BenchmarkHandlerSeen: the HTTP handler with echo, without the network.
func BenchmarkHandlerSeen(b *testing.B) {
	f := newFixture(b)
	e := newEcho(f)
	body := string(mustJSON(pemOf(f.issueAt(b, "acme", t0.AddDate(-1, 0, 0)).Certificate), "acme"))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/api/v1/verify", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+f.key)
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatal(rec.Code, rec.Body)
			}
		}
	})
}
