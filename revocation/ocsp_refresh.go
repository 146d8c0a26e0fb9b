package revocation

import (
	"context"
	"crypto"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/internal/ocspder"
	"github.com/zbca/zbca/store"
)

// countHinter is implemented by sources that can say about how many
// certificates a full scan will return (store.SQL).
type countHinter interface {
	CertificateCountHint(ctx context.Context) (int, error)
}

// Load reads every certificate's status from the source. Responses are
// signed in the background by Run (and on demand meanwhile), so that a
// restart with a million certificates serves within seconds: the tables
// are sized from the source's count up front, and the source's scan and
// the table inserts run side by side.
func (r *Responder) Load(ctx context.Context) error {
	start := time.Now()
	if h, ok := r.o.Source.(countHinter); ok {
		if n, err := h.CertificateCountHint(ctx); err == nil && n > 0 {
			r.reserve(n)
		}
	}
	batches := make(chan []store.CertStatus, 4)
	spare := make(chan []store.CertStatus, 8)
	var wm time.Time
	var scanErr error
	go func() {
		defer close(batches)
		batch := make([]store.CertStatus, 0, loadBatch)
		wm, scanErr = r.o.Source.ForEachStatus(ctx, time.Time{}, func(c store.CertStatus) error {
			batch = append(batch, c)
			if len(batch) == loadBatch {
				batches <- batch
				select {
				case batch = <-spare:
				default:
					batch = make([]store.CertStatus, 0, loadBatch)
				}
			}
			return nil
		})
		if len(batch) > 0 {
			batches <- batch
		}
	}()
	n := 0
	var buf []byte
	for b := range batches {
		for _, c := range b {
			if r.apply(c, &buf) {
				n++
			}
		}
		select {
		case spare <- b[:0]:
		default:
		}
	}
	if scanErr != nil {
		return fmt.Errorf("loading certificate statuses: %w", scanErr)
	}
	// The issuing CAs, answered by the root.
	for _, is := range r.issuers {
		if !is.isRoot {
			if k, ok := keyOf(is.Cert.SerialNumber.Bytes()); ok {
				r.setStatus(k, int8(len(r.issuers)-1), ocspder.Good, 0, 0)
			}
		}
	}
	r.watermk = wm
	r.lastPoll = start
	r.loaded.Store(true)
	r.o.Logger.Info("OCSP responder loaded", "certificates", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// loadBatch is how many statuses Load hands from the scan to the inserts
// at a time.
const loadBatch = 4096

// reserve sizes the shards for about n certificates (serials are random,
// so they spread evenly), sparing the growth of maps and slices during a
// load.
func (r *Responder) reserve(n int) {
	per := n/shards + n/shards/8 + 16
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		if len(sh.ents) == 0 {
			sh.idx = make(map[serialKey]uint32, per)
			sh.ents = make([]entry, 0, per)
		}
		sh.mu.Unlock()
	}
}

// apply records a status; it reports whether the entry is new or changed
// (and then unsigned); buf is scratch space.
func (r *Responder) apply(c store.CertStatus, buf *[]byte) bool {
	k, idx, ok := r.keyFor(c.Issuer, c.Serial, buf)
	if !ok {
		return false
	}
	status, at := int8(ocspder.Good), int64(0)
	if c.Status == store.CertRevoked {
		status, at = ocspder.Revoked, c.RevokedAt.UnixNano()
	}
	return r.setStatus(k, int8(idx), status, int8(c.Reason), at)
}

// keyFor resolves a stored certificate's issuer and serial.
func (r *Responder) keyFor(issuerID, serial string, buf *[]byte) (serialKey, int, bool) {
	idx := r.issuerByID(issuerID)
	if idx < 0 {
		return serialKey{}, 0, false
	}
	var err error
	if *buf, err = serialBytes((*buf)[:0], serial); err != nil {
		return serialKey{}, 0, false
	}
	k, ok := keyOf(*buf)
	return k, idx, ok
}

// Update signs the response for a certificate now (after its issuance or
// revocation), before the caller answers anyone.
func (r *Responder) Update(_ context.Context, rec *store.Certificate) error {
	var buf []byte
	k, idx, ok := r.keyFor(rec.Issuer, rec.Serial, &buf)
	if !ok {
		return fmt.Errorf("revocation: certificate %s has an unknown issuer %s or a bad serial", rec.Serial, rec.Issuer)
	}
	e := entry{issuer: int8(idx), status: ocspder.Good, reason: int8(rec.RevocationReason)}
	if rec.Status == store.CertRevoked {
		e.status, e.revokedAt = ocspder.Revoked, rec.RevokedAt.UnixNano()
	}
	sig, err := r.sign(&k, &e)
	if err != nil {
		return err
	}
	r.store(k, e, sig, false, 0)
	return nil
}

// OnIssued is ca.Options.OnIssued.
func (r *Responder) OnIssued(rec *store.Certificate) {
	if err := r.Update(context.Background(), rec); err != nil {
		r.o.Logger.Error("signing first OCSP response", "serial", rec.Serial, "err", err)
	}
}

// sign sets e's times and signer to now and the issuer's current signer,
// and returns the signature of its response for a SHA-1 CertID.
func (r *Responder) sign(k *serialKey, e *entry) ([]byte, error) {
	is := r.issuers[e.issuer]
	si := is.signerIdx.Load()
	now := r.o.Now().UTC().Truncate(time.Second)
	this := now.Add(-backdate)
	e.thisUpdate, e.nextUpdate, e.signer = this.Unix(), this.Add(r.o.Validity).Unix(), uint16(si)
	resp := r.response(k, e)
	return r.signerAt(uint16(si)).Signature(&resp)
}

// response is the SHA-1 CertID response an entry stands for.
func (r *Responder) response(k *serialKey, e *entry) ocspder.Response {
	is := r.issuers[e.issuer]
	this := time.Unix(e.thisUpdate, 0)
	resp := ocspder.Response{
		Status: int(e.status), HashAlgorithm: crypto.SHA1, IssuerNameHash: is.sha1Name, IssuerKeyHash: is.sha1Key,
		Serial: k.bytes(), Reason: ocspder.NoReason, ThisUpdate: this, NextUpdate: time.Unix(e.nextUpdate, 0), ProducedAt: this.Add(backdate),
	}
	if e.status == ocspder.Revoked {
		resp.RevokedAt = time.Unix(0, e.revokedAt)
		resp.Reason = ocspReason(e.reason)
	}
	return resp
}

// ocspReason is the revocationReason of a response: omitted for
// unspecified (0), as in the CRL (RFC 5280 §5.3.1: the reason code
// unspecified should be absent rather than 0).
func ocspReason(reason int8) int {
	if reason == int8(Unspecified) {
		return ocspder.NoReason
	}
	return int(reason)
}

// Run keeps the responses fresh until ctx ends: it signs what is unsigned
// or past half its validity on all cores, picks up changes made by other
// processes every second, and re-signs everything when the delegated
// signer is renewed.
func (r *Responder) Run(ctx context.Context) {
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	refresh := time.NewTicker(min(r.o.Validity/8, time.Minute))
	defer refresh.Stop()
	r.refreshAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			r.poll(ctx)
		case <-r.wake:
			r.poll(ctx)
		case <-refresh.C:
			if err := r.refreshSigners(); err != nil {
				r.o.Logger.Error("refreshing OCSP signer", "err", err)
			}
			r.refreshAll(ctx)
		}
	}
}

// poll applies the changes committed since the last poll (with a few
// seconds of overlap, as commit order and timestamps can differ). It
// reports whether it read the store to the end.
func (r *Responder) poll(ctx context.Context) bool {
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	var buf []byte
	changed := 0
	revoked := false
	// Overlap a few seconds (commit order and timestamps can differ), but
	// anchored on the clock of the previous poll, not on the newest row
	// seen: after a burst of changes the window must not stay on the burst
	// and be re-read every second.
	pollStart := r.o.Now()
	since := r.watermk
	if r.lastPoll.After(since) {
		since = r.lastPoll
	}
	wm, err := r.o.Source.ForEachStatus(ctx, since.Add(-5*time.Second), func(c store.CertStatus) error {
		if !r.apply(c, &buf) {
			return nil
		}
		changed++
		revoked = revoked || c.Status == store.CertRevoked
		k, ok := keyOf(buf)
		if !ok {
			return nil
		}
		if e, ok := r.get(k); ok && e.sigLen == 0 {
			if _, err := r.signKeep(k, e); err != nil {
				r.o.Logger.Error("signing OCSP response", "serial", c.Serial, "err", err)
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			r.o.Logger.Warn("polling certificate statuses", "err", err)
		}
		return false
	}
	if wm.After(r.watermk) {
		r.watermk = wm
	}
	r.lastPoll = pollStart
	if changed > 0 {
		r.o.Logger.Info("OCSP picked up changes made elsewhere", "certificates", changed)
		if revoked && r.o.OnChange != nil {
			r.o.OnChange()
		}
	}
	return true
}

// signKeep signs e (a copy of k's entry) and stores the signature unless
// the entry changed meanwhile. It reports whether it stored.
func (r *Responder) signKeep(k serialKey, e entry) (bool, error) {
	gen := e.gen
	sig, err := r.sign(&k, &e)
	if err != nil {
		return false, err
	}
	return r.store(k, e, sig, true, gen), nil
}

// refreshAll signs, on every core, the entries that are unsigned, past half
// their validity, or signed by a signer that is no longer current.
func (r *Responder) refreshAll(ctx context.Context) {
	start := time.Now()
	due := r.o.Now().Add(-r.o.Validity / 2).Unix()
	type job struct {
		k serialKey
		e entry
	}
	jobs := make(chan []job, 4)
	var wg sync.WaitGroup
	var signed, skipped, failed atomic.Int64
	var firstErr atomic.Value
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range jobs {
				for _, j := range batch {
					switch ok, err := r.signKeep(j.k, j.e); {
					case err != nil:
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					case ok:
						signed.Add(1)
					default:
						skipped.Add(1) // changed meanwhile, signed by its writer
					}
				}
			}
		}()
	}
	current := make([]uint16, len(r.issuers))
	for i, is := range r.issuers {
		current[i] = uint16(is.signerIdx.Load())
	}
	var todo []job
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		for k, at := range sh.idx {
			e := &sh.ents[at]
			if e.sigLen == 0 || e.thisUpdate < due || e.signer != current[e.issuer] {
				todo = append(todo, job{k, *e})
			}
		}
		sh.mu.RUnlock()
		for len(todo) > 0 {
			n := min(len(todo), 256)
			batch := todo[:n:n]
			todo = todo[n:]
			select {
			case jobs <- batch:
			case <-ctx.Done():
				close(jobs)
				wg.Wait()
				return
			}
		}
		todo = nil
	}
	close(jobs)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		r.o.Logger.Error("signing OCSP responses failed", "count", n, "err", firstErr.Load())
	}
	if n := signed.Load(); n > 0 {
		r.o.Logger.Info("signed OCSP responses", "count", n, "changed_meanwhile", skipped.Load(), "took", time.Since(start).Round(time.Millisecond))
	}
}

// OldestResponse returns the age of the oldest signed response (for
// metrics), and how many are unsigned.
func (r *Responder) OldestResponse() (time.Duration, int) {
	now := r.o.Now().Unix()
	oldest, unsigned := now, 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		for j := range sh.ents {
			e := &sh.ents[j]
			if e.sigLen == 0 {
				unsigned++
			} else if e.thisUpdate < oldest {
				oldest = e.thisUpdate
			}
		}
		sh.mu.RUnlock()
	}
	return time.Duration(now-oldest) * time.Second, unsigned
}
