package zbcert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPStatus asks the responder named in leaf (AIA) about it (RFC 6960,
// POST with a SHA-1 CertID, the form every responder knows). The answer's
// signature is checked against issuer.
func OCSPStatus(ctx context.Context, hc *http.Client, leaf, issuer *x509.Certificate) (*ocsp.Response, error) {
	if len(leaf.OCSPServer) == 0 {
		return nil, errors.New("the certificate names no OCSP responder")
	}
	req, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, leaf.OCSPServer[0], bytes.NewReader(req))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("OCSP %s: %s", leaf.OCSPServer[0], resp.Status)
	}
	return ocsp.ParseResponseForCert(body, leaf, issuer)
}

// OCSPStatusName is good, revoked or unknown.
func OCSPStatusName(s int) string {
	switch s {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	}
	return "unknown"
}

// ReasonName names an RFC 5280 CRLReason code.
func ReasonName(r int) string {
	names := []string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
		"cessationOfOperation", "certificateHold", "", "removeFromCRL", "privilegeWithdrawn", "aACompromise"}
	if r >= 0 && r < len(names) && names[r] != "" {
		return names[r]
	}
	return fmt.Sprintf("reason %d", r)
}
