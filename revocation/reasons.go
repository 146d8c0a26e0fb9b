// Package revocation revokes certificates and publishes their status: the
// CRL builder and publisher and the OCSP responder. Its core knows nothing
// of HTTP (http.go holds the handlers) and signs through the crypto.Signer
// interfaces that package ca hands out.
package revocation

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/zbca/zbca/internal/zerr"
)

// Reason is a CRLReason (RFC 5280 §5.3.1).
type Reason int

// The reason codes. 7 is not used.
const (
	Unspecified          Reason = 0
	KeyCompromise        Reason = 1
	CACompromise         Reason = 2
	AffiliationChanged   Reason = 3
	Superseded           Reason = 4
	CessationOfOperation Reason = 5
	CertificateHold      Reason = 6
	RemoveFromCRL        Reason = 8
	PrivilegeWithdrawn   Reason = 9
	AACompromise         Reason = 10
)

var reasonNames = map[Reason]string{
	Unspecified: "unspecified", KeyCompromise: "keyCompromise", CACompromise: "cACompromise",
	AffiliationChanged: "affiliationChanged", Superseded: "superseded", CessationOfOperation: "cessationOfOperation",
	CertificateHold: "certificateHold", RemoveFromCRL: "removeFromCRL", PrivilegeWithdrawn: "privilegeWithdrawn",
	AACompromise: "aACompromise",
}

// String returns the RFC 5280 name.
func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Valid reports whether r is a defined reason code.
func (r Reason) Valid() bool { _, ok := reasonNames[r]; return ok }

// SubscriberMay reports whether an enterprise may choose r for its own
// certificate (the RFC 8555 / CA/Browser Forum subscriber set).
func (r Reason) SubscriberMay() bool {
	switch r {
	case Unspecified, KeyCompromise, AffiliationChanged, Superseded, CessationOfOperation:
		return true
	}
	return false
}

// OperatorMay reports whether an operator may choose r: revocation is final
// in zbca, so certificateHold and removeFromCRL are never used, nor
// aACompromise (no attribute authorities).
func (r Reason) OperatorMay() bool {
	return r.Valid() && r != CertificateHold && r != RemoveFromCRL && r != AACompromise
}

// ParseReason accepts a reason's RFC name in any case, with or without
// dashes or underscores ("keyCompromise", "key-compromise", "KEY_COMPROMISE")
// or its number.
func ParseReason(s string) (Reason, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if r := Reason(n); r.Valid() {
			return r, nil
		}
		return 0, zerr.New(zerr.BadRequest, "revocation reason %d is not a CRLReason (0–6, 8–10)", n)
	}
	norm := strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(s))
	for r, name := range reasonNames {
		if strings.ToLower(name) == norm {
			return r, nil
		}
	}
	names := make([]string, 0, len(reasonNames))
	for r := Unspecified; r <= AACompromise; r++ {
		if n, ok := reasonNames[r]; ok {
			names = append(names, n)
		}
	}
	return 0, zerr.New(zerr.BadRequest, "unknown revocation reason %q (one of %s)", s, strings.Join(names, ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Reason) UnmarshalText(b []byte) error {
	v, err := ParseReason(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

var _ fmt.Stringer = Reason(0)
