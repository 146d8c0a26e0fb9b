package revocation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math/big"
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
type Publisher struct {
	o       PublisherOptions
	mu      sync.RWMutex
	current map[string]*Published
	buildMu sync.Mutex
	trigger chan struct{}
	changed chan struct{}
}

// NewPublisher checks its options; call Load, then Run.
func NewPublisher(o PublisherOptions) (*Publisher, error) {
	if o.Store == nil || len(o.Issuers) == 0 || o.Root.Signer == nil {
		return nil, errors.New("revocation: publisher needs a store, issuers and the root")
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
	return &Publisher{o: o, current: map[string]*Published{}, trigger: make(chan struct{}, 1), changed: make(chan struct{}, 1)}, nil
}

// Get returns the latest CRL of name ("issuing-1", "root"), or nil.
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
	for _, is := range p.o.Issuers {
		stale := func(cur *Published) (bool, error) {
			if cur == nil {
				return false, nil
			}
			n, err := p.o.Store.CountRevoked(ctx, is.ID)
			return n != cur.Entries, err
		}
		if _, err := p.publishIf(ctx, is.Name, stale); err != nil {
			return err
		}
	}
	return p.publishDue(ctx)
}

// Names are the CRLs this publisher keeps: the issuing CAs' and the
// root's.
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
		due := func(cur *Published) (bool, error) {
			if cur == nil {
				return true, nil
			}
			now := p.o.Now()
			if is.Name == p.o.Root.Name {
				return cur.NextUpdate.Sub(now) < p.o.RootValidity/10, nil
			}
			return now.Sub(cur.ThisUpdate) >= p.o.Interval || cur.NextUpdate.Sub(now) < p.o.Validity-p.o.Interval, nil
		}
		// Checked first without the lock, the common case: nothing due.
		if d, _ := due(p.Get(is.Name)); !d {
			continue
		}
		if _, err := p.publishIf(ctx, is.Name, due); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// publishIf publishes name if needed says so of the latest CRL, judged
// while holding the publisher lock, after loading the CRL another node
// may have stored meanwhile: of several nodes woken by one revocation or
// one schedule, one publishes and the others serve its CRL. It returns the
// CRL served afterwards.
func (p *Publisher) publishIf(ctx context.Context, name string, needed func(*Published) (bool, error)) (*Published, error) {
	unlock, err := p.o.Store.LockCRLPublisher(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := p.sync(ctx, name); err != nil {
		return nil, fmt.Errorf("reading the stored CRL %s: %w", name, err)
	}
	cur := p.Get(name)
	if ok, err := needed(cur); err != nil || !ok {
		return cur, err
	}
	return p.publish(ctx, name)
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
			older := func(cur *Published) (bool, error) { return cur == nil || cur.BuiltAt.Before(since), nil }
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
// any other node's publication in progress).
func (p *Publisher) Publish(ctx context.Context, name string) (*Published, error) {
	return p.publishIf(ctx, name, func(*Published) (bool, error) { return true, nil })
}

// publish is Publish with the publisher lock held.
func (p *Publisher) publish(ctx context.Context, name string) (*Published, error) {
	var is *ca.CRLIssuer
	for _, c := range p.all() {
		if c.Name == name {
			is = &c
			break
		}
	}
	if is == nil {
		return nil, zerr.New(zerr.NotFound, "no CRL named %q", name)
	}
	p.buildMu.Lock()
	defer p.buildMu.Unlock()
	start := time.Now()
	builtAt := p.o.Now()
	number, err := p.o.Store.NextCRLNumber(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reserving CRL number: %w", err)
	}
	now := p.o.Now().UTC().Truncate(time.Second)
	validity := p.o.Validity
	if name == p.o.Root.Name {
		validity = p.o.RootValidity
	}
	params := crlder.Params{Issuer: is.Cert, Signer: is.Signer, Number: big.NewInt(number), ThisUpdate: now, NextUpdate: now.Add(validity)}
	var der []byte
	entries := 0
	if name == p.o.Root.Name {
		// Revoked issuing CAs would be listed here; zbca has none yet.
		der, err = crlder.BuildEmpty(params)
	} else {
		// The count (an index-only query) sizes the output, so that a
		// million entries are written once, in place.
		if params.EntriesHint, err = p.o.Store.CountRevoked(ctx, is.ID); err != nil {
			return nil, fmt.Errorf("counting revoked certificates: %w", err)
		}
		var scanErr error
		seq := func(yield func(crlder.Entry) bool) {
			var buf []byte
			scanErr = p.o.Store.ForEachRevoked(ctx, is.ID, func(e store.RevokedEntry) error {
				var serr error
				if buf, serr = serialBytes(buf[:0], e.Serial); serr != nil {
					return serr
				}
				entries++
				if !yield(crlder.Entry{Serial: buf, RevokedAt: e.RevokedAt, Reason: e.Reason}) {
					return errStop
				}
				return nil
			})
		}
		next, stop := iter.Pull(seq)
		der, err = crlder.Build(params, next)
		stop()
		if err == nil && scanErr != nil && !errors.Is(scanErr, errStop) {
			err = scanErr
		}
	}
	if err != nil {
		return nil, fmt.Errorf("building CRL %s: %w", name, err)
	}
	c := &store.CRL{Name: name, Number: number, ThisUpdate: now, NextUpdate: now.Add(validity), BuiltAt: builtAt, DER: der, Entries: entries}
	if err := p.o.Store.SaveCRL(ctx, c); err != nil {
		return nil, fmt.Errorf("storing CRL %s: %w", name, err)
	}
	pub := newPublished(c)
	p.set(pub)
	p.o.Logger.Info("published CRL", "crl", name, "number", number, "entries", entries, "bytes", len(der),
		"next_update", c.NextUpdate, "took", time.Since(start).Round(time.Millisecond))
	return pub, nil
}

var errStop = errors.New("stop")

func (p *Publisher) set(pub *Published) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur := p.current[pub.Name]; cur == nil || pub.Number > cur.Number {
		p.current[pub.Name] = pub
	}
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
