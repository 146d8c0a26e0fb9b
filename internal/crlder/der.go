package crlder

// DER tags used here (X.690).
const (
	tagInteger         = 0x02
	tagBitString       = 0x03
	tagOctetString     = 0x04
	tagUTCTime         = 0x17
	tagGeneralizedTime = 0x18
	tagSequence        = 0x30
)

// headerLen is the size of a DER tag and definite length for n content bytes.
func headerLen(n int) int {
	switch {
	case n < 0x80:
		return 2
	case n <= 0xff:
		return 3
	case n <= 0xffff:
		return 4
	case n <= 0xffffff:
		return 5
	case n <= 0xffffffff:
		return 6
	default:
		return 10
	}
}

// appendHeader appends a DER tag and the definite length n (X.690 §8.1.3,
// shortest form).
func appendHeader(dst []byte, tag byte, n int) []byte {
	dst = append(dst, tag)
	if n < 0x80 {
		return append(dst, byte(n))
	}
	k := headerLen(n) - 2
	dst = append(dst, 0x80|byte(k))
	for i := k - 1; i >= 0; i-- {
		dst = append(dst, byte(n>>(8*i)))
	}
	return dst
}
