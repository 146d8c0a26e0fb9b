package ocspder

// Unsigned OCSPResponses that carry only an error responseStatus (RFC 6960
// §2.3, §4.2.1): SEQUENCE { ENUMERATED status }. They are shared: callers
// must not modify them.
var (
	MalformedRequest = errorResponse(1)
	InternalError    = errorResponse(2)
	TryLater         = errorResponse(3)
	SigRequired      = errorResponse(5)
	Unauthorized     = errorResponse(6)
)

func errorResponse(status byte) []byte {
	return []byte{tagSequence, 3, tagEnumerated, 1, status}
}
