package revocation

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/zbca/zbca/internal/lifecycle"
	"github.com/zbca/zbca/store"
)

// Stack is a node's status machinery, built in dependency order: the OCSP
// table and the CRL publisher, the feed that keeps both (and verification)
// current, and the revocation service that waits for the feed. serve and
// the tests build it the same way.
type Stack struct {
	OCSP    *Responder
	CRL     *Publisher
	Feed    *Feed
	Service *Service
	store   StackStore
	log     *slog.Logger
}

// StackStore is what the stack reads and writes (store.SQL).
type StackStore interface {
	FeedSource
	CRLStore
	Revoker
	FeedPruner
	CertStatus(ctx context.Context, serial string) (*store.CertStatus, error)
}

// StackOptions configures NewStack. Publisher.Store is Store, and
// OCSP.Lookup its CertStatus unless set; the publisher's issuers and root
// are the responder's unless set.
type StackOptions struct {
	Store     StackStore
	OCSP      ResponderOptions
	Publisher PublisherOptions
	// Notified: the store delivers other nodes' notifications
	// (PostgreSQL).
	Notified bool
	// Poll overrides the feed's safety-net period (tests).
	Poll    time.Duration
	Observe func(Reason)
	Logger  *slog.Logger
}

// NewStack builds the stack; Load it, then Start it.
func NewStack(o StackOptions) (*Stack, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("revocation: the stack needs a store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OCSP.Lookup == nil {
		o.OCSP.Lookup = o.Store.CertStatus
	}
	if o.OCSP.Logger == nil {
		o.OCSP.Logger = o.Logger
	}
	resp, err := NewResponder(o.OCSP)
	if err != nil {
		return nil, err
	}
	o.Publisher.Store = o.Store
	if len(o.Publisher.Issuers) == 0 {
		o.Publisher.Issuers, o.Publisher.Root = o.OCSP.Issuers, o.OCSP.Root
	}
	if o.Publisher.Logger == nil {
		o.Publisher.Logger = o.Logger
	}
	pub, err := NewPublisher(o.Publisher)
	if err != nil {
		return nil, err
	}
	feed, err := NewFeed(FeedOptions{Source: o.Store, OCSP: resp, CRL: pub, Notified: o.Notified, Poll: o.Poll, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	svc := &Service{Store: o.Store, Feed: feed, Logger: o.Logger, Observe: o.Observe}
	return &Stack{OCSP: resp, CRL: pub, Feed: feed, Service: svc, store: o.Store, log: o.Logger}, nil
}

// Load reads the CRLs (publishing what offline revocations made due) and
// every status into the OCSP table, side by side: start-up is the longer
// of the two, not their sum.
func (s *Stack) Load(ctx context.Context) error {
	crlErr := make(chan error, 1)
	go func() { crlErr <- s.CRL.Load(ctx) }()
	if err := s.Feed.Load(ctx); err != nil {
		<-crlErr
		return err
	}
	if err := <-crlErr; err != nil {
		return fmt.Errorf("loading CRLs: %w", err)
	}
	return nil
}

// Start runs the stack's tasks in g: the CRL publisher, the OCSP refresh,
// the feed (started last, stopped first) and its pruner.
func (s *Stack) Start(g *lifecycle.Group) {
	g.Go("crl-publisher", s.CRL.Run)
	g.Go("ocsp-refresh", s.OCSP.Run)
	g.Go("status-feed", s.Feed.Run)
	g.Go("status-feed-prune", func(ctx context.Context) { RunFeedPruner(ctx, s.store, time.Hour, s.log) })
}
