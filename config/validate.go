package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Validate checks every field and returns all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	for name, a := range map[string]string{"listen.http": c.Listen.HTTP, "listen.https": c.Listen.HTTPS, "listen.admin": c.Listen.Admin} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad(name, "%q is not host:port (%v)", a, err)
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("public_url", "%q must be an absolute http:// or https:// URL without query", c.PublicURL)
		}
	}
	if c.publicURLDefaulted {
		if _, p, err := net.SplitHostPort(c.Listen.HTTP); err == nil && p == "0" {
			bad("public_url", "must be set when the public HTTP listener's port is 0 (chosen at start): certificates carry it for years")
		}
	}
	if len(c.HTTPS.Hosts) == 0 {
		bad("https.hosts", "at least one host name or IP address is needed for the TLS certificate")
	}
	for _, h := range c.HTTPS.Hosts {
		if h == "" || strings.ContainsAny(h, " /:@") && net.ParseIP(h) == nil {
			bad("https.hosts", "%q is not a host name or IP address", h)
		}
	}
	if c.CA.KMS != "" && !strings.HasPrefix(c.CA.KMS, "pkcs11:") {
		bad("ca.kms", "%q: only empty (encrypted key files) or a pkcs11: URI is supported", c.CA.KMS)
	}
	if c.CA.KMS != "" && c.CA.PINFile == "" && !strings.Contains(c.CA.KMS, "pin-source=") {
		bad("ca.pin_file", "a PKCS#11 token needs its user PIN: set ca.pin_file to a file with mode 0600")
	}
	if strings.Contains(c.CA.KMS, "pin-value=") {
		bad("ca.kms", "put the PIN in ca.pin_file, not in the URI")
	}
	checkCA := func(field string, p CAProfile, minYears, maxYears int) {
		if strings.TrimSpace(p.CommonName) == "" {
			bad(field+".common_name", "must not be empty")
		}
		if len([]rune(p.CommonName)) > 64 || len([]rune(p.Organization)) > 64 {
			bad(field, "common_name and organization are limited to 64 characters (RFC 5280)")
		}
		if p.Country != "" && len(p.Country) != 2 {
			bad(field+".country", "%q must be a two-letter code", p.Country)
		}
		if !ValidKeyType(p.KeyType) {
			bad(field+".key_type", "%q is not one of %s", p.KeyType, strings.Join(KeyTypes, ", "))
		}
		if p.ValidityYears < minYears || p.ValidityYears > maxYears {
			bad(field+".validity_years", "%d is outside %d–%d", p.ValidityYears, minYears, maxYears)
		}
	}
	checkCA("ca.root", c.CA.Root, 1, 50)
	checkCA("ca.issuing", c.CA.Issuing, 1, 50)
	if c.CA.Issuing.ValidityYears > c.CA.Root.ValidityYears {
		bad("ca.issuing.validity_years", "%d exceeds the root's %d", c.CA.Issuing.ValidityYears, c.CA.Root.ValidityYears)
	}
	if c.CA.Client.ValidityYears < 1 || c.CA.Client.ValidityYears > 10 {
		bad("ca.client.validity_years", "%d is outside 1–10", c.CA.Client.ValidityYears)
	} else if c.CA.Client.ValidityYears >= c.CA.Issuing.ValidityYears {
		bad("ca.client.validity_years", "%d must be shorter than the issuing CA's %d years", c.CA.Client.ValidityYears, c.CA.Issuing.ValidityYears)
	}
	if d := c.CA.Client.Backdate.Duration; d < 0 || d > time.Hour {
		bad("ca.client.backdate", "%s is outside 0–1h", d)
	}
	if d := c.CA.Client.IssuerWarning.Duration; d < 0 {
		bad("ca.client.issuer_warning", "must not be negative")
	}
	if n := c.CA.CRLShards; n < 0 || n == 1 || n > MaxCRLShards {
		bad("ca.crl_shards", "%d is not 0 (no partitioned CRLs) or a shard count of 2–%d", n, MaxCRLShards)
	}
	if !ValidKeyType(c.CA.OCSPSigner.KeyType) {
		bad("ca.ocsp_signer.key_type", "%q is not one of %s", c.CA.OCSPSigner.KeyType, strings.Join(KeyTypes, ", "))
	}
	if d := c.CA.OCSPSigner.Validity.Duration; d < 24*time.Hour || d > 365*24*time.Hour {
		bad("ca.ocsp_signer.validity", "%s is outside 24h–8760h", d)
	}
	if c.CA.Client.Template != "" {
		if _, err := os.Stat(c.CA.Client.Template); err != nil {
			bad("ca.client.template", "%v", err)
		}
	}
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if c.Store.DSNFile == "" {
			bad("store.dsn_file", "is required with driver postgres")
		}
	default:
		bad("store.driver", "%q is not supported (sqlite, postgres)", c.Store.Driver)
	}
	if c.Store.MaxBatch < 1 || c.Store.MaxBatch > 10000 {
		bad("store.max_batch", "%d is outside 1–10000", c.Store.MaxBatch)
	}
	if c.CRL.Interval.Duration < time.Minute || c.CRL.Interval.Duration > 7*24*time.Hour {
		bad("crl.interval", "%s is outside 1m–168h", c.CRL.Interval.Duration)
	}
	if c.CRL.Delay.Duration < time.Second || c.CRL.Delay.Duration > time.Hour {
		bad("crl.delay", "%s is outside 1s–1h", c.CRL.Delay.Duration)
	}
	if c.CRL.Validity.Duration <= c.CRL.Interval.Duration || c.CRL.Validity.Duration > 90*24*time.Hour {
		bad("crl.validity", "%s must exceed crl.interval (%s) and be at most 2160h", c.CRL.Validity.Duration, c.CRL.Interval.Duration)
	}
	if c.CRL.RootValidity.Duration < 24*time.Hour || c.CRL.RootValidity.Duration > 5*365*24*time.Hour {
		bad("crl.root_validity", "%s is outside 24h–43800h", c.CRL.RootValidity.Duration)
	}
	if d := c.OCSP.Validity.Duration; d < 10*time.Minute || d > 7*24*time.Hour {
		bad("ocsp.validity", "%s is outside 10m–168h", d)
	}
	switch c.OCSP.Signer {
	case "delegated", "issuing":
	default:
		bad("ocsp.signer", "%q is not one of delegated, issuing", c.OCSP.Signer)
	}
	if c.Enroll.Policy.MaxActive < 1 || c.Enroll.Policy.MaxActive > 100 {
		bad("enroll.policy.max_active", "%d is outside 1–100", c.Enroll.Policy.MaxActive)
	}
	if c.Enroll.Policy.MaxPerDay < 1 || c.Enroll.Policy.MaxPerDay > 1000000 {
		bad("enroll.policy.max_per_day", "%d is outside 1–1000000", c.Enroll.Policy.MaxPerDay)
	}
	if d := c.Enroll.EABLifetime.Duration; d < time.Minute || d > 24*time.Hour {
		bad("enroll.eab_lifetime", "%s is outside 1m–24h", d)
	}
	if d := c.OCSP.ExpiredGrace.Duration; d < time.Hour || d > 10*365*24*time.Hour {
		bad("ocsp.expired_grace", "%s is outside 1h–87600h (how long after NotAfter a certificate is still answered)", d)
	}
	if c.OCSP.NonceWorkers < 0 || c.OCSP.NonceWorkers > 1024 {
		bad("ocsp.nonce_workers", "%d is outside 0–1024", c.OCSP.NonceWorkers)
	}
	c.Enroll.validate(bad)
	c.Verify.validate(bad)
	return errors.Join(errs...)
}

func (e *Enroll) validate(bad func(field, format string, args ...any)) {
	switch e.Authenticator {
	case "local":
	case "http":
		if e.HTTP.URL == "" {
			bad("enroll.http.url", "must be set for the http authenticator")
		}
	default:
		bad("enroll.authenticator", "%q is not one of local, http", e.Authenticator)
	}
	if e.HTTP.URL != "" {
		if err := CheckLoginURL(e.HTTP.URL); err != nil {
			bad("enroll.http.url", "%v", err)
		}
	}
	if d := e.HTTP.Timeout.Duration; d < 100*time.Millisecond || d > time.Minute {
		bad("enroll.http.timeout", "%s is outside 100ms–1m", d)
	}
	if e.HTTP.CAFile != "" {
		if _, err := os.Stat(e.HTTP.CAFile); err != nil {
			bad("enroll.http.ca_file", "%v", err)
		}
	}
	if m := e.Argon2.MemoryKiB; m < MinArgon2MemoryKiB || m > maxArgon2MemoryKiB {
		bad("enroll.argon2.memory_kib", "%d is outside %d–%d (at least 19 MiB)", m, MinArgon2MemoryKiB, maxArgon2MemoryKiB)
	}
	if n := e.Argon2.Time; n < MinArgon2Time || n > maxArgon2Time {
		bad("enroll.argon2.time", "%d is outside %d–%d", n, MinArgon2Time, maxArgon2Time)
	}
	if e.Argon2.Threads < 1 {
		bad("enroll.argon2.threads", "must be at least 1")
	}
	if n := e.MaxConcurrentHashes; n < 0 || n > 4096 {
		bad("enroll.max_concurrent_hashes", "%d is outside 0–4096", n)
	}
	if n := e.Lockout.Threshold; n < 1 || n > 100 {
		bad("enroll.lockout.threshold", "%d is outside 1–100", n)
	}
	if d := e.Lockout.Base.Duration; d < time.Second || d > 24*time.Hour {
		bad("enroll.lockout.base", "%s is outside 1s–24h", d)
	}
	if d := e.Lockout.Max.Duration; d < e.Lockout.Base.Duration || d > 7*24*time.Hour {
		bad("enroll.lockout.max", "%s must be at least enroll.lockout.base (%s) and at most 168h", d, e.Lockout.Base.Duration)
	}
	if r := e.Rate.PerIPPerSecond; !(r > 0 && r <= 10000) {
		bad("enroll.rate.per_ip_per_second", "%v is outside (0, 10000]", r)
	}
	if n := e.Rate.Burst; n < 1 || n > 100000 {
		bad("enroll.rate.burst", "%d is outside 1–100000", n)
	}
	if r := e.ACMERate.PerIPPerSecond; !(r > 0 && r <= 100000) {
		bad("enroll.acme_rate.per_ip_per_second", "%v is outside (0, 100000]", r)
	}
	if n := e.ACMERate.Burst; n < 1 || n > 1000000 {
		bad("enroll.acme_rate.burst", "%d is outside 1–1000000", n)
	}
}

// CheckLoginURL checks the URL of a login service that passwords are sent
// to: absolute, https, or http only to a loopback address (the password
// must not cross a network in clear text), no user information.
func CheckLoginURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q: credentials in the URL are not accepted", u.Redacted())
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q: passwords are sent to it, so it must be https:// (http:// only to a loopback address)", s)
	}
	return fmt.Errorf("%q must be an https:// URL", s)
}

// KeyTypes lists the accepted key_type values.
var KeyTypes = []string{"EC-P256", "EC-P384", "RSA-2048", "RSA-3072", "RSA-4096"}

// ValidKeyType reports whether s is one of KeyTypes.
func ValidKeyType(s string) bool {
	for _, k := range KeyTypes {
		if s == k {
			return true
		}
	}
	return false
}
