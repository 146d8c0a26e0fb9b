package revocation

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// Revoker is the store side of a revocation.
type Revoker interface {
	store.Revoker
}

// StatusUpdater re-signs the OCSP answer of a certificate whose status
// changed (the Responder).
type StatusUpdater interface {
	Update(ctx context.Context, rec *store.Certificate) error
}

// Service revokes certificates: one transaction in the store, then the OCSP
// response re-signed before the caller hears back, then a new CRL within
// the publisher's delay.
type Service struct {
	Store  Revoker
	OCSP   StatusUpdater // may be nil (a CLI process without a responder)
	CRL    interface{ Trigger() }
	Logger *slog.Logger
	// Observe, when set, counts revocations made here (metrics), those
	// of Revoke and those reported through Counted.
	Observe func(reason Reason)
}

// Counted reports revocations this node made outside Revoke (superseded
// certificates, revoked in their successor's issuance transaction).
func (s *Service) Counted(reason Reason, n int) {
	if s == nil || s.Observe == nil {
		return
	}
	for range n {
		s.Observe(reason)
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
	log := s.logger()
	if s.OCSP != nil {
		// The revocation is committed; the OCSP answer must follow before we
		// answer, even if the caller has gone.
		if err := s.OCSP.Update(context.WithoutCancel(ctx), rec); err != nil {
			log.Error("re-signing OCSP response after revocation", "serial", serial, "err", err)
			return rec, errors.Join(zerr.Wrap(zerr.Internal, err, "certificate %s is revoked, but its OCSP response could not be re-signed yet", serial))
		}
	}
	if s.CRL != nil {
		s.CRL.Trigger()
	}
	s.Counted(reason, 1)
	log.Info("revoked certificate", "serial", serial, "reason", reason.String(), "actor", actor, "took", time.Since(start).Round(time.Microsecond))
	return rec, nil
}

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
