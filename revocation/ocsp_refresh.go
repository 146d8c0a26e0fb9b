package revocation

import (
	"context"
	"crypto"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/internal/ocspder"
	"github.com/zbca/zbca/store"
)

// Load reads the status of every certificate not past its grace from
// the source and returns the feed number it is consistent with (the Feed
// applies the changes after it). Responses are signed in the background by
// Run (and on demand meanwhile), so that a restart with a million
// certificates serves within seconds: the tables are sized from the
// source's count up front, and the source's scan and the table inserts run
// side by side.
func (r *Responder) Load(ctx context.Context, src LoadSource) (head store.FeedMark, err error) {
	start := time.Now()
	cutoff := r.graceCutoff()
	if n, err := src.CertificateCountHint(ctx, cutoff); err == nil && n > 0 {
		r.reserve(n)
	}
	batches := make(chan []store.CertStatus, 4)
	spare := make(chan []store.CertStatus, 8)
	var scanErr error
	go func() {
		defer close(batches)
		batch := make([]store.CertStatus, 0, loadBatch)
		head, scanErr = src.LoadStatuses(ctx, cutoff, func(c store.CertStatus) error {
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
		return store.FeedMark{}, fmt.Errorf("loading certificate statuses: %w", scanErr)
	}
	// The issuing CAs, answered by the root.
	for _, is := range r.issuers {
		if !is.isRoot && r.issuers[len(r.issuers)-1].CanSign() {
			if k, ok := keyOf(is.Cert.SerialNumber.Bytes()); ok {
				status, at := int8(ocspder.Good), int64(0)
				if r.o.RevokedIssuing != nil && slices.ContainsFunc(r.o.RevokedIssuing(), is.Cert.Equal) {
					status, at = ocspder.Revoked, r.o.Now().UnixNano() // cACompromise, by a root ceremony
				}
				r.setStatus(k, int8(len(r.issuers)-1), status, 2, at, unixSeconds(is.Cert.NotAfter))
			}
		}
	}
	r.loaded.Store(true)
	r.o.Logger.Info("OCSP responder loaded", "certificates", n, "feed_head", head.Seq, "took", time.Since(start).Round(time.Millisecond))
	return head, nil
}

// LoadSource is what Load reads (store.SQL).
type LoadSource interface {
	LoadStatuses(ctx context.Context, notAfter time.Time, fn func(store.CertStatus) error) (store.FeedMark, error)
	CertificateCountHint(ctx context.Context, notAfter time.Time) (int, error)
}

// graceCutoff is the NotAfter before which certificates are forgotten.
func (r *Responder) graceCutoff() time.Time { return r.o.Now().Add(-r.o.ExpiredGrace) }

// pastGrace reports whether e's certificate ended more than the grace ago.
func (r *Responder) pastGrace(e *entry, now int64) bool {
	return e.notAfter != 0 && int64(e.notAfter) < now-int64(r.o.ExpiredGrace/time.Second)
}

// unixSeconds is t in an entry's notAfter: clamped to uint32 (2106), 0
// for the zero time.
func unixSeconds(t time.Time) uint32 {
	switch u := t.Unix(); {
	case t.IsZero() || u <= 0:
		return 0
	case u > math.MaxUint32:
		return math.MaxUint32
	default:
		return uint32(u)
	}
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
	return r.setStatus(k, int8(idx), status, int8(c.Reason), at, unixSeconds(c.NotAfter))
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

// signInline is the largest number of changed entries Apply signs itself;
// beyond it (a bulk issuance) it leaves them to Run's workers on every
// core and to on-demand signing.
const signInline = 256

// Apply records the statuses the feed delivers and signs the responses
// that changed before it returns, up to signInline of them (so that when
// an issuance or a revocation is acknowledged, its OCSP answer is
// ready; beyond that, a bulk change, they are signed by Run's workers or
// on the first request). It returns the serials it recorded as newly
// revoked (for the CRL publisher and the log).
func (r *Responder) Apply(changes []store.CertStatus) (revoked []string) {
	var buf []byte
	var changed []serialKey
	now := r.o.Now().Unix()
	for _, c := range changes {
		if !r.apply(c, &buf) {
			continue
		}
		if c.Status == store.CertRevoked {
			revoked = append(revoked, c.Serial)
		}
		if k, ok := keyOf(buf); ok {
			changed = append(changed, k)
		}
	}
	if len(changed) > signInline {
		r.kick()
		return revoked
	}
	for _, k := range changed {
		e, ok := r.get(k)
		if !ok || e.sigLen != 0 || r.pastGrace(&e, now) {
			continue
		}
		if _, err := r.signKeep(k, e); err != nil {
			r.o.Logger.Error("signing OCSP response", "serial", hexSerial(k.bytes()), "err", err)
		}
	}
	return revoked
}

// kick makes Run sign what is unsigned now rather than at its next tick.
func (r *Responder) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
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
// or past half its validity on all cores, re-signs everything when the
// delegated signer is renewed, and forgets the certificates past their
// grace. Status changes arrive through Apply (the Feed).
func (r *Responder) Run(ctx context.Context) {
	refresh := time.NewTicker(min(r.o.Validity/8, time.Minute))
	defer refresh.Stop()
	r.refreshAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			r.refreshAll(ctx)
		case <-refresh.C:
			if err := r.refreshSigners(); err != nil {
				r.o.Logger.Error("refreshing OCSP signer", "err", err)
			}
			r.refreshAll(ctx)
		}
	}
}

// compactEvery is how often refreshAll drops the certificates past their
// grace (between, they are neither re-signed nor answered).
const compactEvery = time.Hour

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
	nowUnix := r.o.Now().Unix()
	due := r.o.Now().Add(-r.o.Validity / 2).Unix()
	expired := 0
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
			if r.pastGrace(e, nowUnix) {
				expired++
				continue
			}
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
	if expired > 0 && nowUnix-r.lastCompact >= int64(compactEvery/time.Second) {
		r.lastCompact = nowUnix
		r.compact(nowUnix)
	}
	if n := failed.Load(); n > 0 {
		r.o.Logger.Error("signing OCSP responses failed", "count", n, "err", firstErr.Load())
	}
	if n := signed.Load(); n > 0 {
		r.o.Logger.Info("signed OCSP responses", "count", n, "changed_meanwhile", skipped.Load(), "took", time.Since(start).Round(time.Millisecond))
	}
}

// compact forgets the certificates past their grace.
func (r *Responder) compact(now int64) {
	start := time.Now()
	cutoff := now - int64(r.o.ExpiredGrace/time.Second)
	n := 0
	for i := range r.shards {
		n += r.shards[i].compact(cutoff)
	}
	if n > 0 {
		r.count.Add(int64(-n))
		r.Stats.Forgotten.Add(int64(n))
		r.o.Logger.Info("OCSP forgot certificates past their grace", "count", n, "grace", r.o.ExpiredGrace, "took", time.Since(start).Round(time.Millisecond))
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
			if r.pastGrace(e, now) {
				continue
			}
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
