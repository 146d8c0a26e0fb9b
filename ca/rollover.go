package ca

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/cas/softcas"
	kmsapi "go.step.sm/crypto/kms/apiv1"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// Rolled describes a finished rollover.
type Rolled struct {
	Old, New         *x509.Certificate
	OldName, NewName string
}

// Rollover replaces the current issuing CA with a new one signed by the
// root: a new key, a certificate named "issuing-N" whose subject is the
// configured one with the generation appended ("zbca Issuing CA G2": OpenSSL
// picks a CRL by its issuer's name, so two issuing CAs must not share one).
// The old issuing CA is retired, not removed: it signs no certificate any
// more but keeps signing its CRL and the OCSP answers for the certificates
// it issued, so that nothing issued before the rollover breaks.
//
// The caller must keep servers away from the CA directory (the serve lock)
// and open the CA again afterwards; EnsureServiceCertificates then renews
// the OCSP signer and the TLS certificate under the new issuing CA.
//
// The order makes a crash harmless: the key and certificate are written
// under a fresh name first, the audit event next, and the manifest, which
// alone makes the new CA current, last.
func (a *Authority) Rollover(ctx context.Context) (*Rolled, error) {
	if a.rootSigner == nil {
		return nil, zerr.New(zerr.Policy, "the root is offline: a rollover signs a new issuing CA with the root key; run it where the root key is (README \"Key ceremonies\")")
	}
	now := a.opts.Now().UTC().Truncate(time.Second)
	p := a.opts.Config.Issuing
	notAfter, err := a.nextIssuingNotAfter(now)
	if err != nil {
		return nil, err
	}
	gen := len(a.m.Retired) + 2
	name := ""
	for ; gen < 1000; gen++ {
		n := "issuing-" + strconv.Itoa(gen)
		if !a.nameInUse(n) {
			name = n
			break
		}
	}
	if name == "" {
		return nil, errors.New("ca: no free issuing CA name")
	}
	subj := subject(p)
	subj.CommonName = strings.TrimSpace(subj.CommonName + " G" + strconv.Itoa(gen))

	creator, err := softcas.New(ctx, apiv1.Options{IsCreator: true, KeyManager: a.keys.Manager()})
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	parent := &apiv1.CreateCertificateAuthorityResponse{Certificate: a.root, Signer: a.rootSigner}
	resp, err := createCA(creator, a.keys, apiv1.IntermediateCA, name, p, a.issuingTemplate(subj, now, notAfter), parent)
	if err != nil {
		return nil, err
	}
	ref, err := a.keys.Persist(name, &kmsapi.CreateKeyResponse{PrivateKey: resp.PrivateKey, CreateSignerRequest: kmsapi.CreateSignerRequest{SigningKey: resp.KeyName}})
	if err != nil {
		return nil, fmt.Errorf("ca: storing the key of %s: %w", name, err)
	}
	if err := writeCert(a.opts.Dir, name+".crt", resp.Certificate); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if err := a.opts.Store.AppendAudit(ctx, store.AuditEvent{Actor: "operator", Action: "ca.rollover", Subject: name,
		Details: map[string]any{"sha256": Fingerprint(resp.Certificate), "not_after": resp.Certificate.NotAfter, "subject": resp.Certificate.Subject.String(),
			"retired": a.m.Issuing.Name, "retired_sha256": Fingerprint(a.issuing), "kms": kmsKind(a.opts.Config.KMS)}}); err != nil {
		return nil, err
	}
	m := a.m
	m.Retired = append([]entry{a.m.Issuing}, a.m.Retired...)
	m.Issuing = entry{Name: name, Cert: name + ".crt", Key: ref}
	if err := writeManifest(a.opts.Dir, &m); err != nil {
		return nil, fmt.Errorf("ca: writing manifest: %w", err)
	}
	a.opts.Logger.Info("rolled over the issuing CA", "retired", a.m.Issuing.Name, "current", name, "sha256", Fingerprint(resp.Certificate), "not_after", resp.Certificate.NotAfter)
	return &Rolled{Old: a.issuing, New: resp.Certificate, OldName: a.m.Issuing.Name, NewName: name}, nil
}

// nameInUse reports whether an issuing CA of that name exists, in the
// manifest or as a file an unfinished rollover left.
func (a *Authority) nameInUse(name string) bool {
	if name == a.m.Issuing.Name {
		return true
	}
	for _, e := range a.m.Retired {
		if e.Name == name {
			return true
		}
	}
	if a.m.Pending != nil && a.m.Pending.Name == name {
		return true
	}
	for _, f := range []string{name + ".crt", name + ".key", name + csrSuffix} {
		if _, err := os.Stat(filepath.Join(a.opts.Dir, f)); err == nil {
			return true
		}
	}
	return false
}

// nextIssuingNotAfter is the end of a new issuing CA made now: its
// configured validity, cut at the root's end; refused when it could not
// sign a full client certificate any more.
func (a *Authority) nextIssuingNotAfter(now time.Time) (time.Time, error) {
	notAfter := now.AddDate(a.opts.Config.Issuing.ValidityYears, 0, 0)
	if notAfter.After(a.root.NotAfter) {
		notAfter = a.root.NotAfter
	}
	if full := now.AddDate(a.opts.Config.Client.ValidityYears, 0, 0); notAfter.Before(full) {
		return time.Time{}, zerr.New(zerr.Policy, "the root expires on %s: a new issuing CA could not sign a full %d-year certificate; a new root is needed, not a rollover",
			a.root.NotAfter.Format(time.DateOnly), a.opts.Config.Client.ValidityYears)
	}
	return notAfter, nil
}

// issuingTemplate is the profile of an issuing CA certificate signed by
// the root (a rollover, in one step or at a ceremony).
func (a *Authority) issuingTemplate(subj pkix.Name, now, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               subj,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		CRLDistributionPoints: []string{a.opts.PublicURL + "/crl/root.crl"},
		IssuingCertificateURL: []string{a.opts.PublicURL + "/pki/root.crt"},
	}
}
