package config

import (
	"strings"
	"testing"
)

func TestVerifyConfig(t *testing.T) {
	if v := Default().Verify; v != (Verify{ExpiringDays: 30, CacheSize: 100000, NginxCertHeader: "X-SSL-Client-Cert", NginxUserHeader: "X-ZBCA-Username"}) {
		t.Errorf("verify defaults %+v", v)
	}
	c := Default()
	if err := Decode([]byte("verify:\n  expiring_days: 14\n  cache_size: 5000\n  nginx_cert_header: X-Client-Cert\n  nginx_user_header: X-Login-User\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.Verify != (Verify{ExpiringDays: 14, CacheSize: 5000, NginxCertHeader: "X-Client-Cert", NginxUserHeader: "X-Login-User"}) {
		t.Errorf("decoded %+v", c.Verify)
	}
	c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := Decode([]byte("verify:\n  cache: 10\n"), &c); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("unknown key: %v", err)
	}
	cases := map[string]struct {
		mod  func(*Verify)
		want string
	}{
		"expiring negative": {func(v *Verify) { v.ExpiringDays = -1 }, "verify.expiring_days"},
		"expiring too long": {func(v *Verify) { v.ExpiringDays = 366 }, "verify.expiring_days"},
		"cache zero":        {func(v *Verify) { v.CacheSize = 0 }, "verify.cache_size"},
		"cert header empty": {func(v *Verify) { v.NginxCertHeader = "" }, "verify.nginx_cert_header"},
		"cert header space": {func(v *Verify) { v.NginxCertHeader = "X SSL" }, "verify.nginx_cert_header"},
		"user header colon": {func(v *Verify) { v.NginxUserHeader = "X-User:" }, "verify.nginx_user_header"},
		"authorization":     {func(v *Verify) { v.NginxUserHeader = "authorization" }, "another meaning"},
		"same headers":      {func(v *Verify) { v.NginxUserHeader = "x-ssl-client-cert" }, "must differ"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.mod(&c.Verify)
			c.Resolve()
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
