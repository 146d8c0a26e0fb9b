package verify

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/store"
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

// memStatus answers every status from memory, as the server's
// revocation.Responder does on SQLite when nothing changed.
type memStatus struct{}

func (memStatus) Status(context.Context, string) (store.Revocation, bool) {
	return store.Revocation{}, true
}

// discard is a ResponseWriter that keeps only the status.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

// BenchmarkHandlerMemory: the handler's own cost in the server's case (a
// certificate in the cache, its status from memory), without the network
// and without httptest's allocations: what zbca adds to net/http per
// verification (docs/benchmarks.md, issue 6).
func BenchmarkHandlerMemory(b *testing.B) {
	f := newFixture(b)
	f.svc.current = memStatus{}
	e := newEcho(f)
	e.Use(web.SecurityHeaders)
	body := mustJSON(pemOf(f.issueAt(b, "acme", t0.AddDate(-1, 0, 0)).Certificate), "acme")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/verify", nil)
		req.Header.Set("Authorization", "Bearer "+f.key)
		rd := bytes.NewReader(body)
		req.Body = io.NopCloser(rd)
		w := &discard{h: http.Header{}}
		for pb.Next() {
			rd.Reset(body)
			req.ContentLength = int64(len(body))
			clear(w.h)
			e.ServeHTTP(w, req)
			if w.code != 200 {
				b.Fatal(w.code)
			}
		}
	})
}
