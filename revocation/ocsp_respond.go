package revocation

import (
	"context"
	"crypto"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/ocspder"
)

// Answer is what Respond decided.
type Answer struct {
	// DER is the complete OCSPResponse.
	DER []byte
	// Cacheable is true for pre-signed answers; ThisUpdate/NextUpdate are
	// then set (for the HTTP caching headers).
	Cacheable  bool
	ThisUpdate time.Time
	NextUpdate time.Time
	// ETag, when not zero, identifies this response among the responses
	// for the same request (it is taken from the signature).
	ETag uint64
}

// Respond answers a parsed request. It never touches the database: known
// serials come from memory; live signatures (nonce, other CertID hashes,
// never-issued serials, responses not signed yet) go through a bounded pool
// and get tryLater when it stays full for LiveWait.
func (r *Responder) Respond(req *ocspder.Request, dst []byte) Answer {
	idx := r.matchIssuer(req)
	if idx < 0 {
		r.Stats.Unauthorized.Add(1)
		return Answer{DER: ocspder.Unauthorized}
	}
	if is := r.issuers[idx]; is.isRoot && !is.CanSign() {
		return r.rootMaterialAnswer(req)
	}
	k, ok := keyOf(req.Serial)
	if !ok {
		// Longer than 20 octets: none of ours.
		return r.respondLive(req, idx, nil, nil, dst)
	}
	if !req.HasNonce && req.HashAlgorithm == crypto.SHA1 {
		if a, ok := r.cached(&k, idx, dst); ok {
			return a
		}
	}
	e, found := r.get(k)
	if !found || int(e.issuer) != idx {
		return r.respondLive(req, idx, &k, nil, dst) // a serial of another CA is not ours under this issuer
	}
	if r.pastGrace(&e, r.o.Now().Unix()) {
		r.Stats.Unauthorized.Add(1)
		return Answer{DER: ocspder.Unauthorized}
	}
	return r.respondLive(req, idx, &k, &e, dst)
}

// cached answers from k's pre-signed response, if it has a valid one.
func (r *Responder) cached(k *serialKey, idx int, dst []byte) (Answer, bool) {
	sh := r.shardOf(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i, ok := sh.idx[*k]
	if !ok {
		return Answer{}, false
	}
	e := &sh.ents[i]
	if int(e.issuer) != idx || r.pastGrace(e, r.o.Now().Unix()) || !e.signed(r.o.Now().Unix()) {
		return Answer{}, false
	}
	resp := r.response(k, e)
	sig := sh.sig(e)
	der, err := r.signerAt(e.signer).AppendSigned(dst, &resp, sig)
	if err != nil {
		return Answer{}, false
	}
	if e.status == ocspder.Revoked {
		r.Stats.Revoked.Add(1)
	} else {
		r.Stats.Good.Add(1)
	}
	return Answer{DER: der, Cacheable: true, ThisUpdate: time.Unix(e.thisUpdate, 0), NextUpdate: time.Unix(e.nextUpdate, 0), ETag: sigTag(sig)}, true
}

// sigTag folds the end of a signature into an ETag value.
func sigTag(sig []byte) uint64 {
	var t uint64
	for _, b := range sig[max(0, len(sig)-8):] {
		t = t<<8 | uint64(b)
	}
	return t | 1
}

var errBusy = errors.New("busy")

// notIssuedValidity is the nextUpdate distance of a "never issued" answer.
const notIssuedValidity = 30 * time.Second

// errLookup: the store could not say in time whether a serial is ours.
var errLookup = errors.New("status lookup failed")

// errPastGrace: the serial is ours, but its certificate ended more than
// ExpiredGrace ago; the responder keeps no status for it.
var errPastGrace = errors.New("certificate past its grace")

// lookup asks the store for a serial missing from memory; a certificate
// found is added (and signed by the caller, the next refresh or on demand).
// It returns errLookup when the store failed or was too slow: the serial
// may be ours, issued a moment ago, so "never issued" would be a lie.
func (r *Responder) lookup(k *serialKey, idx int) (*entry, error) {
	if r.o.Lookup == nil || r.issuers[idx].isRoot {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.o.LookupTimeout)
	defer cancel()
	c, err := r.o.Lookup(ctx, hexSerial(k.bytes()))
	if err != nil {
		return nil, errLookup
	}
	if c == nil {
		return nil, nil
	}
	if c.NotAfter.Before(r.graceCutoff()) {
		return nil, errPastGrace
	}
	var buf []byte
	r.apply(*c, &buf) // or known already: a race with the feed
	if e, ok := r.get(*k); ok && int(e.issuer) == idx {
		return &e, nil
	}
	return nil, nil
}

// respondLive signs an answer now. k is nil for a serial that cannot be
// ours; e is nil when the serial is not in memory.
func (r *Responder) respondLive(req *ocspder.Request, idx int, k *serialKey, e *entry, dst []byte) Answer {
	t := time.NewTimer(r.o.LiveWait)
	select {
	case r.live <- struct{}{}:
		t.Stop()
	case <-t.C:
		r.Stats.TryLater.Add(1)
		return Answer{DER: ocspder.TryLater}
	}
	defer func() { <-r.live }()
	r.Stats.Live.Add(1)
	if e == nil && k != nil {
		// Not in memory: perhaps issued a moment ago by another process
		// (the CLI, another node) and not applied from the feed yet. Ask the store, with
		// a deadline short enough that a slow database never stalls the
		// handshakes behind this request.
		var err error
		switch e, err = r.lookup(k, idx); {
		case errors.Is(err, errPastGrace):
			r.Stats.Unauthorized.Add(1)
			return Answer{DER: ocspder.Unauthorized}
		case err != nil:
			r.Stats.TryLater.Add(1)
			return Answer{DER: ocspder.TryLater}
		}
	}
	if e != nil && !req.HasNonce && req.HashAlgorithm == crypto.SHA1 {
		// A known certificate without a valid pre-signed response (after
		// a start, a change made elsewhere): sign it once for everyone.
		if _, err := r.signKeep(*k, *e); err != nil {
			r.o.Logger.Error("signing OCSP response", "serial", hexSerial(req.Serial), "err", err)
			return Answer{DER: ocspder.InternalError}
		}
		if a, ok := r.cached(k, idx, dst); ok {
			return a
		}
		// Changed meanwhile: answer with a signature of its own below.
	}
	is := r.issuers[idx]
	s := is.signer.Load()
	now := r.o.Now().UTC().Truncate(time.Second)
	this := now.Add(-backdate)
	resp := &ocspder.Response{
		HashAlgorithm: req.HashAlgorithm, IssuerNameHash: is.nameHash[req.HashAlgorithm], IssuerKeyHash: is.keyHash[req.HashAlgorithm],
		Serial: req.Serial, Reason: ocspder.NoReason, ThisUpdate: this, NextUpdate: this.Add(r.o.Validity), ProducedAt: now,
	}
	if req.HasNonce {
		resp.Nonce = req.Nonce
	}
	notIssued := false
	switch {
	case e == nil:
		// Never issued by this CA: "revoked" with the extended revoke
		// extension, never "good" (RFC 6960 §2.2). Not cacheable and
		// short-lived: a certificate issued meanwhile must not be locked
		// out by a cache for an hour.
		resp.MarkNotIssued()
		resp.ThisUpdate, resp.NextUpdate = now, now.Add(notIssuedValidity)
		notIssued = true
		r.Stats.NotIssued.Add(1)
	case e.status == ocspder.Revoked:
		resp.Status, resp.RevokedAt, resp.Reason = ocspder.Revoked, time.Unix(0, e.revokedAt), ocspReason(e.reason)
		r.Stats.Revoked.Add(1)
	default:
		resp.Status = ocspder.Good
		r.Stats.Good.Add(1)
	}
	body, err := s.SignBody(resp)
	if err != nil {
		r.o.Logger.Error("signing live OCSP response", "serial", hexSerial(req.Serial), "err", err)
		return Answer{DER: ocspder.InternalError}
	}
	a := Answer{DER: s.AppendResponse(dst, body)}
	if !req.HasNonce && !notIssued {
		a.Cacheable, a.ThisUpdate, a.NextUpdate = true, this, resp.NextUpdate
	}
	return a
}

// matchIssuer finds the CA whose name and key hashes the request carries.
func (r *Responder) matchIssuer(req *ocspder.Request) int {
	for i, is := range r.issuers {
		n, k := is.nameHash[req.HashAlgorithm], is.keyHash[req.HashAlgorithm]
		if n != nil && subtle.ConstantTimeCompare(n, req.IssuerNameHash) == 1 && subtle.ConstantTimeCompare(k, req.IssuerKeyHash) == 1 {
			return i
		}
	}
	return -1
}

// rootMaterialAnswer answers a question put to the root while it is
// offline: about an issuing CA, the answer the last ceremony signed (for
// the request's CertID hash; without the nonce, which RFC 8954 lets a
// responder leave out); about anything else, or once the material ran
// out, "unauthorized" (the responder has nothing signed to say).
func (r *Responder) rootMaterialAnswer(req *ocspder.Request) Answer {
	var m *ca.RootMaterial
	if r.o.RootMaterial != nil {
		m = r.o.RootMaterial()
	}
	if m == nil || !r.o.Now().Before(m.NextUpdate) {
		r.Stats.Unauthorized.Add(1)
		return Answer{DER: ocspder.Unauthorized}
	}
	der := m.OCSP[hexSerial(req.Serial)][req.HashAlgorithm]
	if der == nil {
		r.Stats.Unauthorized.Add(1)
		return Answer{DER: ocspder.Unauthorized}
	}
	r.Stats.Good.Add(1)
	// HTTP caches keep it a day at most, not the material's year: after a
	// compromise ceremony the "revoked" answer must reach relying parties.
	cacheUntil := r.o.Now().Add(rootAnswerMaxAge)
	if m.NextUpdate.Before(cacheUntil) {
		cacheUntil = m.NextUpdate
	}
	return Answer{DER: der, Cacheable: true, ThisUpdate: m.ThisUpdate, NextUpdate: cacheUntil, ETag: sigTag(der)}
}

// rootAnswerMaxAge bounds the HTTP caching of a pre-signed root answer.
const rootAnswerMaxAge = 24 * time.Hour
