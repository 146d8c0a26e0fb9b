package revocation

import (
	"bytes"
	"context"
	"crypto"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/ocspder"
)

// TestOCSPForgetsPastGrace: a certificate ExpiredGrace past its NotAfter
// is answered "unauthorized" (no status kept), not re-signed, dropped
// from the table at the next compaction, not brought back by a live
// lookup, and not loaded at start; verification's view declines it (the
// caller reads the store).
func TestOCSPForgetsPastGrace(t *testing.T) {
	ctx := context.Background()
	var now atomic.Pointer[time.Time]
	wall := time.Now()
	now.Store(&wall)
	clock := func() time.Time { return *now.Load() }
	f := newFixture(t, func(o *ResponderOptions) { o.ExpiredGrace = time.Hour; o.Now = clock })
	leaf := f.issue(t)
	serial := ca.SerialHex(leaf.SerialNumber)
	iss := f.a.Issuing()
	ask := func() []byte { return post(t, f.resp, ocspRequest(t, leaf, iss, crypto.SHA1)).Body.Bytes() }
	if bytes.Equal(ask(), ocspder.Unauthorized) {
		t.Fatal("a live certificate answered unauthorized")
	}
	// A synthetic live certificate beside it, to show compaction keeps it.
	live, _ := keyOf([]byte{0x7f, 1, 2, 3, 4, 5, 6, 7})
	f.resp.setStatus(live, 0, ocspder.Good, 0, 0, unixSeconds(leaf.NotAfter.AddDate(1, 0, 0)))

	// Within the grace: still answered.
	at := leaf.NotAfter.Add(30 * time.Minute)
	now.Store(&at)
	if bytes.Equal(ask(), ocspder.Unauthorized) {
		t.Fatal("answered unauthorized within the grace")
	}
	// Past it.
	at = leaf.NotAfter.Add(2 * time.Hour)
	now.Store(&at)
	if got := ask(); !bytes.Equal(got, ocspder.Unauthorized) {
		t.Fatalf("past the grace: %x, want unauthorized", got)
	}
	if _, ok := f.resp.status(serial); ok {
		t.Error("verification's view answered a certificate past its grace")
	}
	// (The service certificates — OCSP signer, TLS — end before the
	// client certificate: they go too; the issuing CA stays.)
	before := f.resp.Count()
	f.resp.refreshAll(ctx)
	gone := f.resp.Stats.Forgotten.Load()
	if gone < 1 || f.resp.Count() != before-gone {
		t.Fatalf("after the compaction: %d certificates (was %d), %d forgotten", f.resp.Count(), before, gone)
	}
	if ik, _ := keyOf(iss.SerialNumber.Bytes()); func() bool { _, ok := f.resp.get(ik); return ok }() == false {
		t.Fatal("the compaction dropped the issuing CA")
	}
	if _, ok := f.resp.get(live); !ok {
		t.Fatal("the compaction dropped a live certificate")
	}
	if k, _ := keyOf(leaf.SerialNumber.Bytes()); func() bool { _, ok := f.resp.get(k); return ok }() {
		t.Fatal("the certificate past its grace is still in the table")
	}
	// Not in the table: the live lookup finds it in the store, past its
	// grace, and neither answers "never issued" nor adds it back.
	if got := ask(); !bytes.Equal(got, ocspder.Unauthorized) {
		t.Fatalf("past the grace, after the compaction: %x, want unauthorized", got)
	}
	if f.resp.Count() != before-gone {
		t.Error("the lookup put the certificate back")
	}
	// A start at that time does not load it.
	r2, err := NewResponder(ResponderOptions{Issuers: f.a.IssuingCAs(), Root: f.a.RootCRLIssuer(), Delegated: f.a.OCSPResponder, ExpiredGrace: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Load(ctx, f.st); err != nil {
		t.Fatal(err)
	}
	if k, _ := keyOf(leaf.SerialNumber.Bytes()); func() bool { _, ok := r2.get(k); return ok }() {
		t.Error("a start loaded a certificate past its grace")
	}
}

// BenchmarkRefreshWithHistory: the cost of re-signing every response
// (refreshAll with everything due) for 100,000 live certificates, alone
// and beside 900,000 certificates past their grace: the table and the
// signatures follow the live ones (docs/benchmarks.md, issue 16).
//
//	go test ./revocation/ -run '^$' -bench RefreshWithHistory -benchtime 3x
func BenchmarkRefreshWithHistory(b *testing.B) {
	const live, expired = 100_000, 900_000
	for _, withHistory := range []bool{false, true} {
		name := fmt.Sprintf("live=%d/expired=0", live)
		if withHistory {
			name = fmt.Sprintf("live=%d/expired=%d", live, expired)
		}
		b.Run(name, func(b *testing.B) {
			var now atomic.Pointer[time.Time]
			t0 := time.Now()
			now.Store(&t0)
			f := newFixture(b, func(o *ResponderOptions) { o.Now = func() time.Time { return *now.Load() } })
			f.tasks.Stop(5 * time.Second) // only the benchmark signs
			nowSec := t0.Unix()
			add := func(i int, notAfter int64) {
				var s [9]byte
				s[0] = 0x40
				binary.BigEndian.PutUint64(s[1:], uint64(i))
				k, _ := keyOf(s[:])
				f.resp.setStatus(k, 0, ocspder.Good, 0, 0, uint32(notAfter))
			}
			for i := range live {
				add(i, nowSec+3*365*86400)
			}
			if withHistory {
				for i := range expired {
					add(live+i, nowSec-int64(DefaultExpiredGrace/time.Second)-86400)
				}
			}
			f.resp.refreshAll(context.Background()) // first signatures (and the compaction)
			b.ReportMetric(float64(f.resp.Count()), "entries")
			b.ResetTimer()
			for range b.N {
				at := now.Load().Add(time.Hour) // everything due again
				now.Store(&at)
				f.resp.refreshAll(context.Background())
			}
		})
	}
}
