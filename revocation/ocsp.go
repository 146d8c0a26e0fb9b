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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/ocspder"
	"github.com/zbca/zbca/store"
)

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
	// RootMaterial, when the root is offline (Root cannot sign), returns
	// the pre-signed root material whose OCSP answers about the issuing
	// CAs are served (ca.Authority.ServedRootMaterial).
	// RevokedIssuing, when set, returns the issuing CAs a root ceremony
	// revoked (ca.Authority.RevokedIssuingCAs): with the root online, its
	// answers about them say revoked.
	RevokedIssuing func() []*x509.Certificate
	RootMaterial   func() *ca.RootMaterial
	// ExpiredGrace is how long after its NotAfter a certificate is kept
	// and answered (default 30 days, config ocsp.expired_grace); after
	// it the responder forgets the certificate and answers "unauthorized"
	// (RFC 5019 §2.2.3: no status for it), so that the table and the
	// re-signing follow the certificates in use, not the history.
	ExpiredGrace time.Duration
	Logger       *slog.Logger
	Now          func() time.Time
}

// DefaultExpiredGrace is ResponderOptions.ExpiredGrace's default.
const DefaultExpiredGrace = 30 * 24 * time.Hour

// issuer is a CA the responder answers for.
type issuer struct {
	ca.CRLIssuer
	nameHash map[crypto.Hash][]byte
	keyHash  map[crypto.Hash][]byte
	// The SHA-1 hashes, for the pre-signed responses.
	sha1Name, sha1Key []byte
	// signer signs live answers; signerIdx is its index in
	// Responder.signers, recorded in the entries it signs.
	signer    atomic.Pointer[ocspder.Signer]
	signerIdx atomic.Uint32
	// delegatedCert is the responder certificate behind signer, to notice
	// a renewal.
	delegatedCert atomic.Pointer[x509.Certificate]
	isRoot        bool
}

// backdate is how far thisUpdate lies before the signing time (producedAt),
// for relying parties whose clocks run a little slow.
const backdate = time.Minute

// Responder answers OCSP requests from pre-signed responses held in
// memory (RFC 6960, RFC 5019 profile). Safe for concurrent use.
type Responder struct {
	o       ResponderOptions
	issuers []*issuer
	shards  [shards]shard
	// signers is every signer entries were signed with (append-only, so
	// that an entry names its signer with a small index).
	signersMu sync.Mutex
	signers   atomic.Pointer[[]*ocspder.Signer]
	live      chan struct{}
	wake      chan struct{} // kick: sign what a large change left unsigned
	loaded    atomic.Bool
	count     atomic.Int64
	// lastCompact is when refreshAll last dropped the certificates past
	// their grace (unix seconds).
	lastCompact int64
	// stats, read by metrics
	Stats Stats
}

// Stats counts answers by kind.
type Stats struct {
	Good, Revoked, NotIssued, Unauthorized, Malformed, TryLater, Live atomic.Int64
	// Forgotten counts the certificates dropped past their grace.
	Forgotten atomic.Int64
}

// NewResponder prepares a responder; call Load before serving and Run in
// the background.
func NewResponder(o ResponderOptions) (*Responder, error) {
	if len(o.Issuers) == 0 || o.Root.Cert == nil {
		return nil, errors.New("revocation: responder needs issuers and the root")
	}
	if o.ExpiredGrace <= 0 {
		o.ExpiredGrace = DefaultExpiredGrace
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
	r := &Responder{o: o, live: make(chan struct{}, o.LiveWorkers), wake: make(chan struct{}, 1)}
	for i := range r.shards {
		r.shards[i].idx = make(map[serialKey]uint32)
	}
	r.signers.Store(&[]*ocspder.Signer{})
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
	is.sha1Name, is.sha1Key = is.nameHash[crypto.SHA1], is.keyHash[crypto.SHA1]
	return is, nil
}

// refreshSigners (re)builds each issuer's signer, picking up a renewed
// delegated certificate. It reports whether any changed.
func (r *Responder) refreshSigners() error {
	for _, is := range r.issuers {
		var s *ocspder.Signer
		var err error
		switch {
		case is.isRoot && !is.CanSign():
			continue // offline: its answers are pre-signed (RootMaterial)
		case is.isRoot || r.o.Delegated == nil:
			if is.signer.Load() != nil {
				continue
			}
			// (Not with signer "issuing": Go's x/crypto/ocsp, which zbcert
			// uses, refuses an answer whose included certificate the
			// issuer did not sign — the issuing CA's own is signed by the
			// root. Issue 18.)
			s, err = is.OCSPSigner()
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
				s, err = is.OCSPSigner()
				if err != nil {
					return err
				}
				r.setSigner(is, s)
				continue
			}
			// The delegated signer and the issuing CA that certified it:
			// the path from the responder to the root (RFC 6960 §4.2.1
			// allows certs to carry it; Apache mod_ssl, trusting only the
			// root, cannot verify the answer without the issuing CA).
			s, err = ocspder.NewSigner(key, cert, cert.Raw, is.Cert.Raw)
			if err == nil {
				is.delegatedCert.Store(cert)
			}
		}
		if err != nil {
			return fmt.Errorf("revocation: OCSP signer for %s: %w", is.Name, err)
		}
		r.setSigner(is, s)
		r.o.Logger.Info("OCSP signer ready", "issuer", is.Name)
	}
	return nil
}

// setSigner makes s the issuer's current signer.
func (r *Responder) setSigner(is *issuer, s *ocspder.Signer) {
	r.signersMu.Lock()
	list := append(slices.Clip(*r.signers.Load()), s)
	r.signers.Store(&list)
	r.signersMu.Unlock()
	is.signerIdx.Store(uint32(len(list) - 1))
	is.signer.Store(s)
}

// signerAt returns the signer an entry names.
func (r *Responder) signerAt(i uint16) *ocspder.Signer { return (*r.signers.Load())[i] }

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

// hexSerial is the store's text of a serial (ca.SerialHex): lowercase
// hex without leading zeros, so that a serial whose first byte is below
// 0x10 (one in sixteen) is found.
func hexSerial(b []byte) string {
	s := strings.TrimLeft(hex.EncodeToString(b), "0")
	if s == "" {
		return "0"
	}
	return s
}
