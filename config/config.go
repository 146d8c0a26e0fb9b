// Package config reads zbca's one configuration file.
//
// The file is YAML, decoded strictly (an unknown key is an error naming the
// key and its line) and then validated. Every field has a working zero value:
// Default() plus an empty file is a complete configuration. Secrets are never
// written inline; they are read from files named by …_file fields, which must
// not be readable by group or others.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"

	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
type Config struct {
	// DataDir holds the database, the CA material and the secrets. The
	// --data flag and ZBCA_DATA override it (read by cmd/zbca only).
	DataDir string `yaml:"data_dir"`
	// NodeName identifies this server in the issuance journal; defaults to
	// the host name.
	NodeName string `yaml:"node_name"`
	Log      Log    `yaml:"log"`
	Listen   Listen `yaml:"listen"`
	// PublicURL is the base of the URLs written into certificates (CRL
	// distribution point, OCSP, caIssuers). It must reach the public HTTP
	// listener.
	PublicURL string `yaml:"public_url"`
	HTTPS     HTTPS  `yaml:"https"`
	CA        CA     `yaml:"ca"`
	Store     Store  `yaml:"store"`
	Admin     Admin  `yaml:"admin"`
	CRL       CRL    `yaml:"crl"`
	OCSP      OCSP   `yaml:"ocsp"`
	Enroll    Enroll `yaml:"enroll"`
	Verify    Verify `yaml:"verify"`

	publicURLDefaulted bool
}

// PublicURLDefaulted reports whether public_url was derived by Resolve
// rather than configured.
func (c *Config) PublicURLDefaulted() bool { return c.publicURLDefaulted }

// CRL configures CRL publication.
type CRL struct {
	// Interval between scheduled CRLs.
	Interval Duration `yaml:"interval"`
	// Delay: a revocation is in a published CRL within this delay.
	Delay Duration `yaml:"delay"`
	// Validity: nextUpdate = thisUpdate + validity.
	Validity Duration `yaml:"validity"`
	// RootValidity of the root's CRL (the root key may be kept offline).
	RootValidity Duration `yaml:"root_validity"`
}

// OCSP configures the OCSP responder.
type OCSP struct {
	// Validity of pre-signed responses (nextUpdate − thisUpdate); they are
	// re-signed at half of it.
	Validity Duration `yaml:"validity"`
	// Signer: "delegated" (the OCSP signer certificate, default) or
	// "issuing" (the issuing CA key itself).
	Signer string `yaml:"signer"`
	// NonceWorkers bounds live signing (nonce requests); 0: the number of
	// CPUs.
	NonceWorkers int `yaml:"nonce_workers"`
	// ExpiredGrace is how long after a certificate's NotAfter the
	// responder keeps and answers it; after it, "unauthorized" (it keeps
	// no status), so that memory and re-signing follow the certificates
	// in use, not the history. Default 720h (30 days).
	ExpiredGrace Duration `yaml:"expired_grace"`
}

// Enroll configures how enterprises prove who they are (their username and
// password) and the limits on login attempts.
type Enroll struct {
	// Authenticator checks passwords: "local" (the hashes in the database)
	// or "http" (the reporting system's own login endpoint).
	Authenticator string `yaml:"authenticator"`
	// HTTP configures the "http" authenticator.
	HTTP EnrollHTTP `yaml:"http"`
	// Argon2 are the parameters of new hashes; stored hashes with other
	// parameters (and bcrypt hashes) are upgraded at the next login.
	Argon2 EnrollArgon2 `yaml:"argon2"`
	// MaxConcurrentHashes bounds the password hashes computed at once (each
	// argon2id allocates Argon2.MemoryKiB); 0: 2 × GOMAXPROCS.
	MaxConcurrentHashes int `yaml:"max_concurrent_hashes"`
	// Lockout locks a username after consecutive failed logins.
	Lockout EnrollLockout `yaml:"lockout"`
	// Rate limits login attempts per client address.
	Rate EnrollRate `yaml:"rate"`
	// ACMERate limits requests to /acme/* per client address, in each
	// node's memory (an unauthenticated request writes nothing). One
	// issuance is about seven requests.
	ACMERate EnrollRate `yaml:"acme_rate"`
	// Policy applies to every issuance path.
	Policy EnrollPolicy `yaml:"policy"`
	// EABLifetime: how long an EAB key from POST /api/v1/eab stays usable.
	EABLifetime Duration `yaml:"eab_lifetime"`
}

// EnrollPolicy is the issuance policy.
type EnrollPolicy struct {
	// MaxActive certificates per enterprise; a new one revokes the older
	// ones beyond it as superseded.
	MaxActive int `yaml:"max_active"`
	// MaxPerDay issuances per enterprise in any 24 hours.
	MaxPerDay int `yaml:"max_per_day"`
}

// EnrollHTTP configures the "http" authenticator: a POST of
// {"username":…,"password":…} as JSON to URL; a 2xx answer means yes.
type EnrollHTTP struct {
	URL     string   `yaml:"url"`
	Timeout Duration `yaml:"timeout"`
	// CAFile holds the PEM certificates that the login service's TLS
	// certificate must chain to; empty: the system roots.
	CAFile string `yaml:"ca_file"`
}

// EnrollArgon2 are argon2id parameters.
type EnrollArgon2 struct {
	MemoryKiB uint32 `yaml:"memory_kib"`
	Time      uint32 `yaml:"time"`
	Threads   uint8  `yaml:"threads"`
}

// The weakest argon2id parameters accepted for new hashes: OWASP's
// minimum, 19 MiB and two passes.
const (
	MinArgon2MemoryKiB = 19 * 1024
	MinArgon2Time      = 2
	maxArgon2MemoryKiB = 1 << 20 // 1 GiB, the most internal/password verifies
	maxArgon2Time      = 64
)

// EnrollLockout is the progressive lockout: after Threshold consecutive
// failures a username is locked for Base, twice as long after each further
// failure, at most Max. A successful login resets it.
type EnrollLockout struct {
	Threshold int      `yaml:"threshold"`
	Base      Duration `yaml:"base"`
	Max       Duration `yaml:"max"`
}

// EnrollRate is a token bucket per client address (IPv6: per /64).
type EnrollRate struct {
	PerIPPerSecond float64 `yaml:"per_ip_per_second"`
	Burst          int     `yaml:"burst"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Listen holds the three listener addresses (PRODUCT.md, Listeners).
type Listen struct {
	HTTP  string `yaml:"http"`
	HTTPS string `yaml:"https"`
	Admin string `yaml:"admin"`
}

// HTTPS configures the TLS certificate of the HTTPS listener, issued by the
// CA at init for these host names.
type HTTPS struct {
	Hosts []string `yaml:"hosts"`
}

// CA configures the hierarchy and the client-certificate profile.
type CA struct {
	// KMS is empty for encrypted key files in the data directory, or a
	// PKCS#11 URI such as
	// "pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=zbca".
	KMS string `yaml:"kms"`
	// PINFile holds the PKCS#11 user PIN (mode 0600).
	PINFile string `yaml:"pin_file"`
	// PassphraseFile holds the passphrase of the encrypted key files. It is
	// created at init with mode 0600 when missing.
	PassphraseFile string     `yaml:"passphrase_file"`
	Root           CAProfile  `yaml:"root"`
	Issuing        CAProfile  `yaml:"issuing"`
	OCSPSigner     OCSPSigner `yaml:"ocsp_signer"`
	Client         Client     `yaml:"client"`
	// CRLShards, when 2 or more, partitions each issuing CA's CRL into
	// that many shard CRLs: a certificate whose serial is k modulo
	// CRLShards names /crl/<issuing CA>-<k>.crl as its CRL distribution
	// point, and that shard CRL (with a critical issuing distribution
	// point, RFC 5280 §5.2.5) lists only its shard's revocations. The full
	// CRL stays published for auditors. 0 (the default) publishes the
	// full CRL alone. It is read at init only and recorded with the CA:
	// changing it later changes nothing. At most 256.
	CRLShards int `yaml:"crl_shards"`
}

// MaxCRLShards bounds CA.CRLShards.
const MaxCRLShards = 256

// CAProfile describes a CA certificate created at init.
type CAProfile struct {
	CommonName    string `yaml:"common_name"`
	Organization  string `yaml:"organization"`
	Country       string `yaml:"country"`
	KeyType       string `yaml:"key_type"` // EC-P256, EC-P384, RSA-2048, RSA-3072, RSA-4096
	ValidityYears int    `yaml:"validity_years"`
}

// OCSPSigner describes the delegated OCSP signing certificate.
type OCSPSigner struct {
	KeyType  string   `yaml:"key_type"`
	Validity Duration `yaml:"validity"`
}

// Client is the enterprise client-certificate profile.
type Client struct {
	ValidityYears int `yaml:"validity_years"`
	// Backdate moves NotBefore into the past to absorb client clock skew.
	Backdate Duration `yaml:"backdate"`
	// Template is an optional x509util template file that adjusts the
	// profile; it is rendered and checked at start.
	Template string `yaml:"template"`
	// IssuerWarning: warn when the issuing CA can no longer cover a full
	// certificate plus this margin.
	IssuerWarning Duration `yaml:"issuer_warning"`
}

// Store selects the database.
type Store struct {
	Driver string `yaml:"driver"` // sqlite (default) or postgres
	// Path of the SQLite database; default <data_dir>/zbca.db.
	Path string `yaml:"path"`
	// DSNFile holds the database DSN (driver postgres), a secret read with
	// ReadSecretFile, such as postgres://zbca@db.example/zbca?sslmode=verify-full.
	DSNFile string `yaml:"dsn_file"`
	// MaxBatch bounds the number of writes grouped into one commit.
	MaxBatch int `yaml:"max_batch"`
}

// Admin configures the admin listener.
type Admin struct {
	// TokenFile holds the bearer token of /admin/v1/*; created at init.
	TokenFile string `yaml:"token_file"`
}

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		DataDir: "zbca-data",
		Log:     Log{Level: "info", Format: "text"},
		Listen:  Listen{HTTP: ":8080", HTTPS: ":8443", Admin: "127.0.0.1:9090"},
		HTTPS:   HTTPS{Hosts: []string{"localhost", "127.0.0.1"}},
		CA: CA{
			Root:       CAProfile{CommonName: "zbca Root CA", Organization: "zbca", KeyType: "EC-P384", ValidityYears: 20},
			Issuing:    CAProfile{CommonName: "zbca Issuing CA", Organization: "zbca", KeyType: "EC-P256", ValidityYears: 10},
			OCSPSigner: OCSPSigner{KeyType: "EC-P256", Validity: Duration{30 * 24 * time.Hour}},
			Client: Client{
				ValidityYears: 3,
				Backdate:      Duration{5 * time.Minute},
				IssuerWarning: Duration{180 * 24 * time.Hour},
			},
		},
		Store: Store{Driver: "sqlite", MaxBatch: 256},
		CRL: CRL{Interval: Duration{6 * time.Hour}, Delay: Duration{60 * time.Second}, Validity: Duration{7 * 24 * time.Hour},
			RootValidity: Duration{365 * 24 * time.Hour}},
		OCSP: OCSP{Validity: Duration{time.Hour}, Signer: "delegated", ExpiredGrace: Duration{30 * 24 * time.Hour}},
		Enroll: Enroll{
			Authenticator: "local",
			HTTP:          EnrollHTTP{Timeout: Duration{5 * time.Second}},
			Argon2:        EnrollArgon2{MemoryKiB: MinArgon2MemoryKiB, Time: MinArgon2Time, Threads: 1},
			Lockout:       EnrollLockout{Threshold: 5, Base: Duration{time.Minute}, Max: Duration{time.Hour}},
			Rate:          EnrollRate{PerIPPerSecond: 10, Burst: 20},
			ACMERate:      EnrollRate{PerIPPerSecond: 50, Burst: 500},
			Policy:        EnrollPolicy{MaxActive: 1, MaxPerDay: 10},
			EABLifetime:   Duration{10 * time.Minute},
		},
		Verify: DefaultVerify(),
	}
}

// Load reads the file at path over Default(). An empty path means no file.
func Load(path string) (Config, error) {
	c := Default()
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("reading config: %w", err)
	}
	if err := Decode(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Decode strictly decodes YAML bytes over c: unknown keys, several
// documents and wrong types are errors that name the line.
func Decode(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: defaults
		}
		return fmt.Errorf("decoding config: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("decoding config: more than one YAML document")
	}
	return nil
}

// Resolve fills the paths that default to places in the data directory.
// It is called after the data directory is final.
func (c *Config) Resolve() {
	if c.NodeName == "" {
		c.NodeName, _ = os.Hostname()
		if c.NodeName == "" {
			c.NodeName = "zbca"
		}
	}
	if c.Store.Path == "" {
		c.Store.Path = filepath.Join(c.DataDir, "zbca.db")
	}
	if c.CA.PassphraseFile == "" {
		c.CA.PassphraseFile = filepath.Join(c.DataDir, "secrets", "ca-passphrase")
	}
	if c.Admin.TokenFile == "" {
		c.Admin.TokenFile = filepath.Join(c.DataDir, "secrets", "admin-token")
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + hostPort(c.Listen.HTTP, "localhost")
		c.publicURLDefaulted = true
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
}

// SetListenHTTP moves the public HTTP listener (serve --http). When
// public_url is not configured it follows: the certificates this server
// issues then point at the port it listens on (http://localhost:PORT).
func (c *Config) SetListenHTTP(addr string) {
	c.Listen.HTTP = addr
	if c.publicURLDefaulted {
		c.PublicURL = "http://" + hostPort(addr, "localhost")
	}
}

func hostPort(addr, defHost string) string {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if h == "" || h == "0.0.0.0" || h == "::" {
		h = defHost
	}
	return net.JoinHostPort(h, p)
}
