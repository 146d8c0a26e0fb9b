package revocation

import (
	"crypto"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// TestOCSPFollowsClock: with ResponderOptions.Now fixed far from the wall
// clock, the pre-signed answer is used (not judged stale by the wall
// clock), and its times, a live answer's times and the HTTP caching
// headers all follow the injected clock.
func TestOCSPFollowsClock(t *testing.T) {
	clock := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	f := newFixture(t, func(o *ResponderOptions) { o.Now = func() time.Time { return clock } })
	leaf := f.issue(t)
	iss := f.a.Issuing()
	this, next := clock.Add(-backdate), clock.Add(-backdate+time.Hour)

	// Pre-signed (SHA-1, no nonce).
	live := f.resp.Stats.Live.Load()
	rec := get(t, f.resp, "/ocsp/"+base64.StdEncoding.EncodeToString(ocspRequest(t, leaf, iss, crypto.SHA1)))
	r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, iss)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.resp.Stats.Live.Load() - live; n != 0 {
		t.Errorf("pre-signed answer judged stale: %d live signatures", n)
	}
	if !r.ThisUpdate.Equal(this) || !r.NextUpdate.Equal(next) || !r.ProducedAt.Equal(clock) {
		t.Errorf("pre-signed: thisUpdate %s nextUpdate %s producedAt %s, want %s %s %s", r.ThisUpdate, r.NextUpdate, r.ProducedAt, this, next, clock)
	}
	want := map[string]string{
		"Cache-Control": "max-age=3540, public, no-transform, must-revalidate",
		"Last-Modified": this.Format(http.TimeFormat),
		"Expires":       next.Format(http.TimeFormat),
	}
	for h, v := range want {
		if got := rec.Header().Get(h); got != v {
			t.Errorf("%s: %q, want %q", h, got, v)
		}
	}

	// Live (with a nonce).
	rec = post(t, f.resp, withNonce(t, ocspRequest(t, leaf, iss, crypto.SHA1), []byte("0123456789abcdef")))
	r, err = ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, iss)
	if err != nil {
		t.Fatal(err)
	}
	if !r.ThisUpdate.Equal(this) || !r.ProducedAt.Equal(clock) {
		t.Errorf("live: thisUpdate %s producedAt %s, want %s %s", r.ThisUpdate, r.ProducedAt, this, clock)
	}
}
