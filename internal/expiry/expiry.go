// Package expiry is the one rule for "expired" and "days left" of a
// certificate, shared by the server (verification API, portal, admin API,
// CLI) and the zbcert client, so that they never disagree by a day. It is
// a leaf package so that zbcert need not import ca (and its store and SQL
// drivers) for it.
package expiry

import "time"

const day = 24 * time.Hour

// Expired reports whether a certificate with this notAfter has expired at
// now. notAfter itself is still within the validity period (RFC 5280
// §4.1.2.5: "from notBefore through notAfter, inclusive").
func Expired(notAfter, now time.Time) bool { return now.After(notAfter) }

// DaysLeft is the number of whole days from now until notAfter, rounded
// down: 1 with exactly 24h left, 0 in the last day (0 at notAfter itself),
// negative once expired (-1 from 1ns after notAfter).
func DaysLeft(notAfter, now time.Time) int {
	d := notAfter.Sub(now)
	n := d / day
	if d%day < 0 {
		n--
	}
	return int(n)
}
