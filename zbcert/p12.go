package zbcert

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"software.sslmate.com/src/go-pkcs12"
)

// P12Profile is the PKCS#12 encryption: modern (AES-256-CBC, PBKDF2,
// SHA-256 MAC; Windows 10 1709+, current OpenSSL, NSS) or legacy
// (3DES and SHA-1: what macOS's Keychain and old Windows can open).
type P12Profile string

const (
	P12Modern P12Profile = "modern"
	P12Legacy P12Profile = "legacy"
)

// DefaultP12Profile is the profile the target OS opens: legacy for macOS,
// whose `security import` refuses AES-encrypted PKCS#12; modern elsewhere.
func DefaultP12Profile(goos string) P12Profile {
	if goos == "darwin" {
		return P12Legacy
	}
	return P12Modern
}

// ParseP12Profile accepts modern and legacy; "" is the default for goos.
func ParseP12Profile(s, goos string) (P12Profile, error) {
	switch P12Profile(s) {
	case "":
		return DefaultP12Profile(goos), nil
	case P12Modern, P12Legacy:
		return P12Profile(s), nil
	}
	return "", fmt.Errorf("PKCS#12 profile %q: modern or legacy", s)
}

// EncodeP12 writes key, certificate and chain (the root included, so the
// target computer can build the path) protected by password.
func EncodeP12(key crypto.Signer, chain []*x509.Certificate, password string, p P12Profile) ([]byte, error) {
	if password == "" {
		return nil, errors.New("a PKCS#12 file needs a password")
	}
	enc := pkcs12.Modern2023
	if p == P12Legacy {
		enc = pkcs12.LegacyDES
	}
	return enc.WithRand(rand.Reader).Encode(key, chain[0], chain[1:], password)
}

// DecodeP12 reads a PKCS#12 file: the key, and the chain with the leaf
// first.
func DecodeP12(data []byte, password string) (crypto.Signer, []*x509.Certificate, error) {
	k, leaf, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the PKCS#12 file (wrong password?): %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("the PKCS#12 file holds no usable private key")
	}
	return s, orderChain(leaf, cas), nil
}

// orderChain puts the CA certificates after the leaf in issuing order,
// dropping those that are not on its path.
func orderChain(leaf *x509.Certificate, cas []*x509.Certificate) []*x509.Certificate {
	chain := []*x509.Certificate{leaf}
	used := make([]bool, len(cas))
	for cur := leaf; ; {
		next := -1
		for i, c := range cas {
			if !used[i] && cur.CheckSignatureFrom(c) == nil {
				next = i
				break
			}
		}
		if next < 0 || cur.CheckSignatureFrom(cur) == nil {
			return chain
		}
		used[next] = true
		cur = cas[next]
		chain = append(chain, cur)
	}
}

// Export writes the entry as a PKCS#12 file (mode 0600).
func (h Home) Export(e *Entry, file, password string, p P12Profile) error {
	key, err := h.Key(e)
	if err != nil {
		return err
	}
	b, err := EncodeP12(key, h.fullChain(e.Chain), password, p)
	if err != nil {
		return err
	}
	return writeFileAtomic(file, b, 0o600)
}

// fullChain appends the configured root when the stored chain stops below
// it, so an exported file carries the whole path.
func (h Home) fullChain(chain []*x509.Certificate) []*x509.Certificate {
	last := chain[len(chain)-1]
	if last.CheckSignatureFrom(last) == nil {
		return chain
	}
	if _, root, err := h.LoadConfig(); err == nil && last.CheckSignatureFrom(root) == nil {
		return append(append([]*x509.Certificate{}, chain...), root)
	}
	return chain
}

// Import stores the key and chain of a PKCS#12 file as a local certificate.
func (h Home) Import(file, password string) (*Entry, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	key, chain, err := DecodeP12(b, password)
	if err != nil {
		return nil, err
	}
	return h.SaveCert(key, chain)
}
