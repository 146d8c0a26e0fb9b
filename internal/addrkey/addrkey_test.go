package addrkey

import (
	"strings"
	"testing"
)

func TestOf(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":              "192.0.2.1",
		"192.0.2.1:443":          "192.0.2.1",
		"::ffff:192.0.2.1":       "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":   "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:8443": "2001:db8:1:2::/64",
		"fe80::1%eth0":           "fe80::/64",
		"not an address":         "?not an address",
		strings.Repeat("x", 100): "?" + strings.Repeat("x", 64),
	} {
		if got := Of(in); got != want {
			t.Errorf("Of(%q) = %q, want %q", in, got, want)
		}
	}
}
