package zbcert

import (
	"context"
	"net/http"
	"time"

	"github.com/zbca/zbca/internal/expiry"
)

// ListItem is one local certificate as `zbcert list` shows it; its JSON
// form is the `--json` output.
type ListItem struct {
	Serial       string     `json:"serial"`
	User         string     `json:"user"`
	Organization string     `json:"organization,omitempty"`
	Issuer       string     `json:"issuer"`
	SHA256       string     `json:"sha256_fingerprint"`
	NotBefore    time.Time  `json:"not_before"`
	NotAfter     time.Time  `json:"not_after"`
	DaysLeft     int        `json:"days_left"`
	Validity     string     `json:"validity"`    // valid, expiring, expired, not_yet_valid
	OCSP         string     `json:"ocsp_status"` // good, revoked, unknown, error
	OCSPError    string     `json:"ocsp_error,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	Reason       string     `json:"revocation_reason,omitempty"`
	Path         string     `json:"path"`
}

// ExpiringDays is when a certificate counts as expiring soon.
const ExpiringDays = 30

// Validity is valid, expiring (within ExpiringDays), expired or
// not_yet_valid at now.
func Validity(e *Entry, now time.Time) string {
	l := e.Leaf()
	switch {
	case now.Before(l.NotBefore):
		return "not_yet_valid"
	case expiry.Expired(l.NotAfter, now):
		return "expired"
	case expiry.DaysLeft(l.NotAfter, now) < ExpiringDays:
		return "expiring"
	}
	return "valid"
}

// List describes the local certificates, asking OCSP about each (unless
// hc is nil).
func (h Home) List(ctx context.Context, hc *http.Client, now time.Time) ([]ListItem, error) {
	entries, err := h.Certs()
	out := []ListItem{}
	for _, e := range entries {
		l := e.Leaf()
		it := ListItem{Serial: e.Serial, User: e.User(), Issuer: l.Issuer.String(), SHA256: Fingerprint(l),
			NotBefore: l.NotBefore.UTC(), NotAfter: l.NotAfter.UTC(), DaysLeft: expiry.DaysLeft(l.NotAfter, now), Validity: Validity(e, now), Path: e.Dir}
		if len(l.Subject.Organization) > 0 {
			it.Organization = l.Subject.Organization[0]
		}
		it.OCSP = "unknown"
		if hc != nil && len(e.Chain) > 1 {
			r, err := OCSPStatus(ctx, hc, l, e.Chain[1])
			if err != nil {
				it.OCSP, it.OCSPError = "error", err.Error()
			} else {
				it.OCSP = OCSPStatusName(r.Status)
				if it.OCSP == "revoked" {
					t := r.RevokedAt.UTC()
					it.RevokedAt, it.Reason = &t, ReasonName(r.RevocationReason)
				}
			}
		}
		out = append(out, it)
	}
	return out, err
}
