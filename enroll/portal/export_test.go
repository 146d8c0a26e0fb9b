package portal

import "crypto"

// CountKeygens makes every server-side key generation call count, until
// the returned function restores the real one.
func CountKeygens(count func()) (restore func()) {
	real := generateKey
	generateKey = func(keytype string) (crypto.Signer, error) {
		count()
		return real(keytype)
	}
	return func() { generateKey = real }
}
