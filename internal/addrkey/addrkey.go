// Package addrkey names the client a per-address rate limit counts: one
// bucket per IPv4 address, one per IPv6 /64 (what one host usually gets).
package addrkey

import "net/netip"

// Of returns the bucket of an address ("192.0.2.1", "2001:db8::1",
// with or without a port). Something that is not an address gets a bucket
// of its own text, cut to 64 bytes and marked with "?".
func Of(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			if len(s) > 64 {
				s = s[:64]
			}
			return "?" + s
		}
		a = ap.Addr()
	}
	a = a.WithZone("").Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
