package revocation

import (
	"github.com/zbca/zbca/internal/ocspder"
	"github.com/zbca/zbca/store"
)

// status returns a certificate's revocation state as the table holds it;
// ok is false when the serial is not in the table (unknown, not applied
// yet, or forgotten past its grace) or past its grace. Whether the table
// is current is the Feed's to say (Feed.Status).
func (r *Responder) status(serial string) (store.Revocation, bool) {
	if !r.loaded.Load() {
		return store.Revocation{}, false
	}
	var buf [ocspder.MaxSerialLen]byte
	b, err := serialBytes(buf[:0], serial)
	if err != nil {
		return store.Revocation{}, false
	}
	k, ok := keyOf(b)
	if !ok {
		return store.Revocation{}, false
	}
	e, ok := r.get(k)
	if !ok || r.pastGrace(&e, r.o.Now().Unix()) {
		return store.Revocation{}, false
	}
	if e.status != ocspder.Revoked {
		return store.Revocation{}, true
	}
	return store.Revocation{Revoked: true, At: e.revokedAt, Reason: int(e.reason)}, true
}
