package crlder

import (
	"crypto/rand"
	"encoding/binary"
	"math/big"
	mrand "math/rand/v2"
	"strconv"
	"testing"
	"time"

	"crypto/x509"
)

// genEntries yields n entries with random 16-byte serials (about half with
// the high bit set), every tenth with a reason, and perSecond entries per
// revocation second. It reuses one serial buffer, as a database cursor would.
func genEntries(n, perSecond int) func() (Entry, bool) {
	reasons := [...]int{1, 2, 3, 4, 5, 6, 9, 10}
	rng := mrand.New(mrand.NewPCG(1, 2))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var serial [16]byte
	i := 0
	return func() (Entry, bool) {
		if i == n {
			return Entry{}, false
		}
		binary.BigEndian.PutUint64(serial[:8], rng.Uint64())
		binary.BigEndian.PutUint64(serial[8:], rng.Uint64())
		if serial[0] == 0 {
			serial[0] = 1
		}
		e := Entry{Serial: serial[:], RevokedAt: base.Add(time.Duration(i/perSecond) * time.Second)}
		if i%10 == 0 {
			e.Reason = reasons[(i/10)%len(reasons)]
		}
		i++
		return e, true
	}
}

// BenchmarkBuild measures the worst case for the time cache: a new
// revocation second for every entry.
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			p := params(issuers(b)["P-256"])
			b.ReportAllocs()
			var size int
			for b.Loop() {
				der, err := Build(p, genEntries(n, 1))
				if err != nil {
					b.Fatal(err)
				}
				size = len(der)
			}
			b.ReportMetric(float64(size), "crl-bytes")
		})
	}
}

// BenchmarkStdlib is x509.CreateRevocationList on the same entries, for
// comparison.
func BenchmarkStdlib(b *testing.B) {
	const n = 100_000
	p := params(issuers(b)["P-256"])
	b.ReportAllocs()
	for b.Loop() {
		var rcs []x509.RevocationListEntry
		next := genEntries(n, 1)
		for e, ok := next(); ok; e, ok = next() {
			rcs = append(rcs, x509.RevocationListEntry{SerialNumber: new(big.Int).SetBytes(e.Serial), RevocationTime: e.RevokedAt, ReasonCode: e.Reason})
		}
		_, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			RevokedCertificateEntries: rcs, Number: p.Number, ThisUpdate: p.ThisUpdate, NextUpdate: p.NextUpdate,
		}, p.Issuer, p.Signer)
		if err != nil {
			b.Fatal(err)
		}
	}
}
