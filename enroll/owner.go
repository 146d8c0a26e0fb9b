package enroll

import (
	"context"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/expiry"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

// The owner's actions shared by the JSON API and the portal: the list of
// an enterprise's certificates and revocation without a certificate.

// CertLister lists certificates (store.CertReader's method).
type CertLister interface {
	ListCertificates(ctx context.Context, f store.CertFilter) ([]store.Certificate, error)
}

// OwnerCertificates returns username's client certificates, newest first
// as the store lists them, with expired ones marked.
func OwnerCertificates(ctx context.Context, st CertLister, username string, now time.Time) ([]CertificateJSON, error) {
	certs, err := st.ListCertificates(ctx, store.CertFilter{Username: username, Profile: store.ProfileClient, Limit: 1000})
	if err != nil {
		return nil, err
	}
	out := []CertificateJSON{}
	for _, r := range certs {
		j := CertificateJSON{Serial: r.Serial, Status: r.Status, FingerprintSHA256: r.FingerprintSHA256, NotBefore: r.NotBefore, NotAfter: r.NotAfter,
			DaysLeft: expiry.DaysLeft(r.NotAfter, now)}
		if r.Status == store.CertActive && expiry.Expired(r.NotAfter, now) {
			j.Status = "expired"
		}
		if r.Status == store.CertRevoked {
			t := r.RevokedAt
			j.RevokedAt, j.RevocationReason = &t, revocation.Reason(r.RevocationReason).String()
		}
		out = append(out, j)
	}
	return out, nil
}

// ParseSubscriberReason parses a reason an enterprise may choose for its
// own certificate; "" is unspecified.
func ParseSubscriberReason(s string) (revocation.Reason, error) {
	reason := revocation.Unspecified
	if s != "" {
		var err error
		if reason, err = revocation.ParseReason(s); err != nil {
			return 0, err
		}
	}
	if !reason.SubscriberMay() {
		return 0, zerr.New(zerr.BadRequest, "reason %s may not be chosen by an enterprise (unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation)", reason)
	}
	return reason, nil
}

// RevokeOwned revokes serial, or every active certificate for "all", among
// list (username's certificates). A serial not in list is zerr.NotFound,
// whether it exists or not; one already revoked is zerr.Conflict (skipped
// silently for "all"). It returns the serials revoked.
func RevokeOwned(ctx context.Context, rev *revocation.Service, list []CertificateJSON, username, serial string, reason revocation.Reason) ([]string, error) {
	var targets []string
	if serial == "all" {
		for _, j := range list {
			if j.Status == store.CertActive {
				targets = append(targets, j.Serial)
			}
		}
	} else {
		s, err := ca.NormalizeSerial(serial)
		if err != nil {
			return nil, err
		}
		owned := false
		for _, j := range list {
			owned = owned || j.Serial == s
		}
		if !owned {
			// Same answer for "not yours" and "does not exist".
			return nil, zerr.New(zerr.NotFound, "no certificate %s for this enterprise", s)
		}
		targets = []string{s}
	}
	revoked := []string{}
	for _, s := range targets {
		if _, err := rev.Revoke(ctx, s, reason, "enterprise:"+username, revocation.BySubscriber); err != nil {
			if zerr.KindOf(err) == zerr.Conflict && serial != "all" {
				return nil, zerr.New(zerr.Conflict, "certificate %s is already revoked", s)
			}
			if zerr.KindOf(err) != zerr.Conflict {
				return revoked, err
			}
			continue
		}
		revoked = append(revoked, s)
	}
	return revoked, nil
}
