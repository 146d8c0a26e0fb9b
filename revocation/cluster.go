package revocation

import (
	"context"
	"errors"

	"github.com/zbca/zbca/internal/zerr"
)

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
