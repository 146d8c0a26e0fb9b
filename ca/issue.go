package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// newSerial returns a positive 128-bit random serial number.
func newSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("reading random serial: %w", err)
		}
		if s := new(big.Int).SetBytes(b); s.BitLen() > 64 {
			return s, nil
		}
	}
}

// SerialHex is the canonical text of a serial: lowercase hex, no leading
// zeros.
func SerialHex(s *big.Int) string { return s.Text(16) }

// NormalizeSerial accepts a serial as hex, with or without colons, any
// case, and returns its canonical form.
func NormalizeSerial(s string) (string, error) {
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			clean = append(clean, s[i])
		}
	}
	n, ok := new(big.Int).SetString(string(clean), 16)
	if !ok || n.Sign() <= 0 || len(clean) > 40 {
		return "", zerr.New(zerr.BadRequest, "%q is not a certificate serial number (hex)", s)
	}
	return SerialHex(n), nil
}

func newBoot() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Boot identifies this process in the issuance journal.
func (a *Authority) Boot() string { return a.boot }

// IssueRequest asks for an enterprise client certificate.
type IssueRequest struct {
	CSR      *x509.CertificateRequest // from ParseCSR
	Username string
	// Actor names who asked, for the audit log ("operator", "admin-api",
	// "enterprise:acme").
	Actor string
	// KeepActive, when > 0, revokes as superseded, in the transaction that
	// stores the new certificate, the enterprise's older active client
	// certificates beyond the newest KeepActive (the new one included).
	KeepActive int
	// Enterprise, when set, is Username's record as the caller just read
	// it; Issue checks it as it would its own read, and saves that read.
	Enterprise *store.Enterprise
	// Guards are the issuance policy that the store enforces atomically
	// with the journal (store.Guard): the CA decides none of it and hands
	// them to each of the serial's transactions. A guard's refusal
	// returns its error before anything is signed, with nothing written.
	Guards []store.Guard
}

// Issued is the result of an issuance.
type Issued struct {
	Certificate *x509.Certificate
	Record      *store.Certificate
	// Chain is the issuing CA and the root.
	Chain []*x509.Certificate
	// Superseded are the certificates revoked by KeepActive.
	Superseded []*store.Certificate
}

// Superseder is the optional store capability behind IssueRequest.KeepActive.
type Superseder interface {
	StoreCertificateSuperseding(ctx context.Context, c *store.Certificate, ev store.AuditEvent, keep int, actor string, guards ...store.Guard) ([]*store.Certificate, error)
}

// PEMChain returns the certificate followed by its chain, in PEM.
func (i *Issued) PEMChain() []byte {
	out := pemCert(i.Certificate)
	for _, c := range i.Chain {
		out = append(out, pemCert(c)...)
	}
	return out
}

// Issue signs a client certificate for an enterprise. The order is fixed:
//
//  1. check the CSR and the policy (key, enterprise exists and is active,
//     validity within the issuer's);
//  2. make a 128-bit random serial;
//  3. journal the serial, durably, with the audit event "cert.signing";
//  4. sign;
//  5. store the certificate, durably, with the audit event "cert.signed";
//  6. return it.
//
// A crash after 3 and before 5 leaves a pending journal entry that the next
// start marks failed: nobody received that certificate.
func (a *Authority) Issue(ctx context.Context, req IssueRequest) (_ *Issued, err error) {
	// The certificate's dates follow the CA's clock; the duration
	// observed for metrics is wall time.
	began := time.Now()
	defer func() { a.observe(store.ProfileClient, err, began) }()
	start := a.opts.Now()

	// 1. CSR and policy.
	if slices.Contains(a.m.RevokedIssuing, a.m.Issuing.Name) {
		return nil, zerr.New(zerr.Policy, "the issuing CA %s was revoked by a root ceremony (compromise): nothing more is issued until the rollover to a new issuing CA (README \"Key ceremonies\")", a.m.Issuing.Name)
	}
	if req.CSR == nil {
		return nil, zerr.New(zerr.BadCSR, "no CSR")
	}
	if err := req.CSR.CheckSignature(); err != nil {
		return nil, zerr.Wrap(zerr.BadCSR, err, "CSR signature does not verify")
	}
	if err := CheckKey(req.CSR.PublicKey); err != nil {
		return nil, err
	}
	e := req.Enterprise
	if e == nil || e.Username != req.Username {
		var err error
		if e, err = a.opts.Store.GetEnterprise(ctx, req.Username); err != nil {
			if errors.Is(err, zerr.NotFound) {
				return nil, zerr.New(zerr.NotFound, "enterprise %q does not exist", req.Username)
			}
			return nil, err
		}
	}
	if e.Status != store.StatusActive {
		return nil, zerr.New(zerr.Disabled, "enterprise %q is disabled", req.Username)
	}
	notBefore := start.UTC().Truncate(time.Second).Add(-a.opts.Config.Client.Backdate.Duration)
	notAfter := notBefore.AddDate(a.opts.Config.Client.ValidityYears, 0, 0)
	if notAfter.After(a.issuing.NotAfter) {
		return nil, zerr.New(zerr.Policy, "the issuing CA expires on %s, before a new certificate would (%s): the issuing CA must be rolled over",
			a.issuing.NotAfter.Format(time.DateOnly), notAfter.Format(time.DateOnly))
	}
	tmpl, err := a.profile.render(req.CSR,
		templateEnterprise{Username: e.Username, Name: e.Name, ID: e.Code, URI: EnterpriseURI(e.Username)},
		a.urls())
	if err != nil {
		return nil, zerr.Wrap(zerr.Internal, err, "rendering certificate profile")
	}
	if err := enforceClient(tmpl); err != nil {
		return nil, zerr.Wrap(zerr.Internal, err, "certificate profile")
	}
	actor := req.Actor
	if actor == "" {
		actor = "unknown"
	}
	return a.sign(ctx, signJob{
		profile: store.ProfileClient, enterpriseID: e.ID, enterprise: e.Username, actor: actor,
		tmpl: tmpl, pub: req.CSR.PublicKey, notBefore: notBefore, notAfter: notAfter, keep: req.KeepActive,
		spki: spkiHash(req.CSR.RawSubjectPublicKeyInfo), guards: req.Guards,
	})
}

func (a *Authority) urls() templateURLs {
	base := a.opts.PublicURL
	return templateURLs{
		// With partitioned CRLs, sign replaces it by the shard's URL once
		// the serial is drawn (shardCRLDP).
		CRL:       []string{CRLURL(base, a.m.Issuing.Name)},
		OCSP:      []string{base + "/ocsp"},
		CAIssuers: []string{base + "/pki/" + url.PathEscape(a.m.Issuing.Name) + ".crt"},
	}
}

func (a *Authority) observe(profile string, err error, start time.Time) {
	if a.opts.Observe == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = zerr.KindOf(err).Error()
	}
	a.opts.Observe(profile, outcome, time.Since(start))
}

type signJob struct {
	profile      string
	enterpriseID int64
	enterprise   string
	actor        string
	tmpl         *x509.Certificate
	pub          crypto.PublicKey
	notBefore    time.Time
	notAfter     time.Time
	keep         int
	spki         string
	guards       []store.Guard
}

func spkiHash(raw []byte) string {
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:])
}

// sign runs steps 2–6 of Issue for any profile signed by the issuing CA.
func (a *Authority) sign(ctx context.Context, j signJob) (*Issued, error) {
	// 2–3. A serial, journaled before it is signed. A collision with a
	// journaled serial (never expected at 128 bits) just draws again.
	var serial *big.Int
	var sh string
	for attempt := 0; ; attempt++ {
		var err error
		if serial, err = newSerial(); err != nil {
			return nil, zerr.Wrap(zerr.Internal, err, "making serial")
		}
		sh = SerialHex(serial)
		err = a.opts.Store.JournalSerial(ctx, store.JournalEntry{
			Serial: sh, EnterpriseID: j.enterpriseID, Profile: j.profile, Issuer: a.issuerID, Node: a.opts.Node, Boot: a.boot,
			SPKISHA256: j.spki, Guards: j.guards,
		}, store.AuditEvent{Actor: j.actor, Action: "cert.signing", Subject: sh, Details: map[string]any{
			"profile": j.profile, "enterprise": j.enterprise, "not_after": j.notAfter, "issuer": a.m.Issuing.Name,
		}})
		if err == nil {
			break
		}
		if store.Refused(err) {
			return nil, err // refused by a guard: nothing was written
		}
		if !errors.Is(err, zerr.Conflict) || attempt > 2 {
			return nil, fmt.Errorf("journaling serial: %w", err)
		}
	}
	// From here on the journal entry must reach a final state even if the
	// caller goes away.
	ctx = context.WithoutCancel(ctx)

	// 4. Sign, with a template that is fully ours.
	t := j.tmpl
	t.SerialNumber = serial
	t.CRLDistributionPoints = a.shardCRLDP(t.CRLDistributionPoints, serial)
	t.NotBefore, t.NotAfter = j.notBefore, j.notAfter
	t.BasicConstraintsValid = true
	t.IsCA = false
	t.MaxPathLen, t.MaxPathLenZero = 0, false
	t.PublicKey = j.pub
	t.AuthorityKeyId = a.issuing.SubjectKeyId
	resp, err := a.cas.CreateCertificate(&apiv1.CreateCertificateRequest{Template: t, Lifetime: j.notAfter.Sub(j.notBefore)})
	if err != nil {
		a.fail(ctx, sh, j.actor, err, j.guards)
		return nil, zerr.Wrap(zerr.Internal, err, "signing certificate")
	}
	cert := resp.Certificate

	// 5. Store before anyone sees it.
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	rec := &store.Certificate{
		Serial: sh, EnterpriseID: j.enterpriseID, Profile: j.profile, Issuer: a.issuerID, Subject: cert.Subject.String(),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw,
		SPKISHA256: hex.EncodeToString(spki[:]), FingerprintSHA256: Fingerprint(cert),
	}
	ev := store.AuditEvent{Actor: j.actor, Action: "cert.signed", Subject: sh, Details: map[string]any{
		"profile": j.profile, "enterprise": j.enterprise, "sha256": rec.FingerprintSHA256, "not_after": cert.NotAfter,
	}}
	var superseded []*store.Certificate
	var err2 error
	if sup, ok := a.opts.Store.(Superseder); ok && j.keep > 0 {
		superseded, err2 = sup.StoreCertificateSuperseding(ctx, rec, ev, j.keep, j.actor, j.guards...)
	} else if j.keep > 0 {
		err2 = zerr.New(zerr.Internal, "the store cannot supersede certificates")
	} else {
		err2 = a.opts.Store.StoreCertificate(ctx, rec, ev, j.guards...)
	}
	if err2 != nil {
		a.fail(ctx, sh, j.actor, err2, j.guards)
		return nil, fmt.Errorf("storing certificate: %w", err2)
	}
	a.opts.Logger.Info("issued certificate", "serial", sh, "profile", j.profile, "enterprise", j.enterprise, "not_after", cert.NotAfter)

	// 6. Return.
	return &Issued{Certificate: cert, Record: rec, Chain: []*x509.Certificate{a.issuing, a.root}, Superseded: superseded}, nil
}

// fail marks a journaled serial failed, running the guards it was
// journaled with.
func (a *Authority) fail(ctx context.Context, serial, actor string, cause error, guards []store.Guard) {
	ev := store.AuditEvent{Actor: actor, Action: "cert.failed", Subject: serial, Details: map[string]any{"error": cause.Error()}}
	err := a.opts.Store.FailSerial(context.WithoutCancel(ctx), serial, cause.Error(), ev, guards...)
	if err == nil {
		return
	}
	// Often the same outage that failed the issuance (the database went
	// away). Left pending, the serial and what its guards claimed (an
	// ACME order "processing") would stay so until this process restarts:
	// retry in the background. FailSerial changes only a pending entry,
	// and runs the guards only then, so a certificate whose commit did
	// land is left alone.
	a.opts.Logger.Warn("marking serial failed; retrying in the background", "serial", serial, "err", err)
	go a.retryFail(serial, cause.Error(), ev, guards)
}

// failRetryFor bounds retryFail; start-up recovery covers what is left.
const failRetryFor = time.Hour

func (a *Authority) retryFail(serial, reason string, ev store.AuditEvent, guards []store.Guard) {
	delay := 500 * time.Millisecond
	// Wall time, not the CA's clock: the budget is spent in real timers.
	for deadline := time.Now().Add(failRetryFor); time.Now().Before(deadline); {
		select {
		case <-a.closed:
			return
		case <-time.After(delay):
		}
		err := a.opts.Store.FailSerial(context.Background(), serial, reason, ev, guards...)
		if err == nil {
			a.opts.Logger.Info("marked serial failed after retrying", "serial", serial)
			return
		}
		delay = min(2*delay, 30*time.Second)
	}
	a.opts.Logger.Error("marking serial failed: giving up; the next start of this node marks it", "serial", serial)
}
