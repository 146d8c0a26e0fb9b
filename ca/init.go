package ca

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/cas/softcas"
	kmsapi "go.step.sm/crypto/kms/apiv1"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// Init creates a new hierarchy in opts.Dir: the root and issuing CA keys and
// certificates, then (through Open) the OCSP signer and TLS certificates. It
// refuses, changing nothing, when the directory already holds CA material.
func Init(ctx context.Context, opts Options) (*Authority, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if Initialized(opts.Dir) {
		return nil, zerr.New(zerr.Conflict, "%s already holds a CA: refusing to overwrite it", opts.Dir)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	for _, f := range []string{"root.crt", "root.key", "issuing-1.crt", "issuing-1.key"} {
		if _, err := os.Stat(filepath.Join(opts.Dir, f)); err == nil {
			return nil, zerr.New(zerr.Conflict, "%s holds %s from an earlier, unfinished init: move the directory away and run init again", opts.Dir, f)
		}
	}
	ks, err := openKeyStore(opts, true)
	if err != nil {
		return nil, err
	}
	defer ks.Close()
	creator, err := softcas.New(ctx, apiv1.Options{IsCreator: true, KeyManager: ks.Manager()})
	if err != nil {
		return nil, err
	}
	now := opts.Now().UTC().Truncate(time.Second)
	c := opts.Config

	rootName := subject(c.Root)
	rootResp, err := createCA(creator, ks, apiv1.RootCA, "root", c.Root, &x509.Certificate{
		Subject:               rootName,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(c.Root.ValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	if err != nil {
		return nil, err
	}
	rootRef, err := ks.Persist("root", &kmsapi.CreateKeyResponse{PrivateKey: rootResp.PrivateKey, CreateSignerRequest: kmsapi.CreateSignerRequest{SigningKey: rootResp.KeyName}})
	if err != nil {
		return nil, err
	}

	issResp, err := createCA(creator, ks, apiv1.IntermediateCA, "issuing-1", c.Issuing, &x509.Certificate{
		Subject:               subject(c.Issuing),
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(c.Issuing.ValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		CRLDistributionPoints: []string{opts.PublicURL + "/crl/root.crl"},
		IssuingCertificateURL: []string{opts.PublicURL + "/pki/root.crt"},
	}, rootResp)
	if err != nil {
		return nil, err
	}
	issRef, err := ks.Persist("issuing-1", &kmsapi.CreateKeyResponse{PrivateKey: issResp.PrivateKey, CreateSignerRequest: kmsapi.CreateSignerRequest{SigningKey: issResp.KeyName}})
	if err != nil {
		return nil, err
	}
	if err := writeCert(opts.Dir, "root.crt", rootResp.Certificate); err != nil {
		return nil, err
	}
	if err := writeCert(opts.Dir, "issuing-1.crt", issResp.Certificate); err != nil {
		return nil, err
	}
	if !checkCRLShards(c.CRLShards) {
		return nil, zerr.New(zerr.BadRequest, "ca.crl_shards %d is not 0 or 2–%d", c.CRLShards, config.MaxCRLShards)
	}
	m := &manifest{Version: 1, KMS: c.KMS, CRLShards: c.CRLShards,
		Root:    entry{Name: "root", Cert: "root.crt", Key: rootRef},
		Issuing: entry{Name: "issuing-1", Cert: "issuing-1.crt", Key: issRef},
	}
	for _, ca := range []struct {
		name string
		cert *x509.Certificate
	}{{"root", rootResp.Certificate}, {"issuing-1", issResp.Certificate}} {
		if err := opts.Store.AppendAudit(ctx, store.AuditEvent{Actor: "operator", Action: "ca.create", Subject: ca.name,
			Details: map[string]any{"sha256": Fingerprint(ca.cert), "not_after": ca.cert.NotAfter, "subject": ca.cert.Subject.String(), "kms": kmsKind(c.KMS)}}); err != nil {
			return nil, err
		}
	}
	if err := writeManifest(opts.Dir, m); err != nil {
		return nil, fmt.Errorf("ca: writing manifest: %w", err)
	}
	opts.Logger.Info("created CA hierarchy", "root_sha256", Fingerprint(rootResp.Certificate), "kms", kmsKind(c.KMS))
	a, err := Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := a.EnsureServiceCertificates(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func kmsKind(uri string) string {
	if uri == "" {
		return "encrypted-files"
	}
	return "pkcs11"
}

func subject(p config.CAProfile) pkix.Name {
	n := pkix.Name{CommonName: p.CommonName}
	if p.Organization != "" {
		n.Organization = []string{p.Organization}
	}
	if p.Country != "" {
		n.Country = []string{p.Country}
	}
	return n
}

func createCA(creator *softcas.SoftCAS, ks keyStore, typ apiv1.CertificateAuthorityType, name string, p config.CAProfile,
	tmpl *x509.Certificate, parent *apiv1.CreateCertificateAuthorityResponse) (*apiv1.CreateCertificateAuthorityResponse, error) {
	alg, bits, err := signatureAlgorithm(p.KeyType)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	resp, err := creator.CreateCertificateAuthority(&apiv1.CreateCertificateAuthorityRequest{
		Name:      name,
		Type:      typ,
		Template:  tmpl,
		Lifetime:  tmpl.NotAfter.Sub(tmpl.NotBefore),
		Parent:    parent,
		CreateKey: &kmsapi.CreateKeyRequest{Name: ks.NewKeyName(name), SignatureAlgorithm: alg, Bits: bits},
	})
	if err != nil {
		return nil, fmt.Errorf("ca: creating %s: %w", name, err)
	}
	if resp.Signer == nil {
		return nil, errors.New("ca: kms returned no signer")
	}
	return resp, nil
}
