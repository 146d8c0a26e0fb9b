package crlder

import (
	"encoding/binary"
	"errors"
	"math/big"
	"testing"
	"time"

	"crypto/x509"

	"github.com/zbca/zbca/internal/zerr"
)

// fuzzEntries derives entries from data: per entry one length byte (serial
// length = b%22, so 0 and 21 occur), the serial, a reason byte (r%12) and
// four bytes of signed time offset in units of 37 s around 2026 (years
// about -500 to 4500). At most 64 entries.
func fuzzEntries(data []byte) []Entry {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	var es []Entry
	for len(data) > 0 && len(es) < 64 {
		n := int(data[0]) % 22
		data = data[1:]
		if len(data) < n+5 {
			break
		}
		e := Entry{Serial: data[:n:n], Reason: int(data[n]) % 12}
		off := int64(int32(binary.BigEndian.Uint32(data[n+1:])))
		e.RevokedAt = time.Unix(base+off*37, int64(data[n+1])*1e6).UTC()
		data = data[n+5:]
		es = append(es, e)
	}
	return es
}

// validEntry is an independent statement of what Build must accept.
func validEntry(e Entry) bool {
	y := e.RevokedAt.Year()
	return len(e.Serial) >= 1 && len(e.Serial) <= 20 && e.Serial[0] != 0 &&
		e.Reason >= 0 && e.Reason <= 10 && e.Reason != 7 && e.Reason != 8 &&
		y >= 0 && y <= 9999
}

func FuzzBuild(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0x01, 0, 0, 0, 0, 0})
	f.Add([]byte{20, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 1, 0x7f, 0xff, 0xff, 0xff,
		2, 0x00, 0x01, 7, 0, 0, 0, 0})
	f.Add([]byte{3, 0xff, 0, 0, 10, 0x01, 0, 0, 0, 21, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 2, 3, 4})
	ca := issuers(f)["P-256"]
	f.Fuzz(func(t *testing.T, data []byte) {
		p := params(ca)
		if len(data) > 0 {
			p.Number = new(big.Int).SetBytes(data[:min(len(data), 19)])
		}
		es := fuzzEntries(data)
		wantOK := true
		for _, e := range es {
			wantOK = wantOK && validEntry(e)
		}
		der, err := Build(p, Entries(es))
		if err != nil {
			if wantOK || !errors.Is(err, zerr.BadRequest) {
				t.Fatalf("Build: %v (want success: %v)", err, wantOK)
			}
			return
		}
		if !wantOK {
			t.Fatal("Build accepted an invalid entry")
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatalf("ParseRevocationList: %v", err)
		}
		if len(crl.RevokedCertificateEntries) != len(es) {
			t.Fatalf("%d entries parsed, want %d", len(crl.RevokedCertificateEntries), len(es))
		}
		for i, e := range es {
			g := crl.RevokedCertificateEntries[i]
			if g.SerialNumber.Cmp(new(big.Int).SetBytes(e.Serial)) != 0 || g.ReasonCode != e.Reason ||
				!g.RevocationTime.Equal(e.RevokedAt.Truncate(time.Second)) {
				t.Fatalf("entry %d: got %x %v %d, want %x %v %d", i,
					g.SerialNumber, g.RevocationTime, g.ReasonCode, e.Serial, e.RevokedAt, e.Reason)
			}
		}
		if err := crl.CheckSignatureFrom(p.Issuer); err != nil {
			t.Fatalf("signature: %v", err)
		}
	})
}
