package revocation

import (
	"context"
	"crypto"
	"crypto/subtle"
	"errors"
	"time"

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
	e := r.get(req.Serial)
	if e != nil && int(e.issuer) != idx {
		e = nil // a serial of another CA: not ours under this issuer
	}
	if e != nil && !req.HasNonce && req.HashAlgorithm == crypto.SHA1 && e.body != nil && time.Now().Unix() < e.nextUpdate {
		if e.status == ocspder.Revoked {
			r.Stats.Revoked.Add(1)
		} else {
			r.Stats.Good.Add(1)
		}
		return Answer{DER: e.signer.AppendResponse(dst, e.body), Cacheable: true,
			ThisUpdate: time.Unix(e.thisUpdate, 0), NextUpdate: time.Unix(e.nextUpdate, 0)}
	}
	return r.respondLive(req, idx, e, dst)
}

var errBusy = errors.New("busy")

// notIssuedValidity is the nextUpdate distance of a "never issued" answer.
const notIssuedValidity = 30 * time.Second

// lookup asks the store for a serial missing from memory; a certificate
// found is added (and signed by the next refresh or on demand).
func (r *Responder) lookup(serial []byte, idx int) *entry {
	if r.o.Lookup == nil || r.issuers[idx].isRoot {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.o.LookupTimeout)
	defer cancel()
	c, err := r.o.Lookup(ctx, hexSerial(serial))
	if err != nil || c == nil {
		return nil
	}
	var buf []byte
	if !r.apply(*c, &buf) {
		// Known already (a race with the poller), or of another issuer.
		if e := r.get(serial); e != nil && int(e.issuer) == idx {
			return e
		}
		return nil
	}
	if e := r.get(serial); e != nil && int(e.issuer) == idx {
		return e
	}
	return nil
}

func (r *Responder) respondLive(req *ocspder.Request, idx int, e *entry, dst []byte) Answer {
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
	is := r.issuers[idx]
	s := is.signer.Load()
	now := r.o.Now().UTC().Truncate(time.Second)
	this := now.Add(-time.Minute)
	resp := &ocspder.Response{
		HashAlgorithm: req.HashAlgorithm, IssuerNameHash: is.nameHash[req.HashAlgorithm], IssuerKeyHash: is.keyHash[req.HashAlgorithm],
		Serial: req.Serial, Reason: ocspder.NoReason, ThisUpdate: this, NextUpdate: this.Add(r.o.Validity), ProducedAt: now,
	}
	if req.HasNonce {
		resp.Nonce = req.Nonce
	}
	if e == nil {
		// Not in memory: perhaps issued a moment ago by another process
		// (the CLI, another node) and not polled yet. Ask the store, with
		// a deadline short enough that a slow database never stalls the
		// handshakes behind this request.
		e = r.lookup(req.Serial, idx)
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
		resp.Status, resp.RevokedAt, resp.Reason = ocspder.Revoked, time.Unix(e.revokedAt, 0), int(e.reason)
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
