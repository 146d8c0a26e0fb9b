package zbcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/internal/expiry"
)

func dnString(raw []byte) string {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		return fmt.Sprintf("%x", raw)
	}
	var n pkix.Name
	n.FillFromRDNSequence(&seq)
	return n.String()
}

// acceptedBy tells whether the site's CA list names a CA of e's chain (or
// the configured root above it). An empty list accepts any.
func (d *doctor) acceptedBy(e *Entry, names [][]byte) bool {
	if len(names) == 0 {
		return true
	}
	raws := [][]byte{e.Leaf().RawIssuer}
	for _, c := range e.Chain[1:] {
		raws = append(raws, c.RawSubject, c.RawIssuer)
	}
	for _, n := range names {
		for _, r := range raws {
			if bytes.Equal(n, r) {
				return true
			}
		}
	}
	return false
}

// checkCandidates finds the local certificates the site would accept and
// picks the one the rest of the checks examine.
func (d *doctor) checkCandidates() {
	all, err := d.h.Certs()
	if len(all) == 0 {
		detail := d.l.T("accepted.none")
		if err != nil {
			detail += " (" + err.Error() + ")"
		}
		d.add(CheckAccepted, Fail, detail, d.l.T("accepted.none.advice"))
		d.skip(CheckMultiple)
		return
	}
	var names [][]byte
	if d.probe != nil && d.probe.requested != nil {
		names = d.probe.requested.AcceptableCAs
	}
	for _, e := range all {
		if d.acceptedBy(e, names) {
			d.candidates = append(d.candidates, e)
		}
	}
	if len(d.candidates) == 0 {
		var issuers []string
		for _, e := range all {
			issuers = append(issuers, e.Leaf().Issuer.String())
		}
		d.add(CheckAccepted, Fail, d.l.T("accepted.other", caNames(names, d.l), strings.Join(uniq(issuers), "; ")), d.l.T("accepted.other.advice"))
		d.skip(CheckMultiple)
		return
	}
	d.chosen = d.pick()
	d.add(CheckAccepted, OK, d.l.T("accepted.ok", len(d.candidates), describe(d.chosen)), "")
	if len(d.candidates) > 1 {
		var list []string
		for _, e := range d.candidates {
			list = append(list, describe(e))
		}
		d.add(CheckMultiple, Fail, d.l.T("multiple.fail", len(d.candidates), strings.Join(list, "; ")), d.l.T("multiple.advice", describe(d.chosen)))
		return
	}
	d.add(CheckMultiple, OK, d.l.T("multiple.ok"), "")
}

// pick prefers the expected user's certificates, then those valid now,
// then the newest (Certs lists newest first).
func (d *doctor) pick() *Entry {
	best, bestScore := d.candidates[0], -1
	now := d.o.Now()
	for _, e := range d.candidates {
		score := 0
		if d.o.User != "" && e.User() == d.o.User {
			score += 2
		}
		if v := Validity(e, now); v == "valid" || v == "expiring" {
			score++
		}
		if score > bestScore {
			best, bestScore = e, score
		}
	}
	return best
}

func describe(e *Entry) string {
	l := e.Leaf()
	return fmt.Sprintf("CN=%s serial=%s (%s – %s)", l.Subject.CommonName, e.Serial, l.NotBefore.Format(time.DateOnly), l.NotAfter.Format(time.DateOnly))
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// checkChosen examines the certificate the browser would most likely
// offer: validity, revocation, user, chain, root.
func (d *doctor) checkChosen(ctx context.Context) {
	e := d.chosen
	if e == nil {
		d.skip(CheckValidity, CheckRevoked, CheckUser, CheckChain, CheckRoot)
		return
	}
	l, now := e.Leaf(), d.o.Now()
	switch Validity(e, now) {
	case "expired":
		d.add(CheckValidity, Fail, d.l.T("validity.expired", l.NotAfter.Local().Format(time.DateTime)), d.l.T("validity.expired.advice", e.User()))
	case "not_yet_valid":
		d.add(CheckValidity, Fail, d.l.T("validity.notyet", l.NotBefore.Local().Format(time.DateTime)), d.l.T("validity.notyet.advice"))
	case "expiring":
		d.add(CheckValidity, Warn, d.l.T("validity.expiring", expiry.DaysLeft(l.NotAfter, now), l.NotAfter.Local().Format(time.DateOnly)), d.l.T("validity.expiring.advice", e.Serial))
	default:
		d.add(CheckValidity, OK, d.l.T("validity.ok", expiry.DaysLeft(l.NotAfter, now), l.NotAfter.Local().Format(time.DateOnly)), "")
	}
	d.checkRevocation(ctx, e)
	switch {
	case d.o.User == "":
		d.add(CheckUser, Skip, d.l.T("user.skip", e.User()), "")
	case e.User() == d.o.User:
		d.add(CheckUser, OK, d.l.T("user.ok", e.User(), org(l)), "")
	default:
		d.add(CheckUser, Fail, d.l.T("user.fail", e.User(), org(l), d.o.User), d.l.T("user.advice", d.o.User))
	}
	root := d.checkChain(e)
	d.checkRoot(e, root)
}

func org(c *x509.Certificate) string {
	if len(c.Subject.Organization) > 0 {
		return c.Subject.Organization[0]
	}
	return "-"
}

func (d *doctor) checkRevocation(ctx context.Context, e *Entry) {
	if len(e.Chain) < 2 {
		d.add(CheckRevoked, Warn, d.l.T("revocation.noissuer"), d.l.T("chain.advice"))
		return
	}
	r, err := OCSPStatus(ctx, d.o.OCSPClient, e.Leaf(), e.Chain[1])
	if err != nil {
		d.add(CheckRevoked, Warn, d.l.T("revocation.error", errText(err)), d.l.T("revocation.error.advice"))
		return
	}
	switch r.Status {
	case ocsp.Good:
		d.add(CheckRevoked, OK, d.l.T("revocation.good"), "")
	case ocsp.Revoked:
		d.add(CheckRevoked, Fail, d.l.T("revocation.revoked", r.RevokedAt.Local().Format(time.DateTime), ReasonName(r.RevocationReason)), d.l.T("revocation.advice", e.User(), e.Serial))
	default:
		d.add(CheckRevoked, Fail, d.l.T("revocation.unknown"), d.l.T("revocation.advice", e.User(), e.Serial))
	}
}

// checkChain builds the path to a root from the stored chain and the
// configured root, at a time inside the validity (expiry is its own
// check). It returns the root reached, if any.
func (d *doctor) checkChain(e *Entry) *x509.Certificate {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range e.Chain[1:] {
		if c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
		} else {
			inter.AddCert(c)
		}
	}
	if d.root != nil {
		roots.AddCert(d.root)
	}
	l := e.Leaf()
	at := l.NotBefore.Add(l.NotAfter.Sub(l.NotBefore) / 2)
	chains, err := l.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		d.add(CheckChain, Fail, d.l.T("chain.fail", errText(err)), d.l.T("chain.advice"))
		return nil
	}
	c := chains[0]
	var names []string
	for _, x := range c {
		names = append(names, x.Subject.CommonName)
	}
	d.add(CheckChain, OK, strings.Join(names, " → "), "")
	return c[len(c)-1]
}

func (d *doctor) checkRoot(e *Entry, root *x509.Certificate) {
	if root == nil {
		d.add(CheckRoot, Skip, d.l.T("root.unknown"), d.l.T("root.advice"))
		return
	}
	f := d.o.RootInstalled
	if f == nil {
		f = rootInstalled
	}
	if ok, where := f(root, e.Chain); ok {
		d.add(CheckRoot, OK, d.l.T("root.ok", root.Subject.CommonName, where), "")
		return
	}
	d.add(CheckRoot, Fail, d.l.T("root.fail", root.Subject.CommonName, Fingerprint(root)), d.l.T("root.advice"))
}

// rootInstalled looks for root in the OS's trust (through Go's system
// verifier) and in NSS (Firefox, Chrome on Linux).
func rootInstalled(root *x509.Certificate, chain []*x509.Certificate) (bool, string) {
	var where []string
	if sys, err := x509.SystemCertPool(); err == nil && sys != nil {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		l := chain[0]
		at := l.NotBefore.Add(l.NotAfter.Sub(l.NotBefore) / 2)
		if _, err := l.Verify(x509.VerifyOptions{Roots: sys, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			where = append(where, "system")
		}
	}
	if RootInNSS(root) {
		where = append(where, "NSS")
	}
	return len(where) > 0, strings.Join(where, ", ")
}

// checkClockAndLogin makes one handshake with the chosen certificate; its
// answer gives the server's Date for the clock check and tells whether
// the site accepts the certificate.
func (d *doctor) checkClockAndLogin(ctx context.Context) {
	if d.probe == nil || d.probe.err != nil {
		d.skip(CheckClock, CheckLogin)
		return
	}
	var login *probeResult
	untrusted := d.chosen != nil && d.probe.requested != nil && !d.serverTrusted
	if d.chosen != nil && d.probe.requested != nil && d.serverTrusted {
		key, err := d.h.Key(d.chosen)
		if err != nil {
			d.checkClock(d.probe)
			d.add(CheckLogin, Fail, d.l.T("login.key", err.Error()), d.l.T("login.key.advice"))
			return
		}
		cert := &tls.Certificate{PrivateKey: key, Leaf: d.chosen.Leaf()}
		for _, c := range d.chosen.Chain {
			if c.CheckSignatureFrom(c) != nil { // roots are not sent
				cert.Certificate = append(cert.Certificate, c.Raw)
			}
		}
		login = d.handshake(ctx, cert)
	}
	if login != nil && !login.date.IsZero() {
		d.checkClock(login)
	} else {
		d.checkClock(d.probe)
	}
	switch {
	case untrusted:
		d.add(CheckLogin, Skip, d.l.T("login.untrusted"), "")
	case login == nil:
		d.add(CheckLogin, Skip, d.l.T("login.skip"), "")
	case login.err != nil:
		d.add(CheckLogin, Fail, d.l.T("login.refused", errText(login.err)), d.l.T("login.advice"))
	case login.readErr != nil:
		d.add(CheckLogin, Fail, d.l.T("login.refused", errText(login.readErr)), d.l.T("login.advice"))
	case login.status == 400 || login.status == 403 || login.status == 495 || login.status == 496:
		d.add(CheckLogin, Fail, d.l.T("login.status", login.status), d.l.T("login.advice"))
	default:
		d.add(CheckLogin, OK, d.l.T("login.ok", login.status), "")
	}
}

func (d *doctor) checkClock(p *probeResult) {
	if p.date.IsZero() {
		d.add(CheckClock, Warn, d.l.T("clock.nodate"), d.l.T("clock.nodate.advice"))
		return
	}
	now := d.o.Now()
	skew := now.Sub(p.date)
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	if abs > MaxClockSkew {
		dir := d.l.T("clock.ahead")
		if skew < 0 {
			dir = d.l.T("clock.behind")
		}
		d.add(CheckClock, Fail, d.l.T("clock.fail", abs.Round(time.Second), dir, p.date.Local().Format(time.DateTime)), d.l.T("clock.advice"))
		return
	}
	d.add(CheckClock, OK, d.l.T("clock.ok", abs.Round(time.Second)), "")
}
