package ocspder_test

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"math/big"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/internal/ocspder"
)

// Requests made by openssl 3.0 ocsp -reqout: SHA-1 with a nonce, and
// -sha256 -no_nonce (the serial is 17 octets with a sign octet).
var opensslRequests = []string{
	"30783076304f304d304b300906052b0e03021a050004141bcf8f9fc4b1b09298b079263c85724d03efa4ca0414fbcce64d5a432e2ef2e4f0fce2a0e5c6fb42ee69021200ff112233445566778899aabbccddeeff00a2233021301f06092b0601050507300102041204101e44ff42eadbd8d839c1e4db018d60fc",
	"306f306d306b30693067300d0609608648016503040201050004204ca6f7ffd2c637da515e3dfe16afe9a0d0063b587c3c718a21d0ec07be8f1f7d0420eeb78552db8608e45046b5d6d1f317809dca72362beb42ed0d5070f8b2dc4474021200ff112233445566778899aabbccddeeff00",
}

func FuzzParseRequest(f *testing.F) {
	p := pki(f)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		f.Add(p.request(f, h))
	}
	for _, s := range opensslRequests {
		der, err := hex.DecodeString(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	cid := p.leafCertID(f, crypto.SHA1)
	f.Add(reqSpec{
		version: []byte{2, 1, 0}, requestorName: []byte{0x82, 1, 'x'},
		certIDs: []certID{cid, cid}, singleExts: []ext{{oid: oidSHA1, value: []byte{5, 0}}},
		exts: []ext{nonceExt(bytes.Repeat([]byte{1}, 32))}, signature: []byte{0x30, 3, 0x30, 1, 0},
	}.der())
	s := p.delegatedSigner(f)

	f.Fuzz(func(t *testing.T, der []byte) {
		r, err := ocspder.ParseRequest(der)
		if err != nil {
			if !errors.Is(err, ocspder.ErrMalformed) || r != nil {
				t.Fatalf("ParseRequest = %v, %v; want nil, ErrMalformed", r, err)
			}
			return
		}
		switch r.HashAlgorithm {
		case crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512:
		default:
			t.Fatalf("hash %v", r.HashAlgorithm)
		}
		if len(r.IssuerNameHash) != r.HashAlgorithm.Size() || len(r.IssuerKeyHash) != r.HashAlgorithm.Size() {
			t.Fatalf("hash lengths %d, %d for %v", len(r.IssuerNameHash), len(r.IssuerKeyHash), r.HashAlgorithm)
		}
		if len(r.Serial) == 0 || len(r.Serial) > ocspder.MaxSerialLen || r.Serial[0] == 0 {
			t.Fatalf("serial %x", r.Serial)
		}
		if r.HasNonce != (r.Nonce != nil) || r.HasNonce && (len(r.Nonce) == 0 || len(r.Nonce) > ocspder.MaxNonceLen) {
			t.Fatalf("nonce %x, %v", r.Nonce, r.HasNonce)
		}

		// Re-encode the request canonically and parse it again.
		spec := reqSpec{certIDs: []certID{{
			oid: hashOID(r.HashAlgorithm), params: []byte{5, 0},
			nameHash: r.IssuerNameHash, keyHash: r.IssuerKeyHash,
			serial: intContent(new(big.Int).SetBytes(r.Serial)),
		}}}
		if r.HasNonce {
			spec.exts = []ext{nonceExt(r.Nonce)}
		}
		again, err := ocspder.ParseRequest(spec.der())
		if err != nil {
			t.Fatalf("re-encoded request rejected: %v", err)
		}
		if again.HashAlgorithm != r.HashAlgorithm || !bytes.Equal(again.IssuerNameHash, r.IssuerNameHash) ||
			!bytes.Equal(again.IssuerKeyHash, r.IssuerKeyHash) || !bytes.Equal(again.Serial, r.Serial) ||
			again.HasNonce != r.HasNonce || !bytes.Equal(again.Nonce, r.Nonce) {
			t.Fatalf("re-encoded request parses as %+v, want %+v", again, r)
		}

		// An answer to it is a valid response for x/crypto/ocsp.
		resp := p.response(r, ocspder.Good)
		resp.Nonce = r.Nonce
		out, err := s.Sign(resp)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		parsed, err := ocsp.ParseResponse(out, p.issuer)
		if err != nil {
			t.Fatalf("ocsp.ParseResponse: %v", err)
		}
		if parsed.SerialNumber.Cmp(new(big.Int).SetBytes(r.Serial)) != 0 || parsed.IssuerHash != r.HashAlgorithm {
			t.Fatalf("response for serial %v, %v", parsed.SerialNumber, parsed.IssuerHash)
		}
	})
}
