// Package verify is the verification API for submission sites
// (PRODUCT.md, Revocation and verification): given a client certificate
// and, optionally, the username logging in, it answers whether the
// certificate is zbca's, valid, not revoked and that enterprise's, and how
// many days it has left, with a message in Chinese and English.
//
// The core (this file and its neighbours) knows nothing of HTTP; http.go
// serves it on the HTTPS listener. verify/client is the Go middleware for
// submission sites.
package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/expiry"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

// Store is what verification reads: both are single primary-key lookups,
// safe for concurrent use, and may be served by a replica.
type Store interface {
	// CertRevocation is asked at every verification (the status is never
	// cached); found is false for an unknown serial.
	CertRevocation(ctx context.Context, serial string) (r store.Revocation, found bool, err error)
	// GetCertificate is asked once per certificate, before it is cached;
	// zerr.NotFound for an unknown serial.
	GetCertificate(ctx context.Context, serial string) (*store.Certificate, error)
}

// Current answers a certificate's revocation state from memory when, and
// only when, it can vouch that memory is as current as the store
// (revocation.Responder.Status): ok false means "read the store".
type Current interface {
	Status(ctx context.Context, serial string) (r store.Revocation, ok bool)
}

// Options configures New.
type Options struct {
	// Root is zbca's root; Issuers every issuing CA zbca has had
	// (ca.Authority.IssuingCAs). Each must be signed by Root.
	Root    *x509.Certificate
	Issuers []*x509.Certificate
	Store   Store
	Keys    KeyStore
	// Current, when set, is asked before the store for the status of a
	// known certificate.
	Current Current
	// ExpiringDays: a valid certificate with at most this many days left
	// is answered Expiring.
	ExpiringDays int
	// CacheSize bounds the verified certificates kept by fingerprint
	// (default 100,000).
	CacheSize int
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service verifies certificates. Safe for concurrent use.
type Service struct {
	root     *x509.Certificate
	issuers  []*x509.Certificate
	store    Store
	current  Current
	keyStore KeyStore
	expiring int
	now      func() time.Time
	log      *slog.Logger
	cache    *certCache
	keys     keyCache
	counts   [8]atomic.Int64 // by index in Results
}

// New checks the options and returns a Service.
func New(o Options) (*Service, error) {
	switch {
	case o.Root == nil || len(o.Issuers) == 0:
		return nil, errors.New("verify: the root and at least one issuing CA are required")
	case o.Store == nil || o.Keys == nil:
		return nil, errors.New("verify: store and key store are required")
	case o.ExpiringDays < 0:
		return nil, errors.New("verify: negative expiring days")
	}
	for _, is := range o.Issuers {
		if err := is.CheckSignatureFrom(o.Root); err != nil {
			return nil, fmt.Errorf("verify: issuing CA %q is not signed by the root: %w", is.Subject.CommonName, err)
		}
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 100000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{root: o.Root, issuers: o.Issuers, store: o.Store, current: o.Current, keyStore: o.Keys, expiring: o.ExpiringDays,
		now: o.Now, log: o.Logger, cache: newCertCache(o.CacheSize), keys: keyCache{entries: map[[32]byte]keyEntry{}}}, nil
}

// Request asks about one certificate.
type Request struct {
	// Certificate is the leaf, optionally followed by its chain: PEM, or
	// base64 of concatenated DER (see splitInput). The chain is not
	// needed: zbca verifies through the issuing CAs it knows.
	Certificate []byte
	// Username, when not empty, is who is logging in: a certificate of
	// another enterprise is a Mismatch.
	Username string
}

// Verify answers a request. Its error is for failures that are not the
// certificate's fault (the store), of kind zerr.Internal; every problem
// with the certificate is an Answer.
func (s *Service) Verify(ctx context.Context, req Request) (*Answer, error) {
	a, err := s.verify(ctx, req)
	if err != nil {
		return nil, err
	}
	a.Valid = a.Result.OK()
	a.message()
	for i, r := range Results {
		if r == a.Result {
			s.counts[i].Add(1)
		}
	}
	if s.log.Enabled(ctx, slog.LevelDebug) { // the arguments alone cost allocations
		s.log.Debug("verified", "result", a.Result, "serial", a.Serial, "username", req.Username)
	}
	return a, nil
}

// Count returns how many answers had result r.
func (s *Service) Count(r Result) int64 {
	for i, x := range Results {
		if x == r {
			return s.counts[i].Load()
		}
	}
	return 0
}

// CacheLen returns the number of certificates in the cache.
func (s *Service) CacheLen() int { return s.cache.len() }

func (s *Service) verify(ctx context.Context, req Request) (*Answer, error) {
	// The same text as before (a login again) is found by its hash,
	// without decoding it; otherwise the leaf by its fingerprint.
	text := bytes.TrimSpace(req.Certificate)
	ik := inputKey(text)
	var st store.Revocation
	loaded := false
	c := s.cache.get(ik)
	if c == nil {
		der, _, err := splitInput(text)
		if err != nil {
			return &Answer{Result: Malformed, Detail: err.Error()}, nil
		}
		fp := sha256.Sum256(der)
		if c = s.cache.get(fp); c == nil {
			var a *Answer
			c, st, a, err = s.load(ctx, der, fp)
			if a != nil || err != nil {
				return a, err
			}
			loaded = true
			s.cache.put(fp, c)
		}
		s.cache.put(ik, c)
	}
	if !loaded && s.current != nil {
		var ok bool
		if st, ok = s.current.Status(ctx, c.serial); ok {
			loaded = true
		}
	}
	if !loaded {
		// The one store lookup of a known certificate: its status, by
		// primary key, so that a revocation counts at once.
		var found bool
		var err error
		if st, found, err = s.store.CertRevocation(ctx, c.serial); err != nil {
			return nil, zerr.Wrap(zerr.Internal, err, "reading certificate status")
		}
		if !found {
			return &Answer{Result: Untrusted, Serial: c.serial, Detail: "the serial is not in zbca's records"}, nil
		}
	}
	return s.decide(c, st, req.Username), nil
}

// inputKey is the cache key of a certificate field's text; "input" keeps
// it apart from the fingerprints (hashes of DER) in the same cache.
func inputKey(text []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("input\x00"))
	h.Write(text)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// decide applies the status and the clock to a verified certificate.
func (s *Service) decide(c *cert, st store.Revocation, username string) *Answer {
	now := s.now()
	e := c.enterprise
	days := expiry.DaysLeft(c.notAfter, now)
	a := &Answer{Enterprise: &e, Serial: c.serial, NotBefore: c.notBefore, NotAfter: c.notAfter, DaysLeft: &days}
	switch {
	case st.Revoked:
		a.Result, a.RevokedAt, a.RevocationReason = Revoked, time.Unix(0, st.At).UTC(), revocation.Reason(st.Reason).String()
	case username != "" && username != e.Username:
		a.Result, a.ClaimedUsername = Mismatch, username
	case expiry.Expired(c.notAfter, now):
		a.Result = Expired
	case now.Before(c.notBefore):
		a.Result = NotYetValid
	case days <= s.expiring:
		a.Result = Expiring
	default:
		a.Result = Valid
	}
	return a
}

// load parses and verifies a certificate not in the cache, and reads its
// record. It returns an Answer instead when the certificate is malformed
// or not zbca's.
func (s *Service) load(ctx context.Context, der []byte, fp [32]byte) (*cert, store.Revocation, *Answer, error) {
	var none store.Revocation
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, none, &Answer{Result: Malformed, Detail: "not an X.509 certificate: " + err.Error()}, nil
	}
	if leaf.PublicKeyAlgorithm == x509.UnknownPublicKeyAlgorithm {
		return nil, none, &Answer{Result: Malformed, Detail: "unsupported public key algorithm"}, nil
	}
	if err := ca.CheckKey(leaf.PublicKey); err != nil {
		return nil, none, &Answer{Result: Malformed, Detail: "unsupported key: " + err.Error()}, nil
	}
	serial := ca.SerialHex(leaf.SerialNumber)
	untrusted := func(detail string) (*cert, store.Revocation, *Answer, error) {
		return nil, none, &Answer{Result: Untrusted, Detail: detail}, nil
	}
	if err := s.checkChain(leaf); err != nil {
		return untrusted(err.Error())
	}
	rec, err := s.store.GetCertificate(ctx, serial)
	if errors.Is(err, zerr.NotFound) {
		return untrusted("signed by a zbca issuing CA, but the serial is not in zbca's records")
	}
	if err != nil {
		return nil, none, nil, zerr.Wrap(zerr.Internal, err, "reading certificate")
	}
	if rec.FingerprintSHA256 != hex.EncodeToString(fp[:]) || rec.Profile != store.ProfileClient {
		return untrusted("the certificate differs from zbca's record of this serial")
	}
	c := &cert{serial: serial, notBefore: leaf.NotBefore, notAfter: leaf.NotAfter,
		enterprise: Enterprise{Username: rec.Username, ID: leaf.Subject.SerialNumber}}
	if c.enterprise.Username == "" {
		c.enterprise.Username = leaf.Subject.CommonName
	}
	if len(leaf.Subject.Organization) > 0 {
		c.enterprise.Name = leaf.Subject.Organization[0]
	}
	st := store.Revocation{Revoked: rec.Status == store.CertRevoked, Reason: rec.RevocationReason}
	if !rec.RevokedAt.IsZero() {
		st.At = rec.RevokedAt.UnixNano()
	}
	return c, st, nil, nil
}

// checkChain verifies that leaf is a client certificate signed by one of
// zbca's issuing CAs (each of which New checked against the root). Dates
// are not checked here: they are the answer, not a reason to distrust.
func (s *Service) checkChain(leaf *x509.Certificate) error {
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return errors.New("a CA certificate, not a client certificate")
	}
	client := len(leaf.ExtKeyUsage) == 0
	for _, u := range leaf.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			client = true
		}
	}
	if !client {
		return errors.New("not a client certificate (no clientAuth extended key usage)")
	}
	named := false
	for _, is := range s.issuers {
		if !bytes.Equal(leaf.RawIssuer, is.RawSubject) {
			continue
		}
		named = true
		if len(leaf.AuthorityKeyId) > 0 && len(is.SubjectKeyId) > 0 && !bytes.Equal(leaf.AuthorityKeyId, is.SubjectKeyId) {
			continue
		}
		if leaf.CheckSignatureFrom(is) == nil {
			return nil
		}
	}
	if named {
		return errors.New("names a zbca issuing CA as its issuer, but the signature does not verify with its key")
	}
	return fmt.Errorf("not issued by zbca (issuer %q)", truncate(leaf.Issuer.String(), 200))
}
