package revocation

import (
	"context"
	"errors"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// Several nodes on one database: the store's Watcher reports what other
// nodes changed, and Follow hands each change to the responder and the
// publisher of this node.

// Follow applies the changes other nodes make until ctx ends: a revoked
// serial is re-read and re-signed at once, a CRL another node published
// is served, and after a (re)connection everything changed meanwhile is
// read. It returns at once on a store without notifications (SQLite),
// where the responder's 1-s poll and the publisher's schedule suffice.
func Follow(ctx context.Context, w store.Watcher, r *Responder, p *Publisher) {
	w.Listen(ctx, func(c store.Change) {
		switch c.Kind {
		case store.ChangeCert:
			r.Changed(ctx, c.Key)
		case store.ChangeCRL:
			p.Changed()
		case store.ChangeResync:
			r.Poke()
			p.Changed()
		}
	})
}

// Changed re-reads one certificate's status (a revocation another node
// made) and, if it differs from the one held, signs its new response.
func (r *Responder) Changed(ctx context.Context, serial string) {
	if r.o.Lookup == nil {
		r.Poke()
		return
	}
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	c, err := r.o.Lookup(lctx, serial)
	cancel()
	if err != nil || c == nil {
		if err != nil && ctx.Err() == nil {
			r.o.Logger.Warn("reading a status another node changed; the poll will retry", "serial", serial, "err", err)
		}
		r.Poke()
		return
	}
	var buf []byte
	if !r.apply(*c, &buf) {
		return
	}
	k, ok := keyOf(buf)
	if !ok {
		return
	}
	if e, ok := r.get(k); ok && e.sigLen == 0 {
		if _, err := r.signKeep(k, e); err != nil {
			r.o.Logger.Error("signing OCSP response", "serial", serial, "err", err)
		}
	}
	r.o.Logger.Info("OCSP applied a change made by another node", "serial", serial, "status", c.Status)
	if c.Status == store.CertRevoked && r.o.OnChange != nil {
		r.o.OnChange()
	}
}

// Poke makes Run read the changes since its last poll now rather than at
// the next tick. It never blocks.
func (r *Responder) Poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Changed tells the publisher that a CRL may have been stored by another
// node: Run loads it. It never blocks.
func (p *Publisher) Changed() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// syncAll serves the stored CRLs, shards included, that are newer than
// the ones held.
func (p *Publisher) syncAll(ctx context.Context) error {
	var errs []error
	for _, name := range p.allNames() {
		if err := p.sync(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sync serves the stored CRL of name if it is newer than the one held (it
// was published by another node, or by this one before a restart).
func (p *Publisher) sync(ctx context.Context, name string) error {
	n, _, err := p.o.Store.CRLHead(ctx, name)
	if errors.Is(err, zerr.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur := p.Get(name); cur != nil && cur.Number >= n {
		return nil
	}
	c, err := p.o.Store.LatestCRL(ctx, name)
	if err != nil {
		return err
	}
	p.set(newPublished(c))
	p.o.Logger.Info("serving a newer stored CRL (published by another node or an earlier run)", "crl", name, "number", c.Number, "entries", c.Entries)
	return nil
}
