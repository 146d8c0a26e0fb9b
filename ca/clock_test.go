package ca

import (
	"context"
	"testing"
	"time"

	"github.com/zbca/zbca/store"
)

// TestIssueFollowsClock: with Options.Now fixed far from the wall clock,
// the certificate and its record carry the injected time, while the
// duration observed for metrics is measured in wall time (a frozen clock
// would report every issuance as taking 0s).
func TestIssueFollowsClock(t *testing.T) {
	clock := time.Date(2041, 7, 9, 10, 11, 12, 0, time.UTC)
	f := newFixture(t, func() time.Time { return clock })
	var observed []time.Duration
	f.a.opts.Observe = func(profile, outcome string, d time.Duration) { observed = append(observed, d) }
	f.addEnterprise(t, "acme", store.StatusActive)
	iss, err := f.a.Issue(context.Background(), IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	wantNB := clock.Add(-f.opts.Config.Client.Backdate.Duration)
	wantNA := wantNB.AddDate(f.opts.Config.Client.ValidityYears, 0, 0)
	for _, got := range [][2]time.Time{
		{iss.Certificate.NotBefore, iss.Certificate.NotAfter},
		{iss.Record.NotBefore, iss.Record.NotAfter},
	} {
		if !got[0].Equal(wantNB) || !got[1].Equal(wantNA) {
			t.Errorf("validity %s – %s, want %s – %s", got[0], got[1], wantNB, wantNA)
		}
	}
	if len(observed) != 1 || observed[0] <= 0 {
		t.Errorf("observed durations %v, want one wall-clock duration", observed)
	}
}
