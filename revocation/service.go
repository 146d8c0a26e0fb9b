package revocation

import (
	"context"
	"log/slog"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// Revoker is the store side of a revocation.
type Revoker interface {
	store.Revoker
}

// Applier is the node's status feed (Feed): Wait returns once a change is
// applied to the OCSP table, the CRL publisher and verification.
type Applier interface {
	Wait(ctx context.Context, seq int64) error
}

// Service is the one way a certificate is revoked on a node: the store's
// one revocation (a transaction of its own, or, for superseding, inside
// the successor's issuance transaction), then the node's feed applies it
// — the OCSP answer re-signed, verification answering "revoked", the CRL
// publisher triggered — before the caller hears back.
type Service struct {
	Store  Revoker
	Feed   Applier // nil in a CLI process without a responder
	Logger *slog.Logger
	// Observe, when set, counts revocations made here (metrics), those
	// of Revoke and those of Superseded.
	Observe func(reason Reason)
}

// Issued completes an issuance (ca.Authority.Issue) before it is
// acknowledged: it returns once the feed applied the new certificate (its
// OCSP answer signed, see Feed.Wait) and the revocations the issuance made in its own
// transaction (the enterprise's older certificates beyond the ones it
// keeps, store.SQL.StoreCertificateSuperseding), which it logs and counts
// like Revoke's.
func (s *Service) Issued(ctx context.Context, rec *store.Certificate, superseded []*store.Certificate) {
	if s == nil {
		return
	}
	last := rec.FeedSeq
	for _, old := range superseded {
		last = max(last, old.FeedSeq)
		s.logger().Info("revoked certificate", "serial", old.Serial, "reason", Superseded.String(), "superseded_by", rec.Serial, "actor", old.RevokedBy)
		if s.Observe != nil {
			s.Observe(Superseded)
		}
	}
	s.applied(ctx, last, rec.Serial)
}

// applied waits for the feed to apply change seq (of serial). The change
// is committed whatever happens here: when the feed does not apply it in
// time (a database that stopped answering the feed's reads, a node
// shutting down), the caller is still told it succeeded, and the log says
// what lags. Verification does not answer from memory meanwhile (the feed
// is not trusted: it reads the database), and the OCSP answer follows when
// the feed reads again.
func (s *Service) applied(ctx context.Context, seq int64, serial string) {
	if s.Feed == nil {
		return
	}
	if err := s.Feed.Wait(context.WithoutCancel(ctx), seq); err != nil {
		s.logger().Error("status change stored, but this node's OCSP answer does not show it yet (verification reads the database meanwhile); it follows when the status feed reads again",
			"serial", serial, "err", err)
	}
}

// Who is asking: operators may use more reasons than subscribers.
const (
	ByOperator   = false
	BySubscriber = true
)

// Revoke revokes serial (canonical hex) for reason, on behalf of actor.
// Already revoked is zerr.Conflict; an unknown serial zerr.NotFound; a
// reason the caller may not use zerr.BadRequest. Nothing changes on error.
func (s *Service) Revoke(ctx context.Context, serial string, reason Reason, actor string, subscriber bool) (*store.Certificate, error) {
	switch {
	case !reason.Valid():
		return nil, zerr.New(zerr.BadRequest, "revocation reason %d is not a CRLReason", int(reason))
	case subscriber && !reason.SubscriberMay():
		return nil, zerr.New(zerr.BadRequest, "an enterprise may not revoke with reason %s (allowed: unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation)", reason)
	case !subscriber && !reason.OperatorMay():
		return nil, zerr.New(zerr.BadRequest, "reason %s is not used: revocation in zbca is final", reason)
	}
	start := time.Now()
	rec, err := s.Store.Revoke(ctx, store.RevokeRequest{Serial: serial, Reason: int(reason), Actor: actor})
	if err != nil {
		return nil, err
	}
	s.applied(ctx, rec.FeedSeq, serial)
	if s.Observe != nil {
		s.Observe(reason)
	}
	s.logger().Info("revoked certificate", "serial", serial, "reason", reason.String(), "actor", actor, "took", time.Since(start).Round(time.Microsecond))
	return rec, nil
}

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
