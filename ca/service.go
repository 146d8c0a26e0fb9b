package ca

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	kmsapi "go.step.sm/crypto/kms/apiv1"

	"github.com/zbca/zbca/store"
)

// oidOCSPNoCheck is id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

const tlsValidity = 365 * 24 * time.Hour

// EnsureServiceCertificates issues the delegated OCSP signer and the TLS
// certificate of the HTTPS listener when they are missing, past two thirds
// of their life, or (TLS) for other host names than configured. Both go
// through the same journaled path as client certificates.
//
// It is safe to call while the server runs (the serve command calls it
// every few hours): readers see the old certificates until the new ones are
// stored and written.
func (a *Authority) EnsureServiceCertificates(ctx context.Context) error {
	a.ensureMu.Lock()
	defer a.ensureMu.Unlock()
	a.svcMu.RLock()
	curOCSP, curTLS := a.ocsp, a.tls
	a.svcMu.RUnlock()
	now := a.opts.Now()
	due := func(c *x509.Certificate) bool {
		if c == nil {
			return true
		}
		if c.CheckSignatureFrom(a.issuing) != nil {
			return true // issued by an issuing CA since rolled over
		}
		life := c.NotAfter.Sub(c.NotBefore)
		return now.After(c.NotBefore.Add(life * 2 / 3))
	}
	changed := false
	if due(curOCSP) {
		t := &x509.Certificate{
			Subject:         pkix.Name{CommonName: a.issuing.Subject.CommonName + " OCSP Responder", Organization: a.issuing.Subject.Organization},
			KeyUsage:        x509.KeyUsageDigitalSignature,
			ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
			ExtraExtensions: []pkix.Extension{{Id: oidOCSPNoCheck, Value: []byte{0x05, 0x00}}},
		}
		c, s, e, err := a.issueService(ctx, "ocsp", store.ProfileOCSP, a.opts.Config.OCSPSigner.KeyType, a.opts.Config.OCSPSigner.Validity.Duration, t)
		if err != nil {
			return fmt.Errorf("ca: issuing OCSP signer: %w", err)
		}
		a.svcMu.Lock()
		a.ocsp, a.ocspSigner, a.m.OCSP, changed = c, s, e, true
		a.svcMu.Unlock()
	}
	if due(curTLS) || !sameHosts(curTLS, a.opts.TLSHosts) {
		t := &x509.Certificate{
			Subject:     pkix.Name{CommonName: a.opts.TLSHosts[0]},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		for _, h := range a.opts.TLSHosts {
			if ip := net.ParseIP(h); ip != nil {
				t.IPAddresses = append(t.IPAddresses, ip)
			} else {
				t.DNSNames = append(t.DNSNames, h)
			}
		}
		c, s, e, err := a.issueService(ctx, "tls", store.ProfileTLS, "EC-P256", tlsValidity, t)
		if err != nil {
			return fmt.Errorf("ca: issuing TLS certificate: %w", err)
		}
		a.svcMu.Lock()
		a.tls, a.tlsSigner, a.m.TLS, changed = c, s, e, true
		a.svcMu.Unlock()
	}
	if changed {
		a.svcMu.RLock()
		defer a.svcMu.RUnlock()
		return writeManifest(a.opts.Dir, &a.m)
	}
	return nil
}

func sameHosts(c *x509.Certificate, hosts []string) bool {
	if c == nil {
		return false
	}
	var have []string
	have = append(have, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		have = append(have, ip.String())
	}
	want := slices.Clone(hosts)
	for i, h := range want {
		if ip := net.ParseIP(h); ip != nil {
			want[i] = ip.String()
		}
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

func (a *Authority) issueService(ctx context.Context, name, profile, keyType string, validity time.Duration, t *x509.Certificate) (*x509.Certificate, crypto.Signer, *entry, error) {
	ks, err := a.softFor()
	if err != nil {
		return nil, nil, nil, err
	}
	alg, bits, err := signatureAlgorithm(keyType)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ks.Manager().CreateKey(&kmsapi.CreateKeyRequest{Name: name, SignatureAlgorithm: alg, Bits: bits})
	if err != nil {
		return nil, nil, nil, err
	}
	signer, err := ks.Manager().CreateSigner(&key.CreateSignerRequest)
	if err != nil {
		return nil, nil, nil, err
	}
	notBefore := a.opts.Now().UTC().Truncate(time.Second).Add(-5 * time.Minute)
	notAfter := notBefore.Add(validity)
	if notAfter.After(a.issuing.NotAfter) {
		notAfter = a.issuing.NotAfter
	}
	iss, err := a.sign(ctx, signJob{profile: profile, actor: "system:" + a.opts.Node, tmpl: t, pub: signer.Public(), notBefore: notBefore, notAfter: notAfter})
	if err != nil {
		return nil, nil, nil, err
	}
	// New files per serial so that a crash never leaves a key beside the
	// wrong certificate.
	base := fmt.Sprintf("%s-%s", name, iss.Record.Serial[:16])
	ref, err := ks.Persist(base, key)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := writeCert(a.opts.Dir, base+".crt", iss.Certificate); err != nil {
		return nil, nil, nil, err
	}
	a.opts.Logger.Info("issued service certificate", "name", name, "serial", iss.Record.Serial, "not_after", iss.Certificate.NotAfter)
	return iss.Certificate, signer, &entry{Name: name, Cert: base + ".crt", Key: ref}, nil
}

// TLSCertificate returns the HTTPS listener's certificate with its chain.
func (a *Authority) TLSCertificate() (*tls.Certificate, error) {
	a.svcMu.RLock()
	defer a.svcMu.RUnlock()
	if a.tls == nil {
		return nil, fmt.Errorf("ca: no TLS certificate: run EnsureServiceCertificates")
	}
	return &tls.Certificate{
		Certificate: [][]byte{a.tls.Raw, a.issuing.Raw},
		PrivateKey:  a.tlsSigner,
		Leaf:        a.tls,
	}, nil
}

// RunServiceRenewal renews the delegated OCSP signer's and the TLS
// certificates (EnsureServiceCertificates) every period until ctx ends,
// and logs the CA's expiry warning when there is one.
func (a *Authority) RunServiceRenewal(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.EnsureServiceCertificates(ctx); err != nil && ctx.Err() == nil {
				log.Error("renewing service certificates", "err", err)
			}
			if w := a.ExpiryWarning(); w != "" {
				log.Warn(w)
			}
		}
	}
}
