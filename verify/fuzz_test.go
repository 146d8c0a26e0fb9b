package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// memStore is a store holding one certificate, for the fuzzer (SQLite
// under the fuzzer's coverage instrumentation is too slow).
type memStore struct{ rec *store.Certificate }

func (m *memStore) GetCertificate(_ context.Context, serial string) (*store.Certificate, error) {
	if m.rec == nil || serial != m.rec.Serial {
		return nil, zerr.New(zerr.NotFound, "not found")
	}
	return m.rec, nil
}

func (m *memStore) CertRevocation(_ context.Context, serial string) (store.Revocation, bool, error) {
	if m.rec == nil || serial != m.rec.Serial {
		return store.Revocation{}, false, nil
	}
	return store.Revocation{Revoked: m.rec.Status == store.CertRevoked}, true, nil
}

func (m *memStore) APIKeyByHash(context.Context, string) (*store.APIKey, error) {
	return nil, zerr.New(zerr.NotFound, "not found")
}

// FuzzCertificateInput: whatever the certificate field holds, Verify
// answers one of the results without an error, and only the one
// certificate the store knows is let in.
func FuzzCertificateInput(f *testing.F) {
	root := newForeignCA(f, pkix.Name{CommonName: "Fuzz Root"}, nil)
	ik, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	itmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Fuzz Issuing"}, NotBefore: t0.AddDate(-1, 0, 0),
		NotAfter: t0.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	ider, err := x509.CreateCertificate(rand.Reader, itmpl, root.cert, ik.Public(), root.key)
	if err != nil {
		f.Fatal(err)
	}
	icert, _ := x509.ParseCertificate(ider)
	issuing := &foreign{cert: icert, key: ik}
	leaf := issuing.issue(f, "acme", nil)
	fp := sha256.Sum256(leaf.Raw)
	ms := &memStore{rec: &store.Certificate{Serial: ca.SerialHex(leaf.SerialNumber), Profile: store.ProfileClient, Username: "acme",
		FingerprintSHA256: hex.EncodeToString(fp[:]), Status: store.CertActive, NotAfter: leaf.NotAfter}}
	svc, err := New(Options{Root: root.cert, Issuers: []*x509.Certificate{icert}, Store: ms, Keys: ms, ExpiringDays: 30, CacheSize: 64, Now: func() time.Time { return t0 }})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pemOf(leaf, icert, root.cert))
	f.Add([]byte(base64.StdEncoding.EncodeToString(append(append([]byte{}, leaf.Raw...), icert.Raw...))))
	f.Add([]byte(base64.RawURLEncoding.EncodeToString(leaf.Raw)))
	f.Add(pemOf(root.issue(f, "acme", nil)))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("MAMCAQE="))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		der, n, err := splitInput(in)
		if err == nil && (der == nil || n < 1 || n > MaxChain) {
			t.Fatalf("splitInput: leaf %d bytes, %d certificates", len(der), n)
		}
		a, err := svc.Verify(context.Background(), Request{Certificate: in, Username: "acme"})
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if !slices.Contains(Results, a.Result) || a.Message.ZH == "" || a.Message.EN == "" {
			t.Fatalf("answer %+v", a)
		}
		if a.Valid && !slices.Equal(der, leaf.Raw) {
			t.Fatalf("a certificate that is not the one the store knows was answered %s", a.Result)
		}
	})
}
