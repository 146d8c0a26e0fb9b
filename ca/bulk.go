package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// BulkItem is one certificate of a bulk issuance (IssueBulk, for test
// data): an enterprise record as read from the store and a public key (no
// CSR: the caller made the key).
type BulkItem struct {
	Enterprise *store.Enterprise
	PublicKey  crypto.PublicKey
}

// BulkStore is what IssueBulk needs.
type BulkStore interface {
	store.BulkWriter
}

// IssueBulk issues many client certificates in the same fixed order as
// Issue, batched: check every item → draw serials → journal them all in
// one transaction → sign on every core → store them all in one transaction
// → return. A failure before the store step fails the journaled serials.
//
// It is a tool for test data and benchmarks (scripts/bench/fill), not an
// issuance path: it applies no issuance policy — no daily limit, no key
// owner, no credential epoch, no superseding, no guards of any kind, and
// it does not record the keys in the journal — and checks only that each
// enterprise is active and each key acceptable. No command or server
// reaches it; enterprises get certificates through enroll.Service.
func (a *Authority) IssueBulk(ctx context.Context, st BulkStore, items []BulkItem, actor string) ([]*store.Certificate, error) {
	now := a.opts.Now().UTC().Truncate(time.Second)
	notBefore := now.Add(-a.opts.Config.Client.Backdate.Duration)
	notAfter := notBefore.AddDate(a.opts.Config.Client.ValidityYears, 0, 0)
	if notAfter.After(a.issuing.NotAfter) {
		return nil, zerr.New(zerr.Policy, "the issuing CA expires before a new certificate would")
	}
	// 1. Policy.
	for i, it := range items {
		if it.Enterprise == nil || it.Enterprise.Status != store.StatusActive {
			return nil, zerr.New(zerr.Disabled, "item %d: enterprise missing or disabled", i)
		}
		if err := CheckKey(it.PublicKey); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
	}
	// 2–3. Serials, journaled.
	js := make([]store.JournalEntry, len(items))
	for i, it := range items {
		s, err := newSerial()
		if err != nil {
			return nil, err
		}
		js[i] = store.JournalEntry{Serial: SerialHex(s), EnterpriseID: it.Enterprise.ID, Profile: store.ProfileClient, Issuer: a.issuerID, Node: a.opts.Node, Boot: a.boot}
	}
	if err := st.JournalSerials(ctx, js, store.AuditEvent{Actor: actor, Action: "cert.signing.bulk", Subject: fmt.Sprintf("%d certificates", len(items)),
		Details: map[string]any{"first": js[0].Serial, "last": js[len(js)-1].Serial, "count": len(js)}}); err != nil {
		return nil, fmt.Errorf("journaling serials: %w", err)
	}
	ctx = context.WithoutCancel(ctx)
	// 4. Sign on every core.
	recs := make([]*store.Certificate, len(items))
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				recs[i], errs[i] = a.signOne(items[i], js[i].Serial, notBefore, notAfter)
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, j := range js {
			a.fail(ctx, j.Serial, actor, err, nil)
		}
		return nil, zerr.Wrap(zerr.Internal, err, "signing")
	}
	// 5. Store.
	if err := st.StoreCertificates(ctx, recs, store.AuditEvent{Actor: actor, Action: "cert.signed.bulk", Subject: fmt.Sprintf("%d certificates", len(recs)),
		Details: map[string]any{"first": recs[0].Serial, "last": recs[len(recs)-1].Serial, "count": len(recs)}}); err != nil {
		for _, j := range js {
			a.fail(ctx, j.Serial, actor, err, nil)
		}
		return nil, fmt.Errorf("storing certificates: %w", err)
	}
	return recs, nil
}

func (a *Authority) signOne(it BulkItem, serialHex string, notBefore, notAfter time.Time) (*store.Certificate, error) {
	e := it.Enterprise
	// The profile template takes a CSR for its data; a bulk item has only
	// the key.
	csr := &x509.CertificateRequest{PublicKey: it.PublicKey, PublicKeyAlgorithm: publicKeyAlgorithm(it.PublicKey)}
	tmpl, err := a.profile.render(csr, templateEnterprise{Username: e.Username, Name: e.Name, ID: e.Code, URI: EnterpriseURI(e.Username)}, a.urls())
	if err != nil {
		return nil, err
	}
	if err := enforceClient(tmpl); err != nil {
		return nil, err
	}
	serial, ok := new(big.Int).SetString(serialHex, 16)
	if !ok {
		return nil, fmt.Errorf("bad serial %s", serialHex)
	}
	tmpl.SerialNumber = serial
	tmpl.CRLDistributionPoints = a.shardCRLDP(tmpl.CRLDistributionPoints, serial)
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	tmpl.BasicConstraintsValid, tmpl.IsCA = true, false
	tmpl.PublicKey = it.PublicKey
	resp, err := a.cas.CreateCertificate(&apiv1.CreateCertificateRequest{Template: tmpl, Lifetime: notAfter.Sub(notBefore)})
	if err != nil {
		return nil, err
	}
	cert := resp.Certificate
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return &store.Certificate{
		Serial: serialHex, EnterpriseID: e.ID, Username: e.Username, Profile: store.ProfileClient, Issuer: a.issuerID, Subject: cert.Subject.String(),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw, SPKISHA256: hex.EncodeToString(spki[:]), FingerprintSHA256: Fingerprint(cert),
	}, nil
}

func publicKeyAlgorithm(pub crypto.PublicKey) x509.PublicKeyAlgorithm {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return x509.ECDSA
	case *rsa.PublicKey:
		return x509.RSA
	}
	return x509.UnknownPublicKeyAlgorithm
}
