package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	kmsapi "go.step.sm/crypto/kms/apiv1"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// A rollover with the root offline goes in two halves (README "Key
// ceremonies"): the online server makes the next issuing CA's key and a
// CSR (PrepareRollover); the ceremony, where the root key is, signs a CA
// certificate for that key (SignIssuingCSR) together with root material
// that answers for it; the server imports the certificate and switches
// (ImportRollover). The CSR carries only the key and the name: the
// certificate's profile is the CA's own, never taken from the request.

// pendingSuffix names the files of a prepared rollover: <name>.csr beside
// the key.
const csrSuffix = ".csr"

// PrepareRollover makes the next issuing CA's key (encrypted in the CA
// directory, or in the HSM) and returns its name and CSR (DER), also
// written as <name>.csr. Nothing else changes: the current issuing CA
// keeps signing until ImportRollover.
func (a *Authority) PrepareRollover(ctx context.Context) (string, []byte, error) {
	if a.m.Pending != nil {
		return "", nil, zerr.New(zerr.Conflict, "a rollover to %s is already prepared: import its certificate (zbca ca rollover import) or remove %s", a.m.Pending.Name, a.m.Pending.Name+csrSuffix)
	}
	gen, name := 0, ""
	for gen = len(a.m.Retired) + 2; gen < 1000; gen++ {
		if n := "issuing-" + strconv.Itoa(gen); !a.nameInUse(n) {
			name = n
			break
		}
	}
	if name == "" {
		return "", nil, errors.New("ca: no free issuing CA name")
	}
	p := a.opts.Config.Issuing
	alg, bits, err := signatureAlgorithm(p.KeyType)
	if err != nil {
		return "", nil, err
	}
	resp, err := a.keys.Manager().CreateKey(&kmsapi.CreateKeyRequest{Name: a.keys.NewKeyName(name), SignatureAlgorithm: alg, Bits: bits})
	if err != nil {
		return "", nil, fmt.Errorf("ca: creating the key of %s: %w", name, err)
	}
	ref, err := a.keys.Persist(name, resp)
	if err != nil {
		return "", nil, fmt.Errorf("ca: storing the key of %s: %w", name, err)
	}
	signer, err := a.keys.Load(ref)
	if err != nil {
		return "", nil, err
	}
	subj := subject(p)
	subj.CommonName = strings.TrimSpace(subj.CommonName + " G" + strconv.Itoa(gen))
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subj}, signer)
	if err != nil {
		return "", nil, fmt.Errorf("ca: the CSR of %s: %w", name, err)
	}
	if err := writeFileDurable(a.opts.Dir, name+csrSuffix, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), 0o644); err != nil {
		return "", nil, err
	}
	if a.opts.Store != nil {
		if err := a.opts.Store.AppendAudit(ctx, store.AuditEvent{Actor: "operator", Action: "ca.rollover.prepare", Subject: name,
			Details: map[string]any{"subject": subj.String(), "kms": kmsKind(a.opts.Config.KMS)}}); err != nil {
			return "", nil, err
		}
	}
	m := a.m
	m.Pending = &entry{Name: name, Cert: name + ".crt", Key: ref}
	if err := writeManifest(a.opts.Dir, &m); err != nil {
		return "", nil, fmt.Errorf("ca: writing manifest: %w", err)
	}
	a.m = m
	return name, csr, nil
}

// SignIssuingCSR is the ceremony's half of a rollover: the root signs a
// certificate for the key of csr (PEM or DER) with this CA's issuing-CA
// profile. The CSR must be self-signed, its key of the configured kind,
// its name this CA's issuing name with a generation (" G<n>") no issuing
// CA has; nothing else is taken from it.
func (a *Authority) SignIssuingCSR(csrBytes []byte) (*x509.Certificate, error) {
	if a.rootSigner == nil {
		return nil, zerr.New(zerr.BadRequest, "the root key is not here: run the ceremony where it is")
	}
	if b, _ := pem.Decode(csrBytes); b != nil {
		csrBytes = b.Bytes
	}
	csr, err := x509.ParseCertificateRequest(csrBytes)
	if err != nil {
		return nil, zerr.Wrap(zerr.BadRequest, err, "not a CSR")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, zerr.Wrap(zerr.BadRequest, err, "the CSR's signature does not verify")
	}
	if err := CheckKey(csr.PublicKey); err != nil {
		return nil, zerr.Wrap(zerr.BadRequest, err, "the CSR's key")
	}
	p := a.opts.Config.Issuing
	base := subject(p)
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(strings.TrimSpace(base.CommonName)) + ` G([0-9]{1,3})$`)
	mm := re.FindStringSubmatch(csr.Subject.CommonName)
	if mm == nil {
		return nil, zerr.New(zerr.BadRequest, "the CSR names %q, not this CA's issuing name %q with a generation (\" G2\")", csr.Subject.CommonName, base.CommonName)
	}
	for _, is := range a.IssuingCerts() {
		if is.Subject.CommonName == csr.Subject.CommonName {
			return nil, zerr.New(zerr.BadRequest, "an issuing CA is already named %q", csr.Subject.CommonName)
		}
		if samePublicKey(is.PublicKey, csr.PublicKey) {
			return nil, zerr.New(zerr.BadRequest, "the CSR's key is the key of the issuing CA %q", is.Subject.CommonName)
		}
	}
	if samePublicKey(a.root.PublicKey, csr.PublicKey) {
		return nil, zerr.New(zerr.BadRequest, "the CSR's key is the root's")
	}
	now := a.opts.Now().UTC().Truncate(time.Second)
	notAfter, err := a.nextIssuingNotAfter(now)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	subj := base
	subj.CommonName = csr.Subject.CommonName
	tmpl := a.issuingTemplate(subj, now, notAfter)
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.root, csr.PublicKey, a.rootSigner)
	if err != nil {
		return nil, fmt.Errorf("ca: signing the issuing CA: %w", err)
	}
	return x509.ParseCertificate(der)
}

// ImportRollover is the server's second half: cert (from SignIssuingCSR)
// must be signed by this root, for the prepared key, a CA certificate
// (path length 0) within the root's validity; with the root offline, the
// root material of the same ceremony (material, a directory) must pass
// CheckRootMaterial for every issuing CA and the new one. Only then does
// cert become the current issuing CA and the old one retire, as Rollover
// does. Open the CA again afterwards, and import material there.
func (a *Authority) ImportRollover(ctx context.Context, cert *x509.Certificate, material string) (*Rolled, error) {
	pend := a.m.Pending
	if pend == nil {
		return nil, zerr.New(zerr.BadRequest, "no rollover is prepared (zbca ca rollover prepare)")
	}
	if material == "" && a.rootSigner == nil {
		return nil, zerr.New(zerr.BadRequest, "refused: the root is offline and no root material comes with the certificate: the new issuing CA would get no OCSP answer from the root")
	}
	if material != "" {
		if _, err := a.CheckRootMaterial(material, cert); err != nil {
			return nil, fmt.Errorf("the ceremony's root material, nothing changed: %w", err)
		}
	}
	signer, err := a.keys.Load(pend.Key)
	if err != nil {
		return nil, fmt.Errorf("ca: the prepared key of %s: %w", pend.Name, err)
	}
	switch {
	case cert.CheckSignatureFrom(a.root) != nil:
		return nil, zerr.New(zerr.BadRequest, "refused: the certificate is not signed by this CA's root")
	case !samePublicKey(signer.Public(), cert.PublicKey):
		return nil, zerr.New(zerr.BadRequest, "refused: the certificate is not for the key prepared for %s", pend.Name)
	case !cert.BasicConstraintsValid || !cert.IsCA || cert.MaxPathLen != 0 || !cert.MaxPathLenZero:
		return nil, zerr.New(zerr.BadRequest, "refused: not an issuing CA certificate (CA:TRUE, path length 0)")
	case cert.NotAfter.After(a.root.NotAfter) || !a.opts.Now().Before(cert.NotAfter):
		return nil, zerr.New(zerr.BadRequest, "refused: the certificate's validity (until %s) is outside the root's or over", cert.NotAfter.Format(time.DateOnly))
	}
	if err := writeCert(a.opts.Dir, pend.Cert, cert); err != nil {
		return nil, err
	}
	if a.opts.Store != nil {
		if err := a.opts.Store.AppendAudit(ctx, store.AuditEvent{Actor: "operator", Action: "ca.rollover", Subject: pend.Name,
			Details: map[string]any{"sha256": Fingerprint(cert), "not_after": cert.NotAfter, "subject": cert.Subject.String(),
				"retired": a.m.Issuing.Name, "retired_sha256": Fingerprint(a.issuing), "ceremony": true}}); err != nil {
			return nil, err
		}
	}
	m := a.m
	m.Retired = append([]entry{a.m.Issuing}, a.m.Retired...)
	m.Issuing = *pend
	m.Pending = nil
	if err := writeManifest(a.opts.Dir, &m); err != nil {
		return nil, fmt.Errorf("ca: writing manifest: %w", err)
	}
	_ = os.Remove(filepath.Join(a.opts.Dir, pend.Name+csrSuffix))
	a.opts.Logger.Info("rolled over the issuing CA (ceremony)", "retired", a.m.Issuing.Name, "current", pend.Name, "sha256", Fingerprint(cert))
	return &Rolled{Old: a.issuing, New: cert, OldName: a.m.Issuing.Name, NewName: pend.Name}, nil
}
