package zbcert

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.step.sm/crypto/pemutil"
)

// The local store, in the config directory:
//
//	secrets/key-passphrase   random passphrase of every key below (0600)
//	certs/<serial>/cert.pem  the certificate and its chain (leaf first)
//	certs/<serial>/key.pem   its private key, encrypted PKCS#8 PEM (0600)
//	accounts/<user>.pem      the ACME account key of a username (encrypted)
//
// The keys are encrypted with a passphrase kept beside them: this protects
// a copied certs/ folder, not a copied config directory. Moving a
// certificate to another computer is `zbcert export`, a password-protected
// PKCS#12 file.

// SerialHex is a serial as zbca writes it: lower-case hex, no leading
// zeros.
func SerialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// Entry is one local certificate with its chain; its key stays on disk
// until Key is called.
type Entry struct {
	Serial string
	Dir    string
	Chain  []*x509.Certificate // leaf first
}

// Leaf is the certificate itself.
func (e *Entry) Leaf() *x509.Certificate { return e.Chain[0] }

// User is the enterprise username the certificate was issued to (its CN).
func (e *Entry) User() string { return e.Leaf().Subject.CommonName }

// passphrase reads secrets/key-passphrase, creating it on first use.
func (h Home) passphrase() ([]byte, error) {
	p := h.path("secrets", "key-passphrase")
	b, err := os.ReadFile(p)
	if err == nil {
		if s := strings.TrimSpace(string(b)); len(s) >= 32 {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("%s is too short: it was edited", p)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	s := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	// Written whole and synced under a temporary name, then linked into
	// place, which fails if the name exists: a concurrent zbcert never
	// reads a half-written file, and a crash never leaves an empty one
	// behind a key already encrypted with it.
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp, p); errors.Is(err, os.ErrExist) {
		return h.passphrase() // another zbcert made it meanwhile
	} else if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// writeKey stores key as encrypted PKCS#8 PEM.
func (h Home) writeKey(path string, key crypto.Signer) error {
	pw, err := h.passphrase()
	if err != nil {
		return err
	}
	blk, err := pemutil.Serialize(key, pemutil.WithPKCS8(true), pemutil.WithPassword(pw))
	if err != nil {
		return fmt.Errorf("encrypting the key: %w", err)
	}
	return writeFileAtomic(path, pem.EncodeToMemory(blk), 0o600)
}

func (h Home) readKey(path string) (crypto.Signer, error) {
	pw, err := h.passphrase()
	if err != nil {
		return nil, err
	}
	k, err := pemutil.Read(path, pemutil.WithPassword(pw))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a private key", path)
	}
	return s, nil
}

// SaveCert stores a certificate, its chain and its key.
func (h Home) SaveCert(key crypto.Signer, chain []*x509.Certificate) (*Entry, error) {
	if len(chain) == 0 {
		return nil, errors.New("no certificate")
	}
	if !samePublicKey(chain[0].PublicKey, key.Public()) {
		return nil, errors.New("the certificate does not match the private key")
	}
	e := &Entry{Serial: SerialHex(chain[0]), Chain: chain}
	e.Dir = h.path("certs", e.Serial)
	if err := os.MkdirAll(e.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := h.writeKey(filepath.Join(e.Dir, "key.pem"), key); err != nil {
		return nil, err
	}
	var b []byte
	for _, c := range chain {
		b = append(b, pemCert(c.Raw)...)
	}
	if err := writeFileAtomic(filepath.Join(e.Dir, "cert.pem"), b, 0o644); err != nil {
		return nil, err
	}
	return e, nil
}

// Key decrypts the entry's private key.
func (h Home) Key(e *Entry) (crypto.Signer, error) {
	return h.readKey(filepath.Join(e.Dir, "key.pem"))
}

// Certs lists the local certificates, newest first. Unreadable entries are
// reported in the error but do not hide the others.
func (h Home) Certs() ([]*Entry, error) {
	dirs, err := os.ReadDir(h.path("certs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Entry
	var errs []error
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := h.path("certs", d.Name())
		b, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		chain, err := parseCerts(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", dir, err))
			continue
		}
		out = append(out, &Entry{Serial: SerialHex(chain[0]), Dir: dir, Chain: chain})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Leaf().NotBefore.After(out[j].Leaf().NotBefore) })
	return out, errors.Join(errs...)
}

// FindCert returns the local certificate with that serial (hex, colons
// and case ignored).
func (h Home) FindCert(serial string) (*Entry, error) {
	want := strings.TrimLeft(strings.ToLower(strings.ReplaceAll(serial, ":", "")), "0")
	list, err := h.Certs()
	for _, e := range list {
		if e.Serial == want {
			return e, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("no local certificate with serial %s", serial)
}

// RemoveCert deletes a local certificate and its key.
func (h Home) RemoveCert(e *Entry) error { return os.RemoveAll(e.Dir) }

func (h Home) accountPath(user string) string { return h.path("accounts", user+".pem") }

// AccountKey returns the ACME account key remembered for user, or nil.
func (h Home) AccountKey(user string) (crypto.Signer, error) {
	p := h.accountPath(user)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return h.readKey(p)
}

// SaveAccountKey remembers user's ACME account key, so that renew needs
// no password.
func (h Home) SaveAccountKey(user string, key crypto.Signer) error {
	return h.writeKey(h.accountPath(user), key)
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	x, ok := a.(eq)
	return ok && x.Equal(b)
}
