package acme

import (
	"context"
	"time"
)

// Pruner is what the janitor needs besides the ACME store: a lock that
// keeps it to one node at a time on a shared database.
type Pruner interface {
	// TryLockPruner returns ok false when another node prunes now.
	TryLockPruner(ctx context.Context) (unlock func(), ok bool, err error)
}

// How long expired state is kept, and how much one round deletes.
const (
	// An expired order stays readable for a day (a client polling it sees
	// "invalid", not 404).
	orderKeep = 24 * time.Hour
	// An expired EAB key is useless; its issue and use are in the audit
	// log.
	eabKeep    = time.Hour
	pruneBatch = 5000
	// pruneMaxBatches bounds one round: what is left waits for the next.
	pruneMaxBatches = 100
)

// Prune deletes expired orders, EAB keys and used nonces, pruneBatch rows
// per transaction, until none is left or the round's bound is reached. It
// returns how many rows it deleted. On a shared database only one node
// prunes at a time; the others skip the round (0, nil).
func (s *Server) Prune(ctx context.Context, locks Pruner) (int64, error) {
	unlock, ok, err := locks.TryLockPruner(ctx)
	if err != nil || !ok {
		return 0, err
	}
	defer unlock()
	now := s.o.Now()
	var total int64
	for _, step := range []struct {
		what  string
		prune func(context.Context, time.Time, int) (int64, error)
		until time.Time
	}{
		{"orders", s.o.Store.PruneACMEOrders, now.Add(-orderKeep)},
		{"EAB keys", s.o.Store.PruneEABKeys, now.Add(-eabKeep)},
		{"used nonces", s.o.Store.PruneNonces, now.Add(-nonceSkew)},
	} {
		for range pruneMaxBatches {
			n, err := step.prune(ctx, step.until, pruneBatch)
			total += n
			if err != nil {
				return total, err
			}
			if n < pruneBatch {
				break
			}
		}
	}
	return total, nil
}

// RunJanitor prunes every interval until ctx ends; failures are logged
// and retried at the next round.
func (s *Server) RunJanitor(ctx context.Context, locks Pruner, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.Prune(ctx, locks)
		switch {
		case err != nil && ctx.Err() == nil:
			s.o.Logger.Warn("pruning expired ACME orders, EAB keys and nonces", "err", err, "deleted", n)
		case n > 0:
			s.o.Logger.Debug("pruned expired ACME state", "deleted", n)
		}
	}
}
