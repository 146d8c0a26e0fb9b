// Package enroll is the enterprise side of zbca: authentication by
// username and password, the one enrollment service behind every issuance
// path (operator, admin API, ACME, later the portal and zbcert), and owner
// actions without a certificate.
package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

// PolicyStore is what the issuance policy reads.
type PolicyStore interface {
	GetEnterprise(ctx context.Context, username string) (*store.Enterprise, error)
}

// Policy is the issuance policy of every path.
type Policy struct {
	// MaxActive certificates per enterprise (default 1): a new one revokes
	// the older ones beyond it as superseded, in the same transaction.
	MaxActive int
	// MaxPerDay issuances per enterprise in any 24 hours (default 10).
	MaxPerDay int
}

// Service issues and revokes for enterprises. Safe for concurrent use.
type Service struct {
	CA    *ca.Authority
	Store PolicyStore
	// Revoke completes each issuance (Service.Issued: the node's feed
	// applies it and what it superseded before the caller gets it).
	Revoke *revocation.Service
	Policy Policy
	Logger *slog.Logger
	Now    func() time.Time
}

// Request asks for a certificate for an enterprise.
type Request struct {
	Username string
	// CSR from ca.ParseCSR or ca.DecodeCSR: the CA checks its signature
	// and key before anything is written.
	CSR *x509.CertificateRequest
	// Actor and Channel go into the audit log: "enterprise:acme" / "acme".
	Actor string
	// ACMEOrder is the ACME order this issuance finalizes, if any: it
	// moves with the serial (store.ACMEOrderGuard), and an order that is
	// not ready refuses the issuance with store.ErrOrderNotReady before
	// anything is signed.
	ACMEOrder string
	// CredentialEpoch, when set, is the enterprise's credential epoch under
	// which the requester proved the password: the issuance is refused
	// (store.ErrAccessEnded) unless it is still current when the serial is
	// journaled. Every path of an enterprise sets it; the operator's don't.
	CredentialEpoch *int64
}

// Issue applies the policy and issues. Refusals are typed: zerr.BadCSR for
// a refused key, zerr.Policy for a limit, zerr.NotFound/Disabled for the
// enterprise. Nothing is changed on refusal.
func (s *Service) Issue(ctx context.Context, r Request) (*ca.Issued, error) {
	if r.CSR == nil {
		return nil, zerr.New(zerr.BadCSR, "no CSR")
	}
	if err := ca.CheckKey(r.CSR.PublicKey); err != nil {
		return nil, err
	}
	e, err := s.Store.GetEnterprise(ctx, r.Username)
	if errors.Is(err, zerr.NotFound) {
		return nil, zerr.New(zerr.NotFound, "enterprise %q does not exist", r.Username)
	}
	if err != nil {
		return nil, err
	}
	if e.Status != store.StatusActive {
		return nil, zerr.New(zerr.Disabled, "enterprise %q is disabled", r.Username)
	}
	p := s.Policy
	if p.MaxActive <= 0 {
		p.MaxActive = 1
	}
	if p.MaxPerDay <= 0 {
		p.MaxPerDay = 10
	}
	iss, err := s.CA.Issue(ctx, ca.IssueRequest{CSR: r.CSR, Username: r.Username, Actor: r.Actor, KeepActive: p.MaxActive,
		Enterprise: e, Guards: guards(r, p)})
	if err != nil {
		return nil, err
	}
	// The certificate is stored; before the caller gets it, the node's
	// feed applies it and what it superseded (OCSP answers signed).
	s.Revoke.Issued(ctx, iss.Record, iss.Superseded)
	return iss, nil
}

// guards is the part of the policy that must hold atomically with the
// journal: the store checks it inside the transaction that journals the
// serial, so concurrent requests cannot both pass, and a refusal writes
// nothing. In this order: the ACME order, if any, moves to processing
// (its account still valid); the requester's credential epoch, if set, is
// still the enterprise's; the key is no other enterprise's; the daily
// limit.
func guards(r Request, p Policy) []store.Guard {
	g := make([]store.Guard, 0, 4)
	if r.ACMEOrder != "" {
		g = append(g, store.ACMEOrderGuard(r.ACMEOrder))
	}
	if r.CredentialEpoch != nil {
		g = append(g, store.EpochGuard(*r.CredentialEpoch))
	}
	return append(g, store.KeyOwnerGuard(), store.DailyLimitGuard(p.MaxPerDay))
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
