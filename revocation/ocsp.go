package revocation

import (
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/ocspder"
	"github.com/zbca/zbca/store"
)

// StatusSource streams certificate statuses changed since a time (zero:
// all); store.SQL implements it.
type StatusSource interface {
	ForEachStatus(ctx context.Context, since time.Time, fn func(store.CertStatus) error) (time.Time, error)
}

// ResponderOptions configures NewResponder.
type ResponderOptions struct {
	// Issuers are every issuing CA zbca has had.
	Issuers []ca.CRLIssuer
	// Root answers for the issuing CAs themselves (nginx's "ssl_ocsp on"
	// asks about the issuing CA too), signed by the root key.
	Root ca.CRLIssuer
	// Delegated returns the current delegated OCSP signer; when nil, the
	// issuing CA keys sign their own responses.
	Delegated func() (*x509.Certificate, crypto.Signer)
	Source    StatusSource
	// Validity: nextUpdate − thisUpdate of pre-signed responses (default
	// 1h); they are re-signed at half of it.
	Validity time.Duration
	// LiveWorkers bounds concurrent live signatures (nonce requests,
	// SHA-256 CertIDs, never-issued serials); default 2×CPUs.
	LiveWorkers int
	// LiveWait is how long a live request may wait for a worker before it
	// gets tryLater (default 50ms).
	LiveWait time.Duration
	// Lookup, when set, is asked for a serial missing from memory before
	// it is answered as never issued (store.SQL.CertStatus); it must
	// honour its context, whose deadline is LookupTimeout (default 100ms).
	Lookup        func(ctx context.Context, serial string) (*store.CertStatus, error)
	LookupTimeout time.Duration
	// OnChange is called when polling finds a revocation made elsewhere
	// (the CLI, another node): the CRL publisher's Trigger.
	OnChange func()
	Logger   *slog.Logger
	Now      func() time.Time
}

// entry is the responder's view of one certificate. body is the signed
// response for a SHA-1 CertID (the RFC 5019 profile, what nginx sends),
// assembled with signer's certificates when served.
type entry struct {
	issuer     int8 // index in Responder.issuers
	status     int8 // ocspder.Good or Revoked
	reason     int8
	revokedAt  int64 // unix seconds
	thisUpdate int64 // unix seconds; 0 while unsigned
	nextUpdate int64
	body       []byte
	signer     *ocspder.Signer
}

// issuer is a CA the responder answers for.
type issuer struct {
	ca.CRLIssuer
	nameHash map[crypto.Hash][]byte
	keyHash  map[crypto.Hash][]byte
	signer   atomic.Pointer[ocspder.Signer]
	// delegatedCert is the responder certificate behind signer, to notice
	// a renewal.
	delegatedCert atomic.Pointer[x509.Certificate]
	isRoot        bool
}

const shards = 256

type shard struct {
	mu sync.RWMutex
	m  map[string]*entry
}

// Responder answers OCSP requests from pre-signed responses held in
// memory (RFC 6960, RFC 5019 profile). Safe for concurrent use.
type Responder struct {
	o       ResponderOptions
	issuers []*issuer
	shards  [shards]shard
	live    chan struct{}
	watermk time.Time
	// lastPoll is when the previous poll started: rows committed after it
	// carry an updated_at at most a commit's duration older.
	lastPoll time.Time
	loaded   atomic.Bool
	count    atomic.Int64
	// stats, read by metrics
	Stats Stats
}

// Stats counts answers by kind.
type Stats struct {
	Good, Revoked, NotIssued, Unauthorized, Malformed, TryLater, Live atomic.Int64
}

// NewResponder prepares a responder; call Load before serving and Run in
// the background.
func NewResponder(o ResponderOptions) (*Responder, error) {
	if len(o.Issuers) == 0 || o.Source == nil || o.Root.Cert == nil {
		return nil, errors.New("revocation: responder needs issuers, the root and a status source")
	}
	if o.Validity <= 0 {
		o.Validity = time.Hour
	}
	if o.LiveWorkers <= 0 {
		o.LiveWorkers = 2 * runtime.GOMAXPROCS(0)
	}
	if o.LookupTimeout <= 0 {
		o.LookupTimeout = 100 * time.Millisecond
	}
	if o.LiveWait <= 0 {
		o.LiveWait = 50 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Responder{o: o, live: make(chan struct{}, o.LiveWorkers)}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*entry)
	}
	all := append(append([]ca.CRLIssuer{}, o.Issuers...), o.Root)
	for i, c := range all {
		is, err := newIssuer(c)
		if err != nil {
			return nil, err
		}
		is.isRoot = i == len(all)-1
		r.issuers = append(r.issuers, is)
	}
	if err := r.refreshSigners(); err != nil {
		return nil, err
	}
	return r, nil
}

func newIssuer(c ca.CRLIssuer) (*issuer, error) {
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.Cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, fmt.Errorf("revocation: issuer %s public key: %w", c.Name, err)
	}
	is := &issuer{CRLIssuer: c, nameHash: map[crypto.Hash][]byte{}, keyHash: map[crypto.Hash][]byte{}}
	for h, f := range map[crypto.Hash]func() hash.Hash{crypto.SHA1: sha1.New, crypto.SHA256: sha256.New, crypto.SHA384: sha512.New384, crypto.SHA512: sha512.New} {
		hn := f()
		hn.Write(c.Cert.RawSubject)
		is.nameHash[h] = hn.Sum(nil)
		hk := f()
		hk.Write(spki.PublicKey.RightAlign())
		is.keyHash[h] = hk.Sum(nil)
	}
	return is, nil
}

// refreshSigners (re)builds each issuer's signer, picking up a renewed
// delegated certificate. It reports whether any changed.
func (r *Responder) refreshSigners() error {
	for _, is := range r.issuers {
		var s *ocspder.Signer
		var err error
		switch {
		case is.isRoot || r.o.Delegated == nil:
			if is.signer.Load() != nil {
				continue
			}
			s, err = ocspder.NewSigner(is.Signer, is.Cert)
		default:
			cert, key := r.o.Delegated()
			if cert == nil {
				return errors.New("revocation: no delegated OCSP signer")
			}
			if is.delegatedCert.Load() == cert {
				continue
			}
			if err := cert.CheckSignatureFrom(is.Cert); err != nil {
				// The delegated signer belongs to another issuing CA: this
				// (older) one signs its own responses.
				if is.signer.Load() != nil {
					continue
				}
				s, err = ocspder.NewSigner(is.Signer, is.Cert)
				if err != nil {
					return err
				}
				is.signer.Store(s)
				continue
			}
			s, err = ocspder.NewSigner(key, cert, cert.Raw)
			if err == nil {
				is.delegatedCert.Store(cert)
			}
		}
		if err != nil {
			return fmt.Errorf("revocation: OCSP signer for %s: %w", is.Name, err)
		}
		is.signer.Store(s)
		r.o.Logger.Info("OCSP signer ready", "issuer", is.Name)
	}
	return nil
}

func (r *Responder) shardOf(serial []byte) *shard {
	return &r.shards[serial[len(serial)-1]]
}

func (r *Responder) get(serial []byte) *entry {
	sh := r.shardOf(serial)
	sh.mu.RLock()
	e := sh.m[string(serial)]
	sh.mu.RUnlock()
	return e
}

func (r *Responder) put(serial []byte, e *entry) {
	sh := r.shardOf(serial)
	sh.mu.Lock()
	if _, ok := sh.m[string(serial)]; !ok {
		r.count.Add(1)
	}
	sh.m[string(serial)] = e
	sh.mu.Unlock()
}

// Count is the number of certificates the responder knows.
func (r *Responder) Count() int64 { return r.count.Load() }

func (r *Responder) issuerByID(id string) int {
	for i, is := range r.issuers {
		if is.ID == id && !is.isRoot {
			return i
		}
	}
	return -1
}

// Load reads every certificate's status from the source. Responses are
// signed in the background by Run (and on demand meanwhile), so that a
// restart with a million certificates serves within seconds.
func (r *Responder) Load(ctx context.Context) error {
	start := time.Now()
	n := 0
	var buf []byte
	wm, err := r.o.Source.ForEachStatus(ctx, time.Time{}, func(c store.CertStatus) error {
		if r.apply(c, &buf) {
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loading certificate statuses: %w", err)
	}
	// The issuing CAs, answered by the root.
	for _, is := range r.issuers {
		if !is.isRoot {
			r.put(is.Cert.SerialNumber.Bytes(), &entry{issuer: int8(len(r.issuers) - 1), status: ocspder.Good})
		}
	}
	r.watermk = wm
	r.lastPoll = start
	r.loaded.Store(true)
	r.o.Logger.Info("OCSP responder loaded", "certificates", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// apply records a status; it reports whether the entry is new or changed.
func (r *Responder) apply(c store.CertStatus, buf *[]byte) bool {
	idx := r.issuerByID(c.Issuer)
	if idx < 0 {
		return false
	}
	var err error
	if *buf, err = serialBytes((*buf)[:0], c.Serial); err != nil {
		return false
	}
	serial := *buf
	status := int8(ocspder.Good)
	var at int64
	if c.Status == store.CertRevoked {
		status, at = ocspder.Revoked, c.RevokedAt.Unix()
	}
	if old := r.get(serial); old != nil && old.status == status && old.revokedAt == at {
		return false
	}
	r.put(serial, &entry{issuer: int8(idx), status: status, reason: int8(c.Reason), revokedAt: at})
	return true
}

// Update signs the response for a certificate now (after its issuance or
// revocation), before the caller answers anyone.
func (r *Responder) Update(_ context.Context, rec *store.Certificate) error {
	idx := r.issuerByID(rec.Issuer)
	if idx < 0 {
		return fmt.Errorf("revocation: certificate %s has an unknown issuer %s", rec.Serial, rec.Issuer)
	}
	serial, err := serialBytes(nil, rec.Serial)
	if err != nil {
		return err
	}
	e := &entry{issuer: int8(idx), status: ocspder.Good, reason: int8(rec.RevocationReason)}
	if rec.Status == store.CertRevoked {
		e.status, e.revokedAt = ocspder.Revoked, rec.RevokedAt.Unix()
	}
	if err := r.sign(serial, e); err != nil {
		return err
	}
	r.put(serial, e)
	return nil
}

// OnIssued is ca.Options.OnIssued.
func (r *Responder) OnIssued(rec *store.Certificate) {
	if err := r.Update(context.Background(), rec); err != nil {
		r.o.Logger.Error("signing first OCSP response", "serial", rec.Serial, "err", err)
	}
}

// sign fills e's body for a SHA-1 CertID.
func (r *Responder) sign(serial []byte, e *entry) error {
	is := r.issuers[e.issuer]
	s := is.signer.Load()
	now := r.o.Now().UTC().Truncate(time.Second)
	this := now.Add(-time.Minute)
	resp := &ocspder.Response{
		Status: int(e.status), HashAlgorithm: crypto.SHA1, IssuerNameHash: is.nameHash[crypto.SHA1], IssuerKeyHash: is.keyHash[crypto.SHA1],
		Serial: serial, Reason: ocspder.NoReason, ThisUpdate: this, NextUpdate: this.Add(r.o.Validity), ProducedAt: now,
	}
	if e.status == ocspder.Revoked {
		resp.RevokedAt = time.Unix(e.revokedAt, 0)
		resp.Reason = int(e.reason)
	}
	body, err := s.SignBody(resp)
	if err != nil {
		return err
	}
	e.body, e.signer, e.thisUpdate, e.nextUpdate = body, s, this.Unix(), resp.NextUpdate.Unix()
	return nil
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
		case <-refresh.C:
			if err := r.refreshSigners(); err != nil {
				r.o.Logger.Error("refreshing OCSP signer", "err", err)
			}
			r.refreshAll(ctx)
		}
	}
}

// poll applies the changes committed since the last poll (with a few
// seconds of overlap, as commit order and timestamps can differ).
func (r *Responder) poll(ctx context.Context) {
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
		if r.apply(c, &buf) {
			changed++
			revoked = revoked || c.Status == store.CertRevoked
			serial := append([]byte(nil), buf...)
			if e := r.get(serial); e != nil && e.body == nil {
				ne := *e
				if err := r.sign(serial, &ne); err != nil {
					r.o.Logger.Error("signing OCSP response", "serial", c.Serial, "err", err)
				} else {
					r.put(serial, &ne)
				}
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			r.o.Logger.Warn("polling certificate statuses", "err", err)
		}
		return
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
}

// refreshAll signs, on every core, the entries that are unsigned, past half
// their validity, or signed by a signer that is no longer current.
func (r *Responder) refreshAll(ctx context.Context) {
	start := time.Now()
	due := r.o.Now().Add(-r.o.Validity / 2).Unix()
	type job struct {
		serial string
		e      *entry
	}
	jobs := make(chan job, 1024)
	var wg sync.WaitGroup
	var signed, failed atomic.Int64
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				ne := *j.e
				if err := r.sign([]byte(j.serial), &ne); err != nil {
					failed.Add(1)
					continue
				}
				// Replace only if nobody changed the entry meanwhile.
				sh := r.shardOf([]byte(j.serial))
				sh.mu.Lock()
				if sh.m[j.serial] == j.e {
					sh.m[j.serial] = &ne
				}
				sh.mu.Unlock()
				signed.Add(1)
			}
		}()
	}
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		var todo []job
		for k, e := range sh.m {
			if e.body == nil || e.thisUpdate < due || e.signer != r.issuers[e.issuer].signer.Load() {
				todo = append(todo, job{k, e})
			}
		}
		sh.mu.RUnlock()
		for _, j := range todo {
			select {
			case jobs <- j:
			case <-ctx.Done():
				close(jobs)
				wg.Wait()
				return
			}
		}
	}
	close(jobs)
	wg.Wait()
	if n := signed.Load(); n > 0 || failed.Load() > 0 {
		r.o.Logger.Info("signed OCSP responses", "count", n, "failed", failed.Load(), "took", time.Since(start).Round(time.Millisecond))
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
		for _, e := range sh.m {
			if e.body == nil {
				unsigned++
			} else if e.thisUpdate < oldest {
				oldest = e.thisUpdate
			}
		}
		sh.mu.RUnlock()
	}
	return time.Duration(now-oldest) * time.Second, unsigned
}

func hexSerial(b []byte) string { return hex.EncodeToString(b) }
