package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zbca/zbca/store"
)

// BenchmarkIssue measures durable issuance through Authority.Issue on
// SQLite (WAL, synchronous=FULL, group commit): CSR check, journal commit,
// signature, certificate commit. scripts/bench/issuance.sh runs it.
func BenchmarkIssue(b *testing.B) {
	for _, callers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			f := newFixture(b, time.Now)
			f.addEnterprise(b, "acme", store.StatusActive)
			csrs := make([]*x509.CertificateRequest, 64)
			for i := range csrs {
				csrs[i] = makeCSR(b, p256(b))
			}
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := f.a.Issue(ctx, IssueRequest{CSR: csrs[(int(i)+w)%len(csrs)], Username: "acme", Actor: "bench"}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}
