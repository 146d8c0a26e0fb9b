package zbcert

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoSetup means `zbcert setup` has not been run for this config
// directory.
var ErrNoSetup = errors.New("no server configured: run `zbcert setup --server URL` first")

// ConfigDir resolves the directory zbcert keeps its state in: flag, then
// $ZBCERT_HOME, then os.UserConfigDir()/zbcert.
func ConfigDir(flag string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if v := getenv("ZBCERT_HOME"); v != "" {
		return v, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the user's config directory: %w (use --config-dir)", err)
	}
	return filepath.Join(d, "zbcert"), nil
}

// Config is what `zbcert setup` remembers: config.json in the config
// directory, with root.pem and chain.pem beside it.
type Config struct {
	Server     string `json:"server"`      // https://host:port of the zbca HTTPS listener
	RootSHA256 string `json:"root_sha256"` // fingerprint confirmed at setup
}

// Home is one config directory.
type Home struct{ Dir string }

func (h Home) path(name ...string) string {
	return filepath.Join(append([]string{h.Dir}, name...)...)
}

// LoadConfig reads config.json and the root it names; ErrNoSetup when
// setup has not been run.
func (h Home) LoadConfig() (*Config, *x509.Certificate, error) {
	b, err := os.ReadFile(h.path("config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, ErrNoSetup
	}
	if err != nil {
		return nil, nil, err
	}
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", h.path("config.json"), err)
	}
	if c.Server == "" {
		return nil, nil, ErrNoSetup
	}
	root, err := readCertFile(h.path("root.pem"))
	if err != nil {
		return nil, nil, err
	}
	if got := Fingerprint(root); got != c.RootSHA256 {
		return nil, nil, fmt.Errorf("%s has fingerprint %s, config.json says %s: run setup again", h.path("root.pem"), got, c.RootSHA256)
	}
	return &c, root, nil
}

// SaveConfig writes config.json, root.pem and chain.pem.
func (h Home) SaveConfig(c *Config, root *x509.Certificate, chainPEM []byte) error {
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(h.path("root.pem"), pemCert(root.Raw), 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(h.path("chain.pem"), chainPEM, 0o644); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return writeFileAtomic(h.path("config.json"), append(b, '\n'), 0o600)
}

// Fingerprint is the SHA-256 of the DER certificate as colon-separated
// upper-case hex, the form browsers and the portal show.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}

// NormalizeFingerprint accepts a SHA-256 fingerprint with or without
// colons or spaces, in any case.
func NormalizeFingerprint(s string) (string, error) {
	r := strings.NewReplacer(":", "", " ", "", "-", "")
	h := strings.ToUpper(r.Replace(strings.TrimSpace(s)))
	h = strings.TrimPrefix(h, "SHA256=")
	if len(h) != 64 || strings.Trim(h, "0123456789ABCDEF") != "" {
		return "", fmt.Errorf("fingerprint %q is not a SHA-256 (64 hex digits)", s)
	}
	var b strings.Builder
	for i := 0; i < 64; i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String(), nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// parseCerts reads every CERTIFICATE block of a PEM bundle.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate in PEM data")
	}
	return out, nil
}

func readCertFile(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cs, err := parseCerts(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cs[0], nil
}

// writeFileAtomic writes through a temporary file and a rename, so that a
// crash never leaves half a key or certificate.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
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
	return os.Rename(tmp, path)
}
