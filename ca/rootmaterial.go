package ca

import (
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/internal/crlder"
	"github.com/zbca/zbca/internal/ocspder"
	"github.com/zbca/zbca/internal/zerr"
)

// With the root key offline (README "Key ceremonies"), the online server
// serves what the root signed in its last ceremony: the root's CRL and,
// for every issuing CA, a root-signed OCSP answer (SHA-1 and SHA-256
// CertIDs), all valid until the same NextUpdate. They live in
// <ca dir>/root-material/, written by SignRootMaterial on the machine that
// holds the root key and brought to the server by ImportRootMaterial,
// which checks every signature against this CA's root.

// RootMaterialDir is the directory, under the CA directory, of the
// pre-signed root material.
const RootMaterialDir = "root-material"

// MaxRootMaterialValidity is the longest a ceremony may pre-sign for (RFC
// 5019 and the CA/B Forum allow about a year for CA certificates' status).
const MaxRootMaterialValidity = 366 * 24 * time.Hour

// RootMaterial is the pre-signed root material.
type RootMaterial struct {
	// CRL is the root's CRL (DER); it lists the revoked issuing CAs.
	CRL                    []byte
	ThisUpdate, NextUpdate time.Time
	// OCSP holds, by issuing CA serial (SerialHex) and CertID hash, the
	// root-signed OCSP response (DER).
	OCSP map[string]map[crypto.Hash][]byte
	// Revoked names the issuing CAs the material revokes (read: from the
	// signed CRL); RevokedSerials are their serials (SerialHex).
	Revoked        []string
	RevokedSerials []string
}

// rootMaterialMeta is material.json.
type rootMaterialMeta struct {
	ThisUpdate time.Time         `json:"this_update"`
	NextUpdate time.Time         `json:"next_update"`
	Revoked    []string          `json:"revoked,omitempty"`
	OCSP       map[string]string `json:"ocsp"` // file → issuing CA serial
}

// RootKeyFile is the root key's file name in the CA directory (software
// keys).
func (a *Authority) RootKeyFile() string { return a.m.Root.Key }

// RootOnline reports whether the root key is here.
func (a *Authority) RootOnline() bool { return a.rootSigner != nil }

// SignRootMaterial is the ceremony's signing: the root's CRL listing the
// issuing CAs named in revoke (by name: "issuing-1"), and an OCSP answer
// for every issuing CA and every extra one (revoked for those named),
// valid for validity (at most MaxRootMaterialValidity, and not past the
// root). It needs the root key.
func (a *Authority) SignRootMaterial(validity time.Duration, revoke []string, extra ...*x509.Certificate) (*RootMaterial, error) {
	if a.rootSigner == nil {
		return nil, zerr.New(zerr.BadRequest, "the root key is not here: run the ceremony where it is (the offline machine, the HSM holding it)")
	}
	now := a.opts.Now().UTC().Truncate(time.Second)
	next := now.Add(validity)
	switch {
	case validity < 24*time.Hour || validity > MaxRootMaterialValidity:
		return nil, zerr.New(zerr.BadRequest, "validity %s is outside 24h–%s", validity, MaxRootMaterialValidity)
	case next.After(a.root.NotAfter):
		return nil, zerr.New(zerr.BadRequest, "validity %s would run past the root's own end (%s)", validity, a.root.NotAfter.Format(time.DateOnly))
	}
	cas := a.IssuingCAs()
	// extra: issuing CAs signed in this ceremony, not yet imported (a
	// rollover's second half): the material answers for them too.
	for _, c := range extra {
		if c.CheckSignatureFrom(a.root) != nil {
			return nil, zerr.New(zerr.BadRequest, "%q is not signed by this root", c.Subject.CommonName)
		}
		cas = append(cas, CRLIssuer{Name: "new:" + SerialHex(c.SerialNumber), Cert: c})
	}
	known := map[string]*x509.Certificate{}
	for _, is := range cas {
		known[is.Name] = is.Cert
	}
	revoked := map[string]bool{}
	for _, n := range revoke {
		if known[n] == nil {
			return nil, zerr.New(zerr.BadRequest, "no issuing CA is named %q (known: %s)", n, strings.Join(slices.Sorted(mapsKeys(known)), ", "))
		}
		revoked[n] = true
	}
	// A revocation is final: every later ceremony lists the issuing CAs
	// an earlier one revoked (the manifest keeps them).
	for _, n := range a.m.RevokedIssuing {
		revoked[n] = true
	}
	if err := a.rememberRevoked(slices.Sorted(mapsKeys(revoked))); err != nil {
		return nil, err
	}
	m := &RootMaterial{ThisUpdate: now, NextUpdate: next, OCSP: map[string]map[crypto.Hash][]byte{}}
	var entries []crlder.Entry
	for _, is := range cas {
		if revoked[is.Name] {
			m.Revoked = append(m.Revoked, is.Name)
			m.RevokedSerials = append(m.RevokedSerials, SerialHex(is.Cert.SerialNumber))
			entries = append(entries, crlder.Entry{Serial: is.Cert.SerialNumber.Bytes(), RevokedAt: now, Reason: 2}) // cACompromise
		}
	}
	slices.SortFunc(entries, func(x, y crlder.Entry) int {
		return new(big.Int).SetBytes(x.Serial).Cmp(new(big.Int).SetBytes(y.Serial))
	})
	// The cRLNumber is the signing time: it rises from ceremony to
	// ceremony without a counter kept on the offline machine.
	var err error
	m.CRL, err = crlder.Build(crlder.Params{Issuer: a.root, Signer: a.rootSigner, Number: big.NewInt(now.Unix()), ThisUpdate: now, NextUpdate: next}, crlder.Entries(entries))
	if err != nil {
		return nil, fmt.Errorf("ca: signing the root CRL: %w", err)
	}
	signer, err := ocspder.NewSigner(a.rootSigner, a.root)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(a.root.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, err
	}
	for _, is := range cas {
		serial := SerialHex(is.Cert.SerialNumber)
		m.OCSP[serial] = map[crypto.Hash][]byte{}
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			nh, kh := hashOf(h, a.root.RawSubject), hashOf(h, spki.PublicKey.RightAlign())
			r := &ocspder.Response{Status: ocspder.Good, HashAlgorithm: h, IssuerNameHash: nh, IssuerKeyHash: kh,
				Serial: is.Cert.SerialNumber.Bytes(), Reason: ocspder.NoReason, ThisUpdate: now, NextUpdate: next, ProducedAt: now}
			if revoked[is.Name] {
				r.Status, r.RevokedAt, r.Reason = ocspder.Revoked, now, 2
			}
			body, err := signer.SignBody(r)
			if err != nil {
				return nil, fmt.Errorf("ca: signing the OCSP answer for %s: %w", is.Name, err)
			}
			m.OCSP[serial][h] = signer.AppendResponse(nil, body)
		}
	}
	return m, nil
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func hashOf(h crypto.Hash, b []byte) []byte {
	switch h {
	case crypto.SHA1:
		s := sha1.Sum(b)
		return s[:]
	default:
		s := sha256.Sum256(b)
		return s[:]
	}
}

var hashNames = map[crypto.Hash]string{crypto.SHA1: "sha1", crypto.SHA256: "sha256"}

// WriteRootMaterial writes m into dir (created 0700; files 0644: nothing
// in it is secret).
func WriteRootMaterial(dir string, m *RootMaterial) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	meta := rootMaterialMeta{ThisUpdate: m.ThisUpdate, NextUpdate: m.NextUpdate, Revoked: m.Revoked, OCSP: map[string]string{}}
	if err := writeFileDurable(dir, "root.crl", m.CRL, 0o644); err != nil {
		return err
	}
	for serial, byHash := range m.OCSP {
		for h, der := range byHash {
			name := "ocsp-" + serial + "-" + hashNames[h] + ".der"
			if err := writeFileDurable(dir, name, der, 0o644); err != nil {
				return err
			}
			meta.OCSP[name] = serial
		}
	}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	return writeFileDurable(dir, "material.json", b, 0o644)
}

// ReadRootMaterial reads the material in dir and checks it against this
// CA: every signature by root, every OCSP answer about one of issuers,
// each answer of the CRL's period (thisUpdate and nextUpdate) and of its
// verdict (revoked exactly when the CRL lists that issuing CA). What it
// returns comes from the signed files; material.json is only an index.
// Material signed by another root, about another CA, or mixed from two
// ceremonies is refused whole.
func ReadRootMaterial(dir string, root *x509.Certificate, issuers []*x509.Certificate) (*RootMaterial, error) {
	b, err := os.ReadFile(filepath.Join(dir, "material.json"))
	if err != nil {
		return nil, err
	}
	var meta rootMaterialMeta
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, fmt.Errorf("ca: root material: material.json: %w", err)
	}
	m := &RootMaterial{OCSP: map[string]map[crypto.Hash][]byte{}}
	if m.CRL, err = readRegular(filepath.Join(dir, "root.crl")); err != nil {
		return nil, err
	}
	crl, err := x509.ParseRevocationList(m.CRL)
	if err != nil {
		return nil, fmt.Errorf("ca: root material: root.crl: %w", err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("ca: root material: root.crl is not signed by this CA's root: %w", err)
	}
	m.ThisUpdate, m.NextUpdate = crl.ThisUpdate, crl.NextUpdate
	bySerial := map[string]*x509.Certificate{}
	for _, is := range issuers {
		bySerial[SerialHex(is.SerialNumber)] = is
	}
	listed := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		sn := SerialHex(e.SerialNumber)
		if bySerial[sn] == nil {
			return nil, fmt.Errorf("ca: root material: root.crl lists %s, not an issuing CA of this CA", sn)
		}
		listed[sn] = true
		m.RevokedSerials = append(m.RevokedSerials, sn)
	}
	for name, serial := range meta.OCSP {
		is := bySerial[serial]
		if is == nil || !materialName.MatchString(name) || !strings.HasPrefix(name, "ocsp-"+serial+"-") {
			return nil, fmt.Errorf("ca: root material: %s is about %s, not an issuing CA of this CA", name, serial)
		}
		der, err := readRegular(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		r, err := ocsp.ParseResponseForCert(der, is, root)
		if err != nil {
			return nil, fmt.Errorf("ca: root material: %s: not a response of this CA's root about %s: %w", name, serial, err)
		}
		if !r.NextUpdate.Equal(m.NextUpdate) || !r.ThisUpdate.Equal(m.ThisUpdate) {
			return nil, fmt.Errorf("ca: root material: %s is of another period (%s–%s) than root.crl (%s–%s): mixed ceremonies", name,
				r.ThisUpdate.Format(time.RFC3339), r.NextUpdate.Format(time.RFC3339), m.ThisUpdate.Format(time.RFC3339), m.NextUpdate.Format(time.RFC3339))
		}
		if (r.Status == ocsp.Revoked) != listed[serial] || (r.Status != ocsp.Good && r.Status != ocsp.Revoked) {
			return nil, fmt.Errorf("ca: root material: %s answers status %d about %s, which root.crl does%s list", name, r.Status, serial, map[bool]string{true: "", false: " not"}[listed[serial]])
		}
		h := r.IssuerHash
		if h != crypto.SHA1 && h != crypto.SHA256 {
			return nil, fmt.Errorf("ca: root material: %s: CertID hash %v", name, h)
		}
		if m.OCSP[serial] == nil {
			m.OCSP[serial] = map[crypto.Hash][]byte{}
		}
		m.OCSP[serial][h] = der
	}
	for serial := range bySerial {
		if m.OCSP[serial][crypto.SHA1] == nil {
			return nil, fmt.Errorf("ca: root material: no OCSP answer about issuing CA %s: sign the material again after the rollover (from a ceremony copy of ca/ refreshed after it)", serial)
		}
	}
	return m, nil
}

// materialName is the form of an OCSP answer's file in the material.
var materialName = regexp.MustCompile(`^ocsp-[0-9a-f]{1,40}-sha(1|256)\.der$`)

// readRegular reads a regular file, not through a symbolic link.
func readRegular(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("ca: root material: %s is not a regular file", filepath.Base(path))
	}
	return os.ReadFile(path)
}

// RootMaterial returns the pre-signed root material in the CA directory,
// checked against this CA; os.ErrNotExist when there is none. (After a
// crash between the two renames of an import, the previous material.)
func (a *Authority) RootMaterial() (*RootMaterial, error) {
	dir := filepath.Join(a.opts.Dir, RootMaterialDir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(dir + ".old"); err == nil {
			dir += ".old"
		}
	}
	return a.readMaterial(dir)
}

// readMaterial is ReadRootMaterial for this CA's issuing CAs and extra,
// with the revoked ones named.
func (a *Authority) readMaterial(dir string, extra ...*x509.Certificate) (*RootMaterial, error) {
	m, err := ReadRootMaterial(dir, a.root, append(a.IssuingCerts(), extra...))
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, is := range a.IssuingCAs() {
		names[SerialHex(is.Cert.SerialNumber)] = is.Name
	}
	for _, sn := range m.RevokedSerials {
		n := names[sn]
		if n == "" {
			n = "new issuing CA " + sn
		}
		m.Revoked = append(m.Revoked, n)
	}
	return m, nil
}

// ServedRootMaterial is the material the server serves while the root is
// offline (nil when there is none, or the root is online): read at Open
// and again by ReloadRootMaterial.
func (a *Authority) ServedRootMaterial() *RootMaterial { return a.material.Load() }

// ReloadRootMaterial reads the material in the CA directory again (after
// an import) and serves it if it is good; with the root online it does
// nothing. It returns what is served.
func (a *Authority) ReloadRootMaterial() (*RootMaterial, error) {
	if a.rootSigner != nil {
		return nil, nil
	}
	m, err := a.RootMaterial()
	if err != nil {
		return a.material.Load(), err
	}
	if cur := a.material.Load(); cur == nil || m.ThisUpdate.After(cur.ThisUpdate) {
		a.material.Store(m)
	}
	return a.material.Load(), nil
}

// RootMaterialWarning is the operator's warning about the pre-signed root
// material: none with the root online or more than 30 days left.
func (a *Authority) RootMaterialWarning() string {
	if a.rootSigner != nil {
		return ""
	}
	m := a.material.Load()
	now := a.opts.Now()
	switch {
	case m == nil:
		return "root: offline, and no pre-signed root material: the root's CRL and the OCSP answers about the issuing CAs are missing; relying parties that check the issuing CA (nginx ssl_ocsp on, Java, CRL checks of the whole chain) refuse every client. Run the root material ceremony (README \"Key ceremonies\")"
	case !now.Before(m.NextUpdate):
		return fmt.Sprintf("root: the pre-signed root material ran out on %s: relying parties that check the issuing CA refuse every client. Run the root material ceremony now (README \"Key ceremonies\")", m.NextUpdate.Format(time.RFC3339))
	case m.NextUpdate.Sub(now) < 30*24*time.Hour:
		return fmt.Sprintf("root: the pre-signed root material runs out on %s (%d days): run the root material ceremony and import its result (README \"Key ceremonies\")", m.NextUpdate.Format(time.DateOnly), int(m.NextUpdate.Sub(now).Hours()/24))
	}
	return ""
}

// CheckRootMaterial checks the material in src as ImportRootMaterial
// would, for this CA's issuing CAs and extra (a rollover's new CA not yet
// imported), without changing anything.
func (a *Authority) CheckRootMaterial(src string, extra ...*x509.Certificate) (*RootMaterial, error) {
	m, err := a.readMaterial(src, extra...)
	if err != nil {
		return nil, zerr.Wrap(zerr.BadRequest, err, "refused")
	}
	now := a.opts.Now()
	switch {
	case !now.Before(m.NextUpdate):
		return nil, zerr.New(zerr.BadRequest, "refused: the material ran out on %s", m.NextUpdate.Format(time.RFC3339))
	case m.ThisUpdate.After(now.Add(5 * time.Minute)):
		return nil, zerr.New(zerr.BadRequest, "refused: the material was signed for %s, in the future (the ceremony machine's clock?): relying parties would reject it", m.ThisUpdate.Format(time.RFC3339))
	}
	if cur := a.inPlaceThisUpdate(); !cur.IsZero() && !m.ThisUpdate.After(cur) {
		return nil, zerr.New(zerr.Conflict, "refused: the material in place (signed %s) is not older than this one (signed %s)", cur.Format(time.RFC3339), m.ThisUpdate.Format(time.RFC3339))
	}
	revoked := map[string]bool{}
	for _, n := range m.Revoked {
		revoked[n] = true
	}
	for _, n := range a.m.RevokedIssuing {
		if !revoked[n] {
			return nil, zerr.New(zerr.BadRequest, "refused: the material answers for %s, which an earlier ceremony revoked, as not revoked (a ceremony copy of ca/ older than that ceremony? copy ca/hierarchy.json from the server)", n)
		}
	}
	return m, nil
}

// inPlaceThisUpdate is the signing time of the root CRL in place (zero
// when there is none), read from the signed CRL alone, so that material
// whose answers no longer cover every issuing CA still bars older ones.
func (a *Authority) inPlaceThisUpdate() time.Time {
	b, err := readRegular(filepath.Join(a.opts.Dir, RootMaterialDir, "root.crl"))
	if err != nil {
		return time.Time{}
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil || crl.CheckSignatureFrom(a.root) != nil {
		return time.Time{}
	}
	return crl.ThisUpdate
}

// ImportRootMaterial checks the material in src (CheckRootMaterial) and,
// if it is good, copies it into the CA directory (replacing the old one
// whole) and remembers the issuing CAs it revokes. Nothing changes
// otherwise.
func (a *Authority) ImportRootMaterial(src string) (*RootMaterial, error) {
	m, err := a.CheckRootMaterial(src)
	if err != nil {
		return nil, err
	}
	dst := filepath.Join(a.opts.Dir, RootMaterialDir)
	tmp := dst + ".new"
	_ = os.RemoveAll(tmp)
	if err := WriteRootMaterial(tmp, m); err != nil {
		return nil, err
	}
	old := dst + ".old"
	_ = os.RemoveAll(old)
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, err
	}
	_ = os.RemoveAll(old)
	if err := syncDir(a.opts.Dir); err != nil {
		return nil, err
	}
	return m, a.rememberRevoked(m.Revoked)
}

// rememberRevoked adds names to the manifest's revoked issuing CAs.
func (a *Authority) rememberRevoked(names []string) error {
	all := slices.Clone(a.m.RevokedIssuing)
	for _, n := range names {
		if !slices.Contains(all, n) && !strings.HasPrefix(n, "new issuing CA ") {
			all = append(all, n)
		}
	}
	if len(all) == len(a.m.RevokedIssuing) {
		return nil
	}
	slices.Sort(all)
	m := a.m
	m.RevokedIssuing = all
	if err := writeManifest(a.opts.Dir, &m); err != nil {
		return fmt.Errorf("ca: writing manifest: %w", err)
	}
	a.m = m
	return nil
}

// RunRootMaterial, while the root is offline, reads the root material in
// the CA directory every period (an import is served within it) and logs
// RootMaterialWarning at most once a day, until ctx ends.
func (a *Authority) RunRootMaterial(ctx context.Context, every time.Duration, log *slog.Logger) {
	if a.rootSigner != nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var warned time.Time
	for {
		if _, err := a.ReloadRootMaterial(); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Error("root material in the CA directory cannot be used; serving the previous one", "err", err)
		}
		if w := a.RootMaterialWarning(); w != "" && time.Since(warned) > 24*time.Hour {
			warned = time.Now()
			log.Warn(w)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RootMaterialLeft is how long the served root material lasts (negative
// once run out); ok false with the root online or no material.
func (a *Authority) RootMaterialLeft() (time.Duration, bool) {
	m := a.material.Load()
	if a.rootSigner != nil || m == nil {
		return 0, false
	}
	return m.NextUpdate.Sub(a.opts.Now()), true
}

// RevokedIssuingCAs returns the issuing CAs a root ceremony revoked (the
// manifest's list), for the root's CRL and OCSP answers signed online.
func (a *Authority) RevokedIssuingCAs() []*x509.Certificate {
	var out []*x509.Certificate
	for _, is := range a.IssuingCAs() {
		if slices.Contains(a.m.RevokedIssuing, is.Name) {
			out = append(out, is.Cert)
		}
	}
	return out
}
