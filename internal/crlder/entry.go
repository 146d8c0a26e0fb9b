package crlder

import "time"

// maxEntryLen bounds one encoded revokedCertificates element: SEQUENCE
// header (2) + INTEGER of up to 21 octets (2+21) + GeneralizedTime (2+15) +
// reasonCode extensions (14). It is below 128, so every entry has a one-byte
// length.
const maxEntryLen = 2 + 23 + 17 + len(reasonExt) + 1

// reasonExt is crlEntryExtensions holding one reasonCode extension
// (RFC 5280 §5.3.1), without the final ENUMERATED value octet:
//
//	SEQUENCE { SEQUENCE { OID 2.5.29.21, OCTET STRING { ENUMERATED r } } }
var reasonExt = [...]byte{0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01}

const (
	minChunk = 4 << 10
	maxChunk = 1 << 20
)

// chunks holds the encoded entries, in order, as a list of buffers, so that
// growing never copies what is already written.
type chunks struct {
	full [][]byte
	cur  []byte
	n    int // bytes in full and cur

	// lead octets before the entries of the first buffer are kept free for
	// the headers, and tail octets after them for the signature, when the
	// buffer was reserved with a count (Params.EntriesHint).
	lead, tail int

	lastSec int64 // cache of the previous revocationDate, by Unix second
	lastLen int
	lastEnc [17]byte
}

// appendEntry validates e and appends its encoding. On error nothing is
// written.
func (c *chunks) appendEntry(e *Entry) error {
	s := e.Serial
	switch {
	case len(s) == 0:
		return errString("empty serial")
	case len(s) > 20:
		return errString("serial longer than 20 bytes")
	case s[0] == 0:
		return errString("serial has a leading zero byte")
	}
	if e.Reason < 0 || e.Reason > 10 || e.Reason == 7 || e.Reason == 8 {
		return errString(reasonError(e.Reason))
	}
	tm, err := c.time(e.RevokedAt)
	if err != nil {
		return err
	}

	pad := int(s[0] >> 7) // a leading 0x00 keeps the INTEGER positive
	intLen := pad + len(s)
	n := 2 + intLen + len(tm)
	if e.Reason != 0 {
		n += len(reasonExt) + 1
	}
	if cap(c.cur)-len(c.cur) < maxEntryLen+c.tail {
		c.grow()
	}
	b := append(c.cur, tagSequence, byte(n), tagInteger, byte(intLen))
	if pad == 1 {
		b = append(b, 0)
	}
	b = append(b, s...)
	b = append(b, tm...)
	if e.Reason != 0 {
		b = append(b, reasonExt[:]...)
		b = append(b, byte(e.Reason))
	}
	c.n += len(b) - len(c.cur)
	c.cur = b
	return nil
}

// reserve makes the first buffer large enough for entries entries of the
// largest size, with lead free octets before them and tail after.
func (c *chunks) reserve(lead, entries, tail int) {
	c.lead, c.tail = lead, tail
	c.cur = make([]byte, lead, lead+entries*maxEntryLen+tail)
}

// whole returns the single buffer holding every entry after its lead, with
// at least tail octets of spare capacity; false if the entries did not fit.
func (c *chunks) whole() ([]byte, bool) {
	if c.lead == 0 || len(c.full) > 0 || cap(c.cur)-len(c.cur) < c.tail {
		return nil, false
	}
	return c.cur, true
}

// grow moves to a new buffer, doubling the size up to maxChunk.
func (c *chunks) grow() {
	size := minChunk
	if c.cur != nil {
		if c.lead > 0 {
			// The reserved buffer is full after all: drop its lead and
			// carry on in chunks.
			c.cur = c.cur[c.lead:]
			c.lead, c.tail = 0, 0
		}
		c.full = append(c.full, c.cur)
		size = min(2*cap(c.cur), maxChunk)
	}
	c.cur = make([]byte, 0, size)
}

// each calls f on every buffer in order.
func (c *chunks) each(f func([]byte)) {
	for _, b := range c.full {
		f(b)
	}
	if len(c.cur) > c.lead {
		f(c.cur[c.lead:])
	}
}

// time returns the DER Time for t. Revocations come in bursts, so the
// previous encoding is reused when t falls in the same second.
func (c *chunks) time(t time.Time) ([]byte, error) {
	if t.IsZero() {
		return nil, errString("zero revocation time")
	}
	sec := t.Unix()
	if c.lastLen == 0 || sec != c.lastSec {
		b, err := appendTime(c.lastEnc[:0], t)
		if err != nil {
			return nil, err
		}
		c.lastSec, c.lastLen = sec, len(b)
	}
	return c.lastEnc[:c.lastLen], nil
}

// appendTime appends t in UTC, to the second, as UTCTime (YYMMDDHHMMSSZ) for
// 1950 through 2049 and as GeneralizedTime (YYYYMMDDHHMMSSZ) otherwise
// (RFC 5280 §4.1.2.5.1, §4.1.2.5.2).
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	switch {
	case year < 0 || year > 9999:
		return nil, errString("time outside years 0000-9999")
	case year >= 1950 && year < 2050:
		dst = append(dst, tagUTCTime, 13)
		dst = append2(dst, year%100)
	default:
		dst = append(dst, tagGeneralizedTime, 15)
		dst = append2(dst, year/100)
		dst = append2(dst, year%100)
	}
	dst = append2(dst, int(month))
	dst = append2(dst, day)
	dst = append2(dst, hour)
	dst = append2(dst, minute)
	dst = append2(dst, second)
	return append(dst, 'Z'), nil
}

func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

func reasonError(r int) string {
	switch r {
	case 7:
		return "reason 7 is unassigned (RFC 5280 §5.3.1)"
	case 8:
		return "reason 8 (removeFromCRL) belongs in delta CRLs only"
	}
	return "reason out of range 0-10"
}
