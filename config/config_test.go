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
		"postgres dsn":     {func(c *Config) { c.Store.Driver = "postgres" }, "store.dsn_file"},
		"template":         {func(c *Config) { c.CA.Client.Template = "/nonexistent/tpl" }, "ca.client.template"},
		"ocsp validity":    {func(c *Config) { c.CA.OCSPSigner.Validity.Duration = time.Minute }, "ca.ocsp_signer.validity"},
		"crl shards < 0":   {func(c *Config) { c.CA.CRLShards = -1 }, "ca.crl_shards: -1 is not 0"},
		"one crl shard":    {func(c *Config) { c.CA.CRLShards = 1 }, "ca.crl_shards: 1 is not 0 (no partitioned CRLs) or a shard count of 2–256"},
		"crl shards > max": {func(c *Config) { c.CA.CRLShards = 257 }, "ca.crl_shards: 257"},
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

func TestEnrollDefaults(t *testing.T) {
	e := Default().Enroll
	if e.Authenticator != "local" || e.HTTP.Timeout.Duration != 5*time.Second || e.MaxConcurrentHashes != 0 {
		t.Errorf("enroll defaults %+v", e)
	}
	if e.Argon2 != (EnrollArgon2{MemoryKiB: 19456, Time: 2, Threads: 1}) {
		t.Errorf("argon2 defaults %+v, want 19 MiB, t=2, p=1", e.Argon2)
	}
	if e.Lockout.Threshold != 5 || e.Lockout.Base.Duration != time.Minute || e.Lockout.Max.Duration != time.Hour {
		t.Errorf("lockout defaults %+v", e.Lockout)
	}
	if e.Rate.PerIPPerSecond != 10 || e.Rate.Burst != 20 {
		t.Errorf("rate defaults %+v", e.Rate)
	}
}

func TestEnrollDecode(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "login-ca.pem")
	os.WriteFile(ca, []byte("pem"), 0o644)
	c := Default()
	err := Decode([]byte(`
enroll:
  authenticator: http
  http:
    url: https://report.example.cn/api/login
    timeout: 3s
    ca_file: `+ca+`
  argon2:
    memory_kib: 65536
    time: 3
    threads: 2
  max_concurrent_hashes: 8
  lockout:
    threshold: 3
    base: 30s
    max: 2h
  rate:
    per_ip_per_second: 2.5
    burst: 5
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	e := c.Enroll
	if e.Authenticator != "http" || e.HTTP.URL != "https://report.example.cn/api/login" || e.HTTP.Timeout.Duration != 3*time.Second || e.HTTP.CAFile != ca {
		t.Errorf("http %+v", e.HTTP)
	}
	if e.Argon2 != (EnrollArgon2{MemoryKiB: 65536, Time: 3, Threads: 2}) || e.MaxConcurrentHashes != 8 {
		t.Errorf("argon2 %+v, max %d", e.Argon2, e.MaxConcurrentHashes)
	}
	if e.Lockout.Threshold != 3 || e.Lockout.Base.Duration != 30*time.Second || e.Lockout.Max.Duration != 2*time.Hour {
		t.Errorf("lockout %+v", e.Lockout)
	}
	if e.Rate.PerIPPerSecond != 2.5 || e.Rate.Burst != 5 {
		t.Errorf("rate %+v", e.Rate)
	}
	c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"enroll:\n  lockout:\n    bse: 1m\n", "enroll:\n  argon2:\n    threads: 300\n", "enroll:\n  lockout:\n    base: 60\n"} {
		c := Default()
		if err := Decode([]byte(in), &c); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("%q: got %v, want an error naming the line", in, err)
		}
	}
}

func TestEnrollValidate(t *testing.T) {
	cases := map[string]struct {
		mod  func(*Enroll)
		want string
	}{
		"authenticator":      {func(e *Enroll) { e.Authenticator = "ldap" }, "enroll.authenticator"},
		"http without url":   {func(e *Enroll) { e.Authenticator = "http" }, "enroll.http.url: must be set"},
		"plain http":         {func(e *Enroll) { e.HTTP.URL = "http://report.example.cn/login" }, "must be https://"},
		"relative url":       {func(e *Enroll) { e.HTTP.URL = "/login" }, "not an absolute URL"},
		"ftp url":            {func(e *Enroll) { e.HTTP.URL = "ftp://report.example.cn/login" }, "must be an https:// URL"},
		"credentials in url": {func(e *Enroll) { e.HTTP.URL = "https://u:secret@report.example.cn/" }, "credentials"},
		"timeout":            {func(e *Enroll) { e.HTTP.Timeout.Duration = 0 }, "enroll.http.timeout"},
		"ca file":            {func(e *Enroll) { e.HTTP.CAFile = "/nonexistent/ca.pem" }, "enroll.http.ca_file"},
		"memory below 19MiB": {func(e *Enroll) { e.Argon2.MemoryKiB = 19455 }, "enroll.argon2.memory_kib"},
		"memory above 1GiB":  {func(e *Enroll) { e.Argon2.MemoryKiB = 1<<20 + 1 }, "enroll.argon2.memory_kib"},
		"time 1":             {func(e *Enroll) { e.Argon2.Time = 1 }, "enroll.argon2.time"},
		"threads 0":          {func(e *Enroll) { e.Argon2.Threads = 0 }, "enroll.argon2.threads"},
		"max hashes":         {func(e *Enroll) { e.MaxConcurrentHashes = -1 }, "enroll.max_concurrent_hashes"},
		"threshold":          {func(e *Enroll) { e.Lockout.Threshold = 0 }, "enroll.lockout.threshold"},
		"base":               {func(e *Enroll) { e.Lockout.Base.Duration = 0 }, "enroll.lockout.base"},
		"max < base":         {func(e *Enroll) { e.Lockout.Max.Duration = 30 * time.Second }, "enroll.lockout.max"},
		"rate 0":             {func(e *Enroll) { e.Rate.PerIPPerSecond = 0 }, "enroll.rate.per_ip_per_second"},
		"burst 0":            {func(e *Enroll) { e.Rate.Burst = 0 }, "enroll.rate.burst"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.mod(&c.Enroll)
			c.Resolve()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	for _, u := range []string{"https://report.example.cn/login", "http://127.0.0.1:8081/login", "http://localhost/login", "http://[::1]:80/x"} {
		c := Default()
		c.Enroll.Authenticator = "http"
		c.Enroll.HTTP.URL = u
		c.Resolve()
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestCRLShards(t *testing.T) {
	c := Default()
	if c.CA.CRLShards != 0 {
		t.Fatalf("default crl_shards %d, want 0 (no partitioning)", c.CA.CRLShards)
	}
	if err := Decode([]byte("ca:\n  crl_shards: 16\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.CA.CRLShards != 16 {
		t.Fatalf("crl_shards %d", c.CA.CRLShards)
	}
	for _, n := range []int{0, 2, 16, MaxCRLShards} {
		c := Default()
		c.CA.CRLShards = n
		c.Resolve()
		if err := c.Validate(); err != nil {
			t.Errorf("crl_shards %d refused: %v", n, err)
		}
	}
}

// serve --http moves a defaulted public_url with the listener, and leaves a
// configured one alone; a defaulted one cannot follow a port chosen at
// start.
func TestSetListenHTTPPublicURL(t *testing.T) {
	c := Default()
	c.Resolve()
	c.SetListenHTTP("127.0.0.1:8081")
	if c.PublicURL != "http://127.0.0.1:8081" || !c.PublicURLDefaulted() {
		t.Errorf("defaulted public_url after --http 127.0.0.1:8081: %q", c.PublicURL)
	}
	c.SetListenHTTP(":9000")
	if c.PublicURL != "http://localhost:9000" {
		t.Errorf("defaulted public_url after --http :9000: %q", c.PublicURL)
	}
	c.SetListenHTTP(":0")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "public_url") {
		t.Errorf("defaulted public_url with port 0: %v", err)
	}

	c = Default()
	c.PublicURL = "https://ca.example.cn"
	c.Resolve()
	c.SetListenHTTP(":0")
	if c.PublicURL != "https://ca.example.cn" || c.Listen.HTTP != ":0" {
		t.Errorf("configured public_url after --http :0: %q", c.PublicURL)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("configured public_url with port 0: %v", err)
	}
}
