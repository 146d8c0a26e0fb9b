// Package ca holds zbca's CA hierarchy and does all of its signing: the
// root, the issuing CA, the delegated OCSP signer and the TLS certificate
// of the HTTPS listener, and every enterprise client certificate.
//
// It is the only package that holds private keys. Keys live in encrypted
// PKCS#8 files (passphrase in a 0600 file) or in a PKCS#11 token; the
// certificates and a manifest naming the keys live in the CA directory.
// Signing goes through cas/softcas, with policy enforced before it: softcas
// checks nothing and mutates its template, so every certificate gets a
// fresh, fully checked template.
package ca

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/cas/softcas"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/store"
)

// Store is what the CA needs from persistence.
type Store interface {
	GetEnterprise(ctx context.Context, username string) (*store.Enterprise, error)
	store.CertWriter
	AppendAudit(ctx context.Context, ev store.AuditEvent) error
}

// Options configures Init and Open.
type Options struct {
	// Dir is the CA directory, usually <data>/ca.
	Dir    string
	Config config.CA
	// PublicURL is the base of the CRL, OCSP and caIssuers URLs.
	PublicURL string
	// TLSHosts are the names and addresses of the HTTPS listener.
	TLSHosts []string
	Store    Store
	Logger   *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Ceremony opens the CA without a store, for the signing a ceremony
	// does on an offline machine that holds a copy of the CA directory
	// (SignRootMaterial); issuing needs the store.
	Ceremony bool
	// Node names this host in the issuance journal.
	Node string
	// Boot names this process in the issuance journal (see
	// internal/runlock); random when empty.
	Boot string
	// Observe, when set, is called after each issuance with the profile,
	// the outcome ("ok" or the error kind) and the duration.
	Observe func(profile, outcome string, d time.Duration)
}

func (o *Options) check() error {
	switch {
	case o.Dir == "":
		return errors.New("ca: empty directory")
	case o.Store == nil && !o.Ceremony:
		return errors.New("ca: no store")
	case o.PublicURL == "":
		return errors.New("ca: empty public URL")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Node == "" {
		o.Node = "zbca"
	}
	return nil
}

// manifest records where each part of the hierarchy lives.
type manifest struct {
	Version int    `json:"version"`
	KMS     string `json:"kms"`
	Root    entry  `json:"root"`
	Issuing entry  `json:"issuing"`
	// Retired are the issuing CAs rolled over, newest first: they sign
	// no certificate any more, but still their CRLs and the OCSP answers
	// for the certificates they signed.
	Retired []entry `json:"retired,omitempty"`
	OCSP    *entry  `json:"ocsp,omitempty"`
	TLS     *entry  `json:"tls,omitempty"`
	// Pending is the next issuing CA of a rollover in two halves: its key
	// is made, its certificate not yet imported (rollover_ceremony.go).
	Pending *entry `json:"pending,omitempty"`
	// RevokedIssuing names the issuing CAs a root ceremony revoked: every
	// later ceremony lists them too, and an import that would answer
	// for one as good is refused (rootmaterial.go).
	RevokedIssuing []string `json:"revoked_issuing,omitempty"`
	// CRLShards is config ca.crl_shards as it was at init: the shard CRL
	// URLs are in the certificates, so it never changes afterwards.
	// Absent (CAs created before partitioned CRLs) means 0.
	CRLShards int `json:"crl_shards,omitempty"`
}

type entry struct {
	Name string `json:"name"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

const manifestFile = "hierarchy.json"

// Initialized reports whether dir holds a CA.
func Initialized(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, manifestFile))
	return err == nil
}

func (a *Authority) readManifest() error {
	b, err := os.ReadFile(filepath.Join(a.opts.Dir, manifestFile))
	if err != nil {
		return fmt.Errorf("ca: reading manifest: %w", err)
	}
	if err := json.Unmarshal(b, &a.m); err != nil {
		return fmt.Errorf("ca: manifest %s: %w", manifestFile, err)
	}
	if a.m.Version != 1 {
		return fmt.Errorf("ca: manifest version %d not supported", a.m.Version)
	}
	if !checkCRLShards(a.m.CRLShards) {
		return fmt.Errorf("ca: manifest %s: crl_shards %d out of range", manifestFile, a.m.CRLShards)
	}
	return nil
}

func writeManifest(dir string, m *manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileDurable(dir, manifestFile, append(b, '\n'), 0o600)
}

// writeFileDurable writes dir/name through a temporary file that is synced
// before the rename, then syncs the directory: after a crash or power cut
// the file is either the old one or the complete new one.
func writeFileDurable(dir, name string, b []byte, mode os.FileMode) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Authority is an opened CA hierarchy. Safe for concurrent use.
type Authority struct {
	opts Options
	// svcMu guards the service certificates (ocsp, tls), which
	// EnsureServiceCertificates replaces while the server runs; ensureMu
	// serialises the renewals themselves.
	svcMu    sync.RWMutex
	ensureMu sync.Mutex
	m        manifest
	keys     keyStore
	root     *x509.Certificate
	issuing  *x509.Certificate
	retired  []CRLIssuer // manifest order, newest first
	ocsp     *x509.Certificate
	tls      *x509.Certificate
	// signers; only this package ever sees them.
	rootSigner crypto.Signer
	issSigner  crypto.Signer
	ocspSigner crypto.Signer
	tlsSigner  crypto.Signer
	cas        *softcas.SoftCAS
	profile    *profile
	boot       string
	issuerID   string // issuing CA SubjectKeyId, hex
	// material is the pre-signed root material served while the root is
	// offline (rootmaterial.go).
	material atomic.Pointer[RootMaterial]
	// closed ends the background retries of fail (issue.go).
	closed    chan struct{}
	closeOnce sync.Once
}

// Open loads an initialised hierarchy.
func Open(ctx context.Context, opts Options) (*Authority, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	a := &Authority{opts: opts, boot: opts.Boot, closed: make(chan struct{})}
	if a.boot == "" {
		a.boot = newBoot()
	}
	if err := a.readManifest(); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("ca: %s is not initialised: run `zbca init` (or `zbca serve`, which initialises an empty data directory)", opts.Dir)
		}
		return nil, err
	}
	if a.m.KMS != opts.Config.KMS {
		return nil, fmt.Errorf("ca: the CA was created with kms %q but the configuration says %q", a.m.KMS, opts.Config.KMS)
	}
	var err error
	if a.keys, err = openKeyStore(opts, false); err != nil {
		return nil, err
	}
	if a.rootKeyAbsent() {
		// The root is offline (README "Key ceremonies"): its CRL and its
		// OCSP answers come from the pre-signed root material.
		if a.root, err = a.loadCert(a.m.Root); err != nil {
			return nil, err
		}
	} else if a.root, a.rootSigner, err = a.load(a.m.Root); err != nil {
		// In a token: the root key removed (or the token holding it
		// unplugged) while the token of the issuing key answers is the
		// root offline; anything else is an error.
		if a.opts.Config.KMS == "" {
			return nil, err
		}
		rootErr := err
		if _, _, ierr := a.load(a.m.Issuing); ierr != nil {
			return nil, rootErr
		}
		if a.root, err = a.loadCert(a.m.Root); err != nil {
			return nil, err
		}
		a.rootSigner = nil
		opts.Logger.Info("root: offline (its key is not in the token); serving the pre-signed root material", "detail", rootErr.Error())
	}
	if a.issuing, a.issSigner, err = a.load(a.m.Issuing); err != nil {
		return nil, err
	}
	if err := a.issuing.CheckSignatureFrom(a.root); err != nil {
		return nil, fmt.Errorf("ca: issuing CA is not signed by the root: %w", err)
	}
	a.issuerID = hex.EncodeToString(a.issuing.SubjectKeyId)
	for _, e := range a.m.Retired {
		c, s, err := a.load(e)
		if err != nil {
			return nil, err
		}
		if err := c.CheckSignatureFrom(a.root); err != nil {
			return nil, fmt.Errorf("ca: retired issuing CA %s is not signed by the root: %w", e.Name, err)
		}
		a.retired = append(a.retired, CRLIssuer{Name: e.Name, Cert: c, ID: hex.EncodeToString(c.SubjectKeyId), key: s})
	}
	if a.rootSigner == nil {
		// The root is offline (README "Key ceremonies").
		if _, err := a.ReloadRootMaterial(); err != nil {
			opts.Logger.Error("root: offline, and the pre-signed root material cannot be used", "err", err)
		}
		if m := a.material.Load(); m != nil {
			opts.Logger.Info("root: offline (its key is not in the CA directory); serving the pre-signed root material",
				"until", m.NextUpdate.Format(time.RFC3339), "revoked_issuing_cas", m.Revoked)
		}
	}
	if a.m.OCSP != nil {
		if a.ocsp, a.ocspSigner, err = a.load(*a.m.OCSP); err != nil {
			return nil, err
		}
	}
	if a.m.TLS != nil {
		if a.tls, a.tlsSigner, err = a.load(*a.m.TLS); err != nil {
			return nil, err
		}
	}
	a.cas, err = softcas.New(ctx, apiv1.Options{CertificateChain: []*x509.Certificate{a.issuing, a.root}, Signer: a.issSigner})
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	text := DefaultClientTemplate
	if opts.Config.Client.Template != "" {
		b, err := os.ReadFile(opts.Config.Client.Template)
		if err != nil {
			return nil, fmt.Errorf("ca: reading certificate template: %w", err)
		}
		text = string(b)
	}
	if a.profile, err = parseProfile(text); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if err := checkProfile(a.profile); err != nil {
		return nil, fmt.Errorf("ca: %s: %w", opts.Config.Client.Template, err)
	}
	a.warnIssuerExpiry()
	if opts.Config.CRLShards != a.m.CRLShards {
		opts.Logger.Warn("ca.crl_shards differs from the CA's, which was fixed at init and is kept: the certificates name its shard CRLs",
			"config", opts.Config.CRLShards, "ca", a.m.CRLShards)
	}
	return a, nil
}

// Close releases the key store (an open PKCS#11 session).
func (a *Authority) Close() error {
	a.closeOnce.Do(func() { close(a.closed) })
	return a.keys.Close()
}

func openKeyStore(opts Options, create bool) (keyStore, error) {
	if opts.Config.KMS == "" {
		pw, err := readOrCreatePassphrase(opts.Config.PassphraseFile, create)
		if err != nil {
			return nil, fmt.Errorf("ca: key passphrase: %w", err)
		}
		return newSoftKeys(opts.Dir, pw)
	}
	var pin []byte
	if opts.Config.PINFile != "" {
		var err error
		if pin, err = readSecret(opts.Config.PINFile); err != nil {
			return nil, fmt.Errorf("ca: PKCS#11 PIN: %w", err)
		}
	}
	ks, err := newHSMKeys(opts.Config.KMS, pin)
	if err != nil && opts.Config.PINFile != "" {
		return nil, fmt.Errorf("ca: %w (PIN read from %s)", err, opts.Config.PINFile)
	}
	return ks, err
}

// softFor returns the key store for service keys (OCSP, TLS): always
// encrypted files, even with an HSM, since they are short-lived and renewed
// by the server itself.
func (a *Authority) softFor() (keyStore, error) {
	if _, ok := a.keys.(*softKeys); ok {
		return a.keys, nil
	}
	pw, err := readOrCreatePassphrase(a.opts.Config.PassphraseFile, true)
	if err != nil {
		return nil, err
	}
	return newSoftKeys(a.opts.Dir, pw)
}

// rootKeyAbsent reports whether the root's key file is missing (software
// keys; a PKCS#11 root is tried in its token, see Open).
func (a *Authority) rootKeyAbsent() bool {
	if a.opts.Config.KMS != "" {
		return false
	}
	_, err := os.Stat(filepath.Join(a.opts.Dir, a.m.Root.Key))
	return errors.Is(err, os.ErrNotExist)
}

// loadCert reads an entry's certificate.
func (a *Authority) loadCert(e entry) (*x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(a.opts.Dir, e.Cert))
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	cert, err := parseCertPEM(b)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", e.Cert, err)
	}
	return cert, nil
}

func (a *Authority) load(e entry) (*x509.Certificate, crypto.Signer, error) {
	cert, err := a.loadCert(e)
	if err != nil {
		return nil, nil, err
	}
	ks := a.keys
	if e.Name == "ocsp" || e.Name == "tls" {
		if ks, err = a.softFor(); err != nil {
			return nil, nil, err
		}
	}
	signer, err := ks.Load(e.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %s: %w", e.Name, err)
	}
	if !samePublicKey(signer.Public(), cert.PublicKey) {
		return nil, nil, fmt.Errorf("ca: the key of %s does not match its certificate", e.Name)
	}
	return cert, signer, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func writeCert(dir, name string, c *x509.Certificate) error {
	return writeFileDurable(dir, name, pemCert(c), 0o644)
}

// Fingerprint returns the SHA-256 fingerprint of a certificate as hex.
func Fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// ColonHex formats a hex fingerprint the way browsers and openssl show it:
// upper case, bytes separated by colons.
func ColonHex(h string) string {
	h = strings.ToUpper(h)
	var b strings.Builder
	for i := 0; i+1 < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// Root returns the root certificate.
func (a *Authority) Root() *x509.Certificate { return a.root }

// Issuing returns the current issuing CA certificate.
func (a *Authority) Issuing() *x509.Certificate { return a.issuing }

// IssuingName is the short name of the current issuing CA ("issuing-1"),
// used in its CRL and caIssuers URLs.
func (a *Authority) IssuingName() string { return a.m.Issuing.Name }

// OCSPSigner returns the delegated OCSP signer certificate (nil before
// EnsureServiceCertificates).
func (a *Authority) OCSPSigner() *x509.Certificate {
	a.svcMu.RLock()
	defer a.svcMu.RUnlock()
	return a.ocsp
}

// ChainPEM returns the issuing CA followed by the root, in PEM.
func (a *Authority) ChainPEM() []byte {
	return append(pemCert(a.issuing), pemCert(a.root)...)
}

// ExpiryWarning returns a message when the issuing CA can no longer cover a
// full client certificate plus the configured margin, or "".
func (a *Authority) ExpiryWarning() string {
	now := a.opts.Now()
	full := now.AddDate(a.opts.Config.Client.ValidityYears, 0, 0)
	switch {
	case a.issuing.NotAfter.Before(full):
		return fmt.Sprintf("the issuing CA expires on %s and can no longer sign a full %d-year certificate: issuance is refused until it is rolled over (zbca ca rollover)",
			a.issuing.NotAfter.Format(time.DateOnly), a.opts.Config.Client.ValidityYears)
	case a.issuing.NotAfter.Before(full.Add(a.opts.Config.Client.IssuerWarning.Duration)):
		return fmt.Sprintf("the issuing CA expires on %s: within %s it can no longer sign a full %d-year certificate; plan its rollover (zbca ca rollover)",
			a.issuing.NotAfter.Format(time.DateOnly), a.issuing.NotAfter.Sub(full).Round(time.Hour), a.opts.Config.Client.ValidityYears)
	}
	return ""
}

func (a *Authority) warnIssuerExpiry() {
	if w := a.ExpiryWarning(); w != "" {
		a.opts.Logger.Warn(w, "issuing_ca", a.m.Issuing.Name, "not_after", a.issuing.NotAfter)
	}
}

func readSecret(path string) ([]byte, error) { return config.ReadSecretFile(path) }
