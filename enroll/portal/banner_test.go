package portal

import (
	"testing"
	"time"

	"github.com/zbca/zbca/enroll"
)

func TestExpiryBanner(t *testing.T) {
	t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	c := func(status string, nb time.Time, days int) enroll.CertificateJSON {
		return enroll.CertificateJSON{Status: status, NotBefore: nb, DaysLeft: days}
	}
	for _, tc := range []struct {
		name string
		list []enroll.CertificateJSON
		want string // "", "warn" or "error"
	}{
		{"none", nil, ""},
		{"fresh", []enroll.CertificateJSON{c("active", t0, 900)}, ""},
		{"expiring", []enroll.CertificateJSON{c("active", t0, 12)}, "warn"},
		{"expires in 30 days", []enroll.CertificateJSON{c("active", t0, 30)}, "warn"},
		{"expired", []enroll.CertificateJSON{c("expired", t0, -3)}, "error"},
		{"expiring but a newer one exists", []enroll.CertificateJSON{c("active", t0, 5), c("active", t0.Add(time.Hour), 1095)}, ""},
		{"expired but a newer one exists", []enroll.CertificateJSON{c("active", t0.Add(time.Hour), 1000), c("expired", t0, -1)}, ""},
		{"only revoked", []enroll.CertificateJSON{c("revoked", t0, 3)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := expiryBanner(tc.list, "en")
			switch {
			case tc.want == "" && b != nil:
				t.Fatalf("banner %+v, want none", b)
			case tc.want != "" && (b == nil || b.Class != tc.want):
				t.Fatalf("banner %+v, want %s", b, tc.want)
			}
		})
	}
}

func TestCheckP12Password(t *testing.T) {
	for pw, want := range map[string]bool{
		"Good-Passw0rd": true, "alllowercaseletters": true, "short1A!": false, "onlylower12": false,
		"Abcdefgh12": true, "Ünïcödé-Passw0rd": false, "tab\there-Passw0rd": false,
	} {
		if got := checkP12Password(pw); got != want {
			t.Errorf("%q: %v, want %v", pw, got, want)
		}
	}
}
