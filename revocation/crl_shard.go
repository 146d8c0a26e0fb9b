package revocation

import (
	"context"
	"errors"
	"fmt"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/crlder"
	"github.com/zbca/zbca/store"
)

// Partitioned CRLs (PublisherOptions.Shards): each issuing CA's group is
// its full CRL, for auditors and for relying parties that want it all, and
// the shard CRLs that its certificates name as their CRL distribution
// point (ca.CRLShardName, ca.CRLShardOf). A shard carries a critical
// issuing distribution point (RFC 5280 §5.2.5) whose fullName is its own
// URL and onlyContainsUserCerts, so that a relying party does not take it
// for a complete CRL. The group is built in one pass over the revoked
// certificates, numbered per CRL, and stored like any CRL.

// crlRef locates a CRL by name: its signer, and its shard (-1 for a full
// or root CRL).
type crlRef struct {
	is    ca.CRLIssuer
	shard int
}

// index fills p.names and p.groups, and checks the shard options.
func (p *Publisher) index() error {
	n := p.o.Shards
	if n < 0 || n == 1 || n > config.MaxCRLShards {
		return fmt.Errorf("revocation: %d CRL shards: want 0 or 2–%d", n, config.MaxCRLShards)
	}
	if n > 0 && p.o.PublicURL == "" {
		return errors.New("revocation: partitioned CRLs need the public URL of their distribution points")
	}
	p.names, p.groups = map[string]crlRef{}, map[string][]string{}
	add := func(name string, r crlRef) error {
		if _, dup := p.names[name]; dup {
			return fmt.Errorf("revocation: two CRLs named %q", name)
		}
		p.names[name] = r
		p.groups[r.is.Name] = append(p.groups[r.is.Name], name)
		return nil
	}
	if err := add(p.o.Root.Name, crlRef{is: p.o.Root, shard: -1}); err != nil {
		return err
	}
	for _, is := range p.o.Issuers {
		if err := add(is.Name, crlRef{is: is, shard: -1}); err != nil {
			return err
		}
		for k := range n {
			if err := add(ca.CRLShardName(is.Name, k), crlRef{is: is, shard: k}); err != nil {
				return err
			}
		}
	}
	return nil
}

// group returns the CRLs served for signer's group, full CRL first; nil
// for one not published yet.
func (p *Publisher) group(signer string) []*Published {
	names := p.groups[signer]
	out := make([]*Published, len(names))
	p.mu.RLock()
	defer p.mu.RUnlock()
	for i, n := range names {
		out[i] = p.current[n]
	}
	return out
}

// Shards returns the names of the shard CRLs of the issuing CA name
// ("issuing-1-0" …), nil when CRLs are not partitioned.
func (p *Publisher) Shards(name string) []string {
	if g := p.groups[name]; len(g) > 1 {
		return g[1:]
	}
	return nil
}

// allNames lists every CRL of the publisher, shards included.
func (p *Publisher) allNames() []string {
	var out []string
	for _, is := range p.all() {
		out = append(out, p.groups[is.Name]...)
	}
	return out
}

// build encodes and signs the CRLs of an issuing CA's group, params[0]
// the full CRL and params[1+k] shard k, from one pass over its revoked
// certificates. It returns their DER and entry counts.
func (p *Publisher) build(ctx context.Context, is ca.CRLIssuer, params []crlder.Params) ([][]byte, []int, error) {
	// The count (an index-only query) sizes the outputs, so that a
	// million entries are written once, in place.
	count, err := p.o.Store.CountRevoked(ctx, is.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("counting revoked certificates: %w", err)
	}
	shards := len(params) - 1
	bs := make([]*crlder.Builder, len(params))
	for i := range params {
		params[i].EntriesHint = count
		if i > 0 && count > 0 {
			// Random serials spread evenly: a few standard deviations
			// above the mean (a short hint costs one copy, not an error).
			m := count / shards
			params[i].EntriesHint = m + m/8 + 8
		}
		if bs[i], err = is.NewCRLBuilder(params[i]); err != nil {
			return nil, nil, err
		}
	}
	var buf []byte
	err = p.o.Store.ForEachRevoked(ctx, is.ID, func(e store.RevokedEntry) error {
		var serr error
		if buf, serr = serialBytes(buf[:0], e.Serial); serr != nil {
			return serr
		}
		ent := crlder.Entry{Serial: buf, RevokedAt: e.RevokedAt, Reason: e.Reason}
		if err := bs[0].Add(&ent); err != nil {
			return err
		}
		if shards > 0 {
			return bs[1+ca.CRLShardOf(buf, shards)].Add(&ent)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	ders := make([][]byte, len(bs))
	entries := make([]int, len(bs))
	for i, b := range bs {
		entries[i] = b.Len()
		if ders[i], err = b.Finish(); err != nil {
			return nil, nil, err
		}
	}
	return ders, entries, nil
}
