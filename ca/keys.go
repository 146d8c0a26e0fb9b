package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.step.sm/crypto/kms"
	kmsapi "go.step.sm/crypto/kms/apiv1"
	_ "go.step.sm/crypto/kms/pkcs11" // registers pkcs11 (real with cgo, an error without)
	_ "go.step.sm/crypto/kms/softkms"
	"go.step.sm/crypto/pemutil"
)

// keyStore creates and loads the CA's private keys. Soft keys live in
// encrypted PKCS#8 files; PKCS#11 keys stay in the token and only their
// URI is recorded.
type keyStore interface {
	// Manager is the kms used by softcas to create CA keys.
	Manager() kms.KeyManager
	// Persist makes a key created by Manager loadable later and returns
	// its reference (a file name or a pkcs11: URI).
	Persist(name string, resp *kmsapi.CreateKeyResponse) (string, error)
	// Load returns the signer for a reference returned by Persist.
	Load(ref string) (crypto.Signer, error)
	// NewKeyName returns the name to create a new key under.
	NewKeyName(name string) string
	Close() error
}

func signatureAlgorithm(keyType string) (kmsapi.SignatureAlgorithm, int, error) {
	switch keyType {
	case "EC-P256":
		return kmsapi.ECDSAWithSHA256, 0, nil
	case "EC-P384":
		return kmsapi.ECDSAWithSHA384, 0, nil
	case "RSA-2048":
		return kmsapi.SHA256WithRSA, 2048, nil
	case "RSA-3072":
		return kmsapi.SHA256WithRSA, 3072, nil
	case "RSA-4096":
		return kmsapi.SHA256WithRSA, 4096, nil
	}
	return 0, 0, fmt.Errorf("unsupported key type %q", keyType)
}

// softKeys keeps keys as PKCS#8 files encrypted with a passphrase.
type softKeys struct {
	dir  string
	pass []byte
	km   kms.KeyManager
}

func newSoftKeys(dir string, pass []byte) (*softKeys, error) {
	km, err := kms.New(context.Background(), kmsapi.Options{Type: kmsapi.SoftKMS})
	if err != nil {
		return nil, err
	}
	return &softKeys{dir: dir, pass: pass, km: km}, nil
}

func (k *softKeys) Manager() kms.KeyManager       { return k.km }
func (k *softKeys) NewKeyName(name string) string { return name }
func (k *softKeys) Close() error                  { return nil }

func (k *softKeys) Persist(name string, resp *kmsapi.CreateKeyResponse) (string, error) {
	if resp.PrivateKey == nil {
		return "", errors.New("softkms returned no private key")
	}
	file := name + ".key"
	block, err := pemutil.Serialize(resp.PrivateKey, pemutil.WithPKCS8(true), pemutil.WithPassword(k.pass))
	if err != nil {
		return "", fmt.Errorf("encrypting key %s: %w", file, err)
	}
	if err := writeFileDurable(k.dir, file, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", fmt.Errorf("writing encrypted key %s: %w", file, err)
	}
	return file, nil
}

func (k *softKeys) Load(ref string) (crypto.Signer, error) {
	if strings.ContainsAny(ref, `/\`) || ref == "" {
		return nil, fmt.Errorf("bad key reference %q", ref)
	}
	key, err := pemutil.Read(filepath.Join(k.dir, ref), pemutil.WithPassword(k.pass))
	if err != nil {
		return nil, fmt.Errorf("reading key %s (wrong passphrase?): %w", ref, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s is not a signing key", ref)
	}
	return s, nil
}

// hsmKeys keeps keys in a PKCS#11 token.
type hsmKeys struct {
	km kms.KeyManager
}

func newHSMKeys(uri string, pin []byte) (*hsmKeys, error) {
	km, err := kms.New(context.Background(), kmsapi.Options{Type: kmsapi.PKCS11, URI: uri, Pin: string(pin)})
	if err != nil {
		return nil, fmt.Errorf("opening PKCS#11 token: %w", err)
	}
	return &hsmKeys{km: km}, nil
}

func (k *hsmKeys) Manager() kms.KeyManager { return k.km }
func (k *hsmKeys) Close() error            { return k.km.Close() }

func (k *hsmKeys) NewKeyName(name string) string {
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	return "pkcs11:id=" + hex.EncodeToString(id) + ";object=zbca-" + name
}

func (k *hsmKeys) Persist(_ string, resp *kmsapi.CreateKeyResponse) (string, error) {
	return resp.CreateSignerRequest.SigningKey, nil
}

func (k *hsmKeys) Load(ref string) (crypto.Signer, error) {
	s, err := k.km.CreateSigner(&kmsapi.CreateSignerRequest{SigningKey: ref})
	if err != nil {
		return nil, fmt.Errorf("loading %s from the token: %w", ref, err)
	}
	return s, nil
}

// readOrCreatePassphrase returns the passphrase in path, creating a random
// one (mode 0600) when create is set and the file does not exist.
func readOrCreatePassphrase(path string, create bool) ([]byte, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && create {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		pw := hex.EncodeToString(b)
		if err := writeFileExcl(path, []byte(pw+"\n"), 0o600); err != nil {
			return nil, err
		}
		return []byte(pw), nil
	}
	return readSecret(path)
}

func writeFileExcl(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
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
	return f.Close()
}
