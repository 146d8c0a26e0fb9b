package revocation

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/crlder"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// CRLStore is what the publisher needs from persistence.
type CRLStore interface {
	store.CRLStore
	store.PublisherLock
	// CountRevoked returns how many of issuer's certificates are revoked.
	CountRevoked(ctx context.Context, issuer string) (int, error)
}

// PublisherOptions configures NewPublisher.
type PublisherOptions struct {
	Store CRLStore
	// Issuers are the issuing CAs (ca.Authority.IssuingCAs); Root signs
	// the root CRL (revoked issuing CAs).
	Issuers []ca.CRLIssuer
	Root    ca.CRLIssuer
	// Interval between scheduled publications (default 6h).
	Interval time.Duration
	// Delay: a revocation is in the CRL at most this long after it (default
	// 60s); revocations within it share one new CRL.
	Delay time.Duration
	// Validity: nextUpdate = thisUpdate + Validity (default 7 days).
	Validity time.Duration
	// RootValidity of the root CRL (default 365 days), republished when
	// less than a tenth of it is left.
	RootValidity time.Duration
	// Shards, when 2 or more, is ca.Authority.CRLShards: beside each
	// issuing CA's full CRL, Shards shard CRLs are published, "<name>-<k>"
	// listing the revoked certificates whose serial is k modulo Shards,
	// each with a critical issuing distribution point naming its URL
	// under PublicURL, the URL the CA writes into those certificates
	// (see ca.CRLURL). 0 publishes the full CRLs alone.
	Shards int
	// PublicURL is the base of the shard URLs (config public_url); needed
	// with Shards only.
	PublicURL string
	// RevokedIssuing, when set, returns the issuing CAs the root revoked
	// (ca.Authority.RevokedIssuingCAs): the root's CRL signed online lists
	// them.
	RevokedIssuing func() []*x509.Certificate
	// RootMaterial, when the root is offline (Root cannot sign), returns
	// the pre-signed root material whose CRL is served as the root's
	// (ca.Authority.ServedRootMaterial); nil: none.
	RootMaterial func() *ca.RootMaterial
	Logger       *slog.Logger
	Now          func() time.Time
}

// Published is a CRL ready to serve.
type Published struct {
	Name       string
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	BuiltAt    time.Time // store.CRL.BuiltAt
	Entries    int
	// DER is the CRL; the PEM form is written from it when asked for (at
	// a million entries it would be 63 MB more to keep).
	DER  []byte
	ETag string
}

// WritePEM writes the CRL in PEM.
func (p *Published) WritePEM(w io.Writer) error {
	return pem.Encode(w, &pem.Block{Type: "X509 CRL", Bytes: p.DER})
}

// Publisher builds, stores and holds the CRLs. Safe for concurrent use.
//
// CRLs are published in groups under one lock: the root's alone, and each
// issuing CA's full CRL with its shard CRLs, built in one pass over its
// revoked certificates.
type Publisher struct {
	o PublisherOptions
	// names maps every CRL name to its signer and shard; groups lists the
	// names of each signer's group, its full CRL first. Both are fixed by
	// NewPublisher.
	names   map[string]crlRef
	groups  map[string][]string
	mu      sync.RWMutex
	current map[string]*Published
	buildMu sync.Mutex
	trigger chan struct{}
	changed chan struct{}
}

// NewPublisher checks its options; call Load, then Run.
func NewPublisher(o PublisherOptions) (*Publisher, error) {
	if o.Store == nil || len(o.Issuers) == 0 || (!o.Root.CanSign() && o.RootMaterial == nil) {
		return nil, errors.New("revocation: publisher needs a store, issuers, and the root or its pre-signed material")
	}
	if o.Interval <= 0 {
		o.Interval = 6 * time.Hour
	}
	if o.Delay <= 0 {
		o.Delay = 60 * time.Second
	}
	if o.Validity <= 0 {
		o.Validity = 7 * 24 * time.Hour
	}
	if o.RootValidity <= 0 {
		o.RootValidity = 365 * 24 * time.Hour
	}
	if o.Validity <= o.Interval {
		return nil, fmt.Errorf("revocation: CRL validity %s must exceed the publication interval %s", o.Validity, o.Interval)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Publisher{o: o, current: map[string]*Published{}, trigger: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
	if err := p.index(); err != nil {
		return nil, err
	}
	return p, nil
}

// Get returns the latest CRL of name ("issuing-1", "root", a shard
// "issuing-1-3"), or nil.
func (p *Publisher) Get(name string) *Published {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.current[name]
}

// Load serves the CRLs stored by an earlier run at once, and publishes the
// ones that are missing or due.
func (p *Publisher) Load(ctx context.Context) error {
	if err := p.syncAll(ctx); err != nil {
		return err
	}
	// Revocations made while no server ran (zbca cert revoke --offline, or
	// the CLI without a server) are not in the stored CRL: publish now.
	// The shards are saved before their full CRL, so a publication cut
	// short shows here too.
	for _, is := range p.o.Issuers {
		stale := func(g []*Published) (bool, error) {
			if g[0] == nil {
				return false, nil // missing: publishDue
			}
			n, err := p.o.Store.CountRevoked(ctx, is.ID)
			if err != nil || n != g[0].Entries {
				return err == nil, err
			}
			sum := 0
			for _, s := range g[1:] {
				if s == nil {
					return false, nil // missing: publishDue
				}
				sum += s.Entries
			}
			return len(g) > 1 && sum != n, nil
		}
		if _, err := p.publishIf(ctx, is.Name, stale); err != nil {
			return err
		}
	}
	return p.publishDue(ctx)
}

// Names are the CRLs this publisher keeps, shards aside: the root's and
// the issuing CAs' full CRLs. Shards lists each one's shards.
func (p *Publisher) Names() []string {
	var names []string
	for _, is := range p.all() {
		names = append(names, is.Name)
	}
	return names
}

func (p *Publisher) all() []ca.CRLIssuer { return append([]ca.CRLIssuer{p.o.Root}, p.o.Issuers...) }

// publishDue publishes every CRL that is missing or older than its
// schedule.
func (p *Publisher) publishDue(ctx context.Context) error {
	var errs []error
	for _, is := range p.all() {
		if is.Name == p.o.Root.Name && !is.CanSign() {
			p.serveRootMaterial()
			continue
		}
		due := func(g []*Published) (bool, error) {
			now := p.o.Now()
			for _, cur := range g {
				switch {
				case cur == nil:
					return true, nil
				case is.Name == p.o.Root.Name:
					if cur.NextUpdate.Sub(now) < p.o.RootValidity/10 {
						return true, nil
					}
				case now.Sub(cur.ThisUpdate) >= p.o.Interval || cur.NextUpdate.Sub(now) < p.o.Validity-p.o.Interval:
					return true, nil
				}
			}
			return false, nil
		}
		// Checked first without the lock, the common case: nothing due.
		if d, _ := due(p.group(is.Name)); !d {
			continue
		}
		if _, err := p.publishIf(ctx, is.Name, due); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// publishIf publishes the group of name (its issuer's full CRL and
// shards) if needed says so of the group's latest CRLs (full CRL first,
// nil for a missing one), judged while holding the publisher lock, after
// loading the CRLs another node may have stored meanwhile: of several
// nodes woken by one revocation or one schedule, one publishes and the
// others serve its CRLs. It returns the CRL of name served afterwards.
func (p *Publisher) publishIf(ctx context.Context, name string, needed func([]*Published) (bool, error)) (*Published, error) {
	ref, ok := p.names[name]
	if !ok {
		return nil, zerr.New(zerr.NotFound, "no CRL named %q", name)
	}
	unlock, err := p.o.Store.LockCRLPublisher(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for _, n := range p.groups[ref.is.Name] {
		if err := p.sync(ctx, n); err != nil {
			return nil, fmt.Errorf("reading the stored CRL %s: %w", n, err)
		}
	}
	if ok, err := needed(p.group(ref.is.Name)); err != nil || !ok {
		return p.Get(name), err
	}
	if err := p.publish(ctx, ref.is); err != nil {
		return nil, err
	}
	return p.Get(name), nil
}

// Trigger asks for new issuing-CA CRLs within the configured delay (after
// a revocation). It never blocks.
func (p *Publisher) Trigger() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Run publishes on schedule and after triggers until ctx ends.
func (p *Publisher) Run(ctx context.Context) {
	// Check often; publishDue decides what is due.
	tick := time.NewTicker(min(p.o.Interval/4, time.Minute))
	defer tick.Stop()
	retryFirst := min(time.Second, p.o.Delay/4)
	retry := retryFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			// Another node's CRLs first (notifications can be missed),
			// then what is due.
			if err := p.syncAll(ctx); err != nil && ctx.Err() == nil {
				p.o.Logger.Warn("reading stored CRLs", "err", err)
			}
			if err := p.publishDue(ctx); err != nil && ctx.Err() == nil {
				p.o.Logger.Error("publishing CRLs", "err", err)
			}
		case <-p.changed:
			if err := p.syncAll(ctx); err != nil && ctx.Err() == nil {
				p.o.Logger.Warn("reading stored CRLs", "err", err)
			}
		case <-p.trigger:
			// A CRL built from this time on holds the revocations that
			// triggered it (committed before Trigger): of the nodes
			// woken by one revocation, the first to take the lock
			// publishes and the others find its CRL new enough.
			since := p.o.Now()
			// Gather the revocations of a short while into one CRL, well
			// inside the promised delay.
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(p.o.Delay/4, 5*time.Second)):
			}
			older := func(g []*Published) (bool, error) {
				for _, cur := range g {
					if cur == nil || cur.BuiltAt.Before(since) {
						return true, nil
					}
				}
				return false, nil
			}
			failed := false
			for _, is := range p.o.Issuers {
				if _, err := p.publishIf(ctx, is.Name, older); err != nil && ctx.Err() == nil {
					p.o.Logger.Error("publishing CRL after revocation; retrying", "crl", is.Name, "err", err, "in", retry)
					failed = true
				}
			}
			// The revocation is committed and promised in a CRL within
			// Delay: after a failure (the database away) try again,
			// sooner than the schedule, until it works.
			if failed {
				time.AfterFunc(retry, p.Trigger)
				retry = min(2*retry, p.o.Delay/2)
			} else {
				retry = retryFirst
			}
		}
	}
}

// Publish builds, signs, stores and serves a new CRL for name now (after
// any other node's publication in progress), with the rest of its group:
// an issuing CA's full CRL and its shards are published together.
func (p *Publisher) Publish(ctx context.Context, name string) (*Published, error) {
	return p.publishIf(ctx, name, func([]*Published) (bool, error) { return true, nil })
}

// publish builds, signs, stores and serves the CRLs of is's group; the
// publisher lock is held.
func (p *Publisher) publish(ctx context.Context, is ca.CRLIssuer) error {
	p.buildMu.Lock()
	defer p.buildMu.Unlock()
	start := time.Now()
	builtAt := p.o.Now()
	names := p.groups[is.Name]
	numbers := make([]int64, len(names))
	for i, name := range names {
		var err error
		if numbers[i], err = p.o.Store.NextCRLNumber(ctx, name); err != nil {
			return fmt.Errorf("reserving CRL number of %s: %w", name, err)
		}
	}
	now := p.o.Now().UTC().Truncate(time.Second)
	validity := p.o.Validity
	if is.Name == p.o.Root.Name {
		validity = p.o.RootValidity
	}
	params := make([]crlder.Params, len(names))
	for i := range names {
		params[i] = crlder.Params{Number: big.NewInt(numbers[i]), ThisUpdate: now, NextUpdate: now.Add(validity)}
		if i > 0 {
			params[i].IDP = &crlder.IssuingDistributionPoint{URI: ca.CRLURL(p.o.PublicURL, names[i]), OnlyContainsUserCerts: true}
		}
	}
	var ders [][]byte
	var entries []int
	var err error
	if is.Name == p.o.Root.Name {
		// The issuing CAs a ceremony revoked.
		var list []crlder.Entry
		if p.o.RevokedIssuing != nil {
			for _, c := range p.o.RevokedIssuing() {
				list = append(list, crlder.Entry{Serial: c.SerialNumber.Bytes(), RevokedAt: now, Reason: 2})
			}
		}
		slices.SortFunc(list, func(x, y crlder.Entry) int {
			return new(big.Int).SetBytes(x.Serial).Cmp(new(big.Int).SetBytes(y.Serial))
		})
		var der []byte
		der, err = is.BuildCRL(params[0], list)
		ders, entries = [][]byte{der}, []int{len(list)}
	} else {
		ders, entries, err = p.build(ctx, is, params)
	}
	if err != nil {
		return fmt.Errorf("building CRL %s: %w", is.Name, err)
	}
	// The shards first, the full CRL last: after a publication cut short
	// the full CRL is the older one, and Load's count check republishes
	// the group if a revocation is missing from it.
	size := 0
	for i := len(names) - 1; i >= 0; i-- {
		c := &store.CRL{Name: names[i], Number: numbers[i], ThisUpdate: now, NextUpdate: now.Add(validity), BuiltAt: builtAt, DER: ders[i], Entries: entries[i]}
		if err := p.o.Store.SaveCRL(ctx, c); err != nil {
			return fmt.Errorf("storing CRL %s: %w", names[i], err)
		}
		p.set(newPublished(c))
		size += len(ders[i])
	}
	attrs := []any{"crl", is.Name, "number", numbers[0], "entries", entries[0], "bytes", len(ders[0]),
		"next_update", now.Add(validity), "took", time.Since(start).Round(time.Millisecond)}
	if len(names) > 1 {
		attrs = append(attrs, "shards", len(names)-1, "shard_bytes", size-len(ders[0]))
	}
	p.o.Logger.Info("published CRL", attrs...)
	return nil
}

func (p *Publisher) set(pub *Published) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur := p.current[pub.Name]; cur == nil || pub.Number > cur.Number {
		p.current[pub.Name] = pub
	}
}

// serveRootMaterial serves the pre-signed root CRL of the material in
// force (the root is offline), if it is newer than the one served.
func (p *Publisher) serveRootMaterial() {
	m := p.o.RootMaterial()
	if m == nil {
		return
	}
	crl, err := x509.ParseRevocationList(m.CRL)
	if err != nil || crl.Number == nil {
		p.o.Logger.Error("the pre-signed root CRL cannot be read", "err", err)
		return
	}
	if cur := p.Get(p.o.Root.Name); cur != nil && cur.Number >= crl.Number.Int64() {
		return
	}
	p.set(newPublished(&store.CRL{Name: p.o.Root.Name, Number: crl.Number.Int64(), ThisUpdate: crl.ThisUpdate, NextUpdate: crl.NextUpdate,
		BuiltAt: crl.ThisUpdate, DER: m.CRL, Entries: len(crl.RevokedCertificateEntries)}))
	p.o.Logger.Info("serving the pre-signed root CRL (the root is offline)", "number", crl.Number, "next_update", crl.NextUpdate.Format(time.RFC3339))
}

func newPublished(c *store.CRL) *Published {
	sum := sha256.Sum256(c.DER)
	return &Published{
		Name: c.Name, Number: c.Number, ThisUpdate: c.ThisUpdate, NextUpdate: c.NextUpdate, BuiltAt: c.BuiltAt, Entries: c.Entries,
		DER:  c.DER,
		ETag: `"` + fmt.Sprint(c.Number) + "-" + hex.EncodeToString(sum[:8]) + `"`,
	}
}

// serialBytes appends the big-endian bytes of a lowercase hex serial.
func serialBytes(dst []byte, serial string) ([]byte, error) {
	if len(serial) == 0 || len(serial) > 40 {
		return dst, fmt.Errorf("bad serial %q", serial)
	}
	odd := len(serial)%2 == 1
	n := (len(serial) + 1) / 2
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	out := dst[start:]
	src := serial
	if odd {
		src = "0" + serial
	}
	if _, err := hex.Decode(out, []byte(src)); err != nil {
		return dst[:start], fmt.Errorf("bad serial %q", serial)
	}
	return dst, nil
}
