package revocation

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/zbca/zbca/internal/ocspder"
	"github.com/zbca/zbca/store"
)

// statusSync is the responder's proof that its table holds every status
// committed to the store: the store's change counter (ResponderOptions.
// Changes) as it was before the last complete poll.
type statusSync struct {
	mu     sync.Mutex // one synchronous poll at a time
	synced atomic.Uint64
	valid  atomic.Bool
}

// Status returns a certificate's revocation state from memory, for the
// verification API, only when memory is known to be as current as the
// store: when the store's change counter moved since the last poll (any
// commit by any process: a revocation by `zbca cert revoke --offline`, an
// issuance), it polls first, synchronously, so a revocation counts at once
// exactly as a read of the store would. ok is false when it cannot be sure
// (no change counter, as on PostgreSQL; a failed poll) or does not know the
// serial: then the caller reads the store.
func (r *Responder) Status(ctx context.Context, serial string) (store.Revocation, bool) {
	if r.o.Changes == nil || !r.loaded.Load() {
		return store.Revocation{}, false
	}
	g, ok := r.o.Changes()
	if !ok {
		return store.Revocation{}, false
	}
	if !r.fresh.valid.Load() || r.fresh.synced.Load() != g {
		if !r.syncNow(ctx) {
			return store.Revocation{}, false
		}
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
	if !ok {
		return store.Revocation{}, false
	}
	if e.status != ocspder.Revoked {
		return store.Revocation{}, true
	}
	return store.Revocation{Revoked: true, At: e.revokedAt, Reason: int(e.reason)}, true
}

// syncNow polls the store and records the change counter read before it:
// whatever was committed before that read is in the table afterwards.
func (r *Responder) syncNow(ctx context.Context) bool {
	s := &r.fresh
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := r.o.Changes()
	if !ok {
		return false
	}
	if s.valid.Load() && s.synced.Load() == g {
		return true // another caller polled meanwhile
	}
	if !r.poll(ctx) {
		s.valid.Store(false)
		return false
	}
	s.synced.Store(g)
	s.valid.Store(true)
	r.Stats.Syncs.Add(1)
	return true
}
