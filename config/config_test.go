package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if c.PublicURL != "http://localhost:8080" {
		t.Errorf("public_url default %q", c.PublicURL)
	}
	if c.Store.Path != filepath.Join("zbca-data", "zbca.db") {
		t.Errorf("store path %q", c.Store.Path)
	}
}

func TestDecode(t *testing.T) {
	c := Default()
	err := Decode([]byte(`
listen:
  http: "127.0.0.1:80"
ca:
  ocsp_signer:
    validity: 48h
  client:
    backdate: 2m
https:
  hosts: [ca.example.cn, 10.0.0.1]
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.HTTP != "127.0.0.1:80" || c.Listen.HTTPS != ":8443" {
		t.Errorf("listen %+v: defaults not kept", c.Listen)
	}
	if c.CA.OCSPSigner.Validity.Duration != 48*time.Hour || c.CA.Client.Backdate.Duration != 2*time.Minute {
		t.Errorf("durations %v %v", c.CA.OCSPSigner.Validity, c.CA.Client.Backdate)
	}
	if c.CA.Root.KeyType != "EC-P384" {
		t.Error("nested default lost")
	}
	c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"unknown key":    {"listen:\n  htp: x\n", "line 2: field htp not found"},
		"unknown top":    {"log:\n  level: info\nfoo: 1\n", "line 3: field foo not found"},
		"bare duration":  {"ca:\n  client:\n    backdate: 300\n", "line 3: duration must be a string with a unit"},
		"bad duration":   {"ca:\n  client:\n    backdate: five\n", `line 3: invalid duration "five"`},
		"wrong type":     {"https:\n  hosts: localhost\n", "line 2"},
		"two documents":  {"log:\n  level: info\n---\nlog:\n  level: debug\n", "more than one YAML document"},
		"not yaml":       {"listen: [\n", "line"},
		"int for string": {"ca:\n  root:\n    validity_years: ten\n", "line 3"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			err := Decode([]byte(tc.in), &c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	c := Default()
	if err := Decode(nil, &c); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestValidate(t *testing.T) {
	cases := map[string]struct {
		mod  func(*Config)
		want string
	}{
		"log level":        {func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		"listen":           {func(c *Config) { c.Listen.Admin = "nohost" }, "listen.admin"},
		"public url":       {func(c *Config) { c.PublicURL = "ftp://x" }, "public_url"},
		"hosts":            {func(c *Config) { c.HTTPS.Hosts = nil }, "https.hosts"},
		"key type":         {func(c *Config) { c.CA.Root.KeyType = "DSA" }, "ca.root.key_type"},
		"issuer > root":    {func(c *Config) { c.CA.Issuing.ValidityYears = 30 }, "exceeds the root"},
		"client >= issuer": {func(c *Config) { c.CA.Client.ValidityYears = 10 }, "shorter than the issuing"},
		"backdate":         {func(c *Config) { c.CA.Client.Backdate.Duration = 2 * time.Hour }, "ca.client.backdate"},
		"kms":              {func(c *Config) { c.CA.KMS = "awskms:foo" }, "ca.kms"},
		"pin in uri":       {func(c *Config) { c.CA.KMS = "pkcs11:token=x?pin-value=1234" }, "pin_file"},
		"driver":           {func(c *Config) { c.Store.Driver = "mysql" }, "store.driver"},
		"template":         {func(c *Config) { c.CA.Client.Template = "/nonexistent/tpl" }, "ca.client.template"},
		"ocsp validity":    {func(c *Config) { c.CA.OCSPSigner.Validity.Duration = time.Minute }, "ca.ocsp_signer.validity"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			c.Resolve()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s")
	os.WriteFile(p, []byte("  hunter2-secret \n"), 0o600)
	b, err := ReadSecretFile(p)
	if err != nil || string(b) != "hunter2-secret" {
		t.Fatalf("%q %v", b, err)
	}
	os.Chmod(p, 0o640)
	if _, err := ReadSecretFile(p); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("group-readable secret accepted: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "e"), []byte("\n"), 0o600)
	if _, err := ReadSecretFile(filepath.Join(dir, "e")); err == nil {
		t.Error("empty secret accepted")
	}
	if _, err := ReadSecretFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing secret accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("listen:\n  http: \":80\"\n"))
	f.Add([]byte("ca:\n  client:\n    backdate: 5m\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := Default()
		if err := Decode(b, &c); err != nil {
			return
		}
		c.Resolve()
		_ = c.Validate() // must not panic
	})
}
