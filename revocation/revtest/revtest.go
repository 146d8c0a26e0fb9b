// Package revtest starts a node's status stack (revocation.Stack) for the
// tests of the packages above it, as serve builds it: OCSP table, CRL
// publisher, status feed and revocation service, running until the test
// ends.
package revtest

import (
	"context"
	"testing"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/lifecycle"
	"github.com/zbca/zbca/revocation"
)

// Start builds, loads and starts the stack of a on st (delegated OCSP
// signer, CRL delay 200 ms, feed poll 20 ms); it stops when the test ends.
func Start(t testing.TB, st revocation.StackStore, a *ca.Authority) *revocation.Stack {
	t.Helper()
	ctx := context.Background()
	s, err := revocation.NewStack(revocation.StackOptions{Store: st,
		OCSP:      revocation.ResponderOptions{Issuers: a.IssuingCAs(), Root: a.RootCRLIssuer(), Delegated: a.OCSPResponder},
		Publisher: revocation.PublisherOptions{Delay: 200 * time.Millisecond, Interval: time.Hour, Validity: 2 * time.Hour, Shards: a.CRLShards(), PublicURL: "http://pki.test"},
		Poll:      20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	g := lifecycle.New(ctx, nil)
	s.Start(g)
	t.Cleanup(func() { g.Stop(5 * time.Second) })
	return s
}
