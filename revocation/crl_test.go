package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/store"
)

func TestPublisher(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	first := f.pub.Get("issuing-1")
	root := f.pub.Get("root")
	if first == nil || root == nil {
		t.Fatal("no CRLs after Load")
	}
	rc, err := x509.ParseRevocationList(root.DER)
	if err != nil || rc.CheckSignatureFrom(f.a.Root()) != nil || len(rc.RevokedCertificateEntries) != 0 {
		t.Fatalf("root CRL: %v", err)
	}
	if d := rc.NextUpdate.Sub(rc.ThisUpdate); d != 365*24*time.Hour {
		t.Errorf("root CRL validity %s", d)
	}
	leaf := f.issue(t)
	other := f.issue(t)
	if _, err := f.svc.Revoke(ctx, leaf.SerialNumber.Text(16), Superseded, "test", ByOperator); err != nil {
		t.Fatal(err)
	}
	// The revocation triggered a new CRL (through the feed); Run publishes
	// it within the delay.
	deadline := time.Now().Add(5 * time.Second)
	var cur *Published
	for time.Now().Before(deadline) {
		if cur = f.pub.Get("issuing-1"); cur.Number > first.Number {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cur.Number <= first.Number {
		t.Fatal("no new CRL after a revocation")
	}
	crl, err := x509.ParseRevocationList(cur.DER)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(f.a.Issuing()); err != nil {
		t.Fatal(err)
	}
	if crl.Number.Int64() != cur.Number || len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL %d with %d entries", crl.Number, len(crl.RevokedCertificateEntries))
	}
	e := crl.RevokedCertificateEntries[0]
	if e.SerialNumber.Cmp(leaf.SerialNumber) != 0 || e.ReasonCode != int(Superseded) || e.SerialNumber.Cmp(other.SerialNumber) == 0 {
		t.Errorf("entry %+v", e)
	}
	// A restart serves the stored CRL at once, and numbers keep rising.
	p2, err := NewPublisher(PublisherOptions{Store: f.st, Issuers: f.a.IssuingCAs(), Root: f.a.RootCRLIssuer(), Interval: time.Hour, Validity: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p2.Get("issuing-1"); got == nil || got.Number != cur.Number {
		t.Fatalf("after restart: %+v", got)
	}
	again, err := p2.Publish(ctx, "issuing-1")
	if err != nil || again.Number <= cur.Number {
		t.Fatalf("number after restart: %v %d", err, again.Number)
	}
	if _, err := p2.Publish(ctx, "nope"); err == nil {
		t.Error("unknown CRL published")
	}
}

func TestCRLHTTP(t *testing.T) {
	f := newFixture(t, nil)
	e := echo.New()
	RegisterCRL(e, f.pub, time.Now)
	do := func(path string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, r)
		return rec
	}
	rec := do("/crl/issuing-1.crl", nil)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if _, err := x509.ParseRevocationList(rec.Body.Bytes()); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"ETag", "Last-Modified", "Cache-Control", "Expires"} {
		if rec.Header().Get(h) == "" {
			t.Errorf("no %s", h)
		}
	}
	if r := do("/crl/issuing-1.crl", map[string]string{"If-None-Match": rec.Header().Get("ETag")}); r.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.Code)
	}
	if r := do("/crl/issuing-1.crl", map[string]string{"If-Modified-Since": rec.Header().Get("Last-Modified")}); r.Code != http.StatusNotModified {
		t.Errorf("If-Modified-Since: %d", r.Code)
	}
	// PEM is written from the DER on request: the same octets as
	// encoding/pem makes, with a right Content-Length, for CRLs of several
	// sizes (the last PEM line full or not).
	for i := 0; i < 3; i++ {
		for _, name := range []string{"root", "issuing-1"} {
			r := do("/crl/"+name+".pem", nil)
			want := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: f.pub.Get(name).DER})
			if r.Code != 200 || r.Header().Get("Content-Type") != "application/x-pem-file" || !bytes.Equal(r.Body.Bytes(), want) {
				t.Errorf("%s.pem: %d %q, %d octets, want %d", name, r.Code, r.Header().Get("Content-Type"), r.Body.Len(), len(want))
			}
			if cl := r.Header().Get("Content-Length"); cl != strconv.Itoa(len(want)) {
				t.Errorf("%s.pem: Content-Length %s for %d octets", name, cl, len(want))
			}
		}
		f.issue(t)
		leaf := f.issue(t)
		if _, err := f.svc.Revoke(context.Background(), leaf.SerialNumber.Text(16), KeyCompromise, "test", ByOperator); err != nil {
			t.Fatal(err)
		}
		if _, err := f.pub.Publish(context.Background(), "issuing-1"); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/crl/nope.crl", "/crl/issuing-1.der", "/crl/..%2Fsecrets", "/crl/issuing-1"} {
		if r := do(p, nil); r.Code != 404 {
			t.Errorf("%s: %d", p, r.Code)
		}
	}
}

// TestPublisherCatchesUpOfflineRevocations: revocations made while no
// server ran (the store alone, as the CLI does) are in the CRL as soon as
// a publisher loads, not at the next scheduled publication.
func TestPublisherCatchesUpOfflineRevocations(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	leaf := f.issue(t)
	offline := &Service{Store: f.st} // no OCSP, no CRL trigger: a CLI process
	if _, err := offline.Revoke(ctx, leaf.SerialNumber.Text(16), KeyCompromise, "operator", ByOperator); err != nil {
		t.Fatal(err)
	}
	before := f.pub.Get("issuing-1")
	p2, err := NewPublisher(PublisherOptions{Store: f.st, Issuers: f.a.IssuingCAs(), Root: f.a.RootCRLIssuer(), Interval: time.Hour, Validity: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	got := p2.Get("issuing-1")
	if got.Number <= before.Number || got.Entries != 1 {
		t.Fatalf("after load: CRL %d with %d entries (was %d)", got.Number, got.Entries, before.Number)
	}
}

// flakyCRLStore fails the first failures CRL number reservations: the
// database away when a revocation's CRL is due.
type flakyCRLStore struct {
	*store.SQL
	failures atomic.Int32
}

func (s *flakyCRLStore) NextCRLNumber(ctx context.Context, name string) (int64, error) {
	if s.failures.Add(-1) >= 0 {
		return 0, errors.New("connection refused")
	}
	return s.SQL.NextCRLNumber(ctx, name)
}

// TestPublisherRetriesAfterFailure: a publication after a revocation that
// fails is tried again, without another revocation, until it works.
func TestPublisherRetriesAfterFailure(t *testing.T) {
	f := newFixture(t, nil)
	fs := &flakyCRLStore{SQL: f.st}
	pub, err := NewPublisher(PublisherOptions{Store: fs, Issuers: f.a.IssuingCAs(), Root: f.a.RootCRLIssuer(), Delay: 200 * time.Millisecond, Interval: time.Hour, Validity: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := pub.Load(ctx); err != nil {
		t.Fatal(err)
	}
	go pub.Run(ctx)
	leaf := f.issue(t)
	f.tasks.Stop(5 * time.Second) // only this publisher publishes
	fs.failures.Store(3)
	if _, err := f.st.Revoke(ctx, store.RevokeRequest{Serial: leaf.SerialNumber.Text(16), Reason: int(KeyCompromise), Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	pub.Trigger() // as the feed tells the node's publisher

	name := f.a.IssuingCAs()[0].Name
	deadline := time.Now().Add(5 * time.Second)
	for pub.Get(name).Entries != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("CRL still without the revocation after 5 s (%d failures left)", fs.failures.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := fs.failures.Load(); n >= 0 {
		t.Errorf("published without going through the failures (%d left)", n)
	}
}
