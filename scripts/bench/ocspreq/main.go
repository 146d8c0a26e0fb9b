// Command ocspreq writes the request files of the OCSP benchmarks from a
// filled data directory (scripts/bench/fill), before the server starts:
//
//	go run ./scripts/bench/ocspreq -data DIR -out OUT [-k 100000]
//
// It writes, in OUT:
//   - get.txt: GET paths /ocsp/<percent-encoded base64> with SHA-1 CertIDs
//     for k random known serials (about 10% of them revoked);
//   - post.hex: the same requests as hex DER, one a line (for POST);
//   - nonce.hex: the same with a 32-octet random nonce (RFC 9654);
//   - probe.txt: "serial TAB GET path" of 20 active serials not in the
//     files above, for the revoke → OCSP delay;
//   - index.txt: an openssl ca index of every certificate, for
//     `openssl ocsp -index` (with index.txt.attr).
//
// All CertIDs name the current issuing CA.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/zbca/zbca/scripts/bench/internal/benchenv"
	"github.com/zbca/zbca/store"
)

var (
	oidSHA1  = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
)

func main() {
	var (
		dir   = flag.String("data", "", "filled data directory (required)")
		cfgp  = flag.String("config", "", "zbca configuration file (optional; e.g. store: {driver: postgres, dsn_file: …})")
		out   = flag.String("out", "", "output directory (required)")
		k     = flag.Int("k", 100_000, "distinct requests in get.txt, post.hex and nonce.hex")
		seed  = flag.Uint64("seed", 7, "sampling seed")
		index = flag.Bool("index", true, "write index.txt for openssl ocsp")
	)
	flag.Parse()
	log.SetFlags(0)
	if *dir == "" || *out == "" {
		log.Fatal("ocspreq: -data and -out are required")
	}
	ctx := context.Background()
	env, err := benchenv.Open(ctx, *dir, *cfgp, nil)
	if err != nil {
		log.Fatalf("ocspreq: %v", err)
	}
	defer env.Close()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	iss := env.CA.Issuing()
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(iss.RawSubjectPublicKeyInfo, &spki); err != nil {
		log.Fatal(err)
	}
	nameHash := sha1.Sum(iss.RawSubject)
	keyHash := sha1.Sum(spki.PublicKey.RightAlign())
	issuerID := hex.EncodeToString(iss.SubjectKeyId)
	skip, err := env.ServiceSerials(ctx)
	if err != nil {
		log.Fatal(err)
	}

	var idx *bufio.Writer
	if *index {
		f, err := os.Create(filepath.Join(*out, "index.txt"))
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		idx = bufio.NewWriterSize(f, 1<<20)
		defer idx.Flush()
		if err := os.WriteFile(filepath.Join(*out, "index.txt.attr"), []byte("unique_subject = no\n"), 0o644); err != nil {
			log.Fatal(err)
		}
	}

	// Reservoir-sample k known serials and 20 active probes.
	r := mrand.New(mrand.NewPCG(*seed, 11))
	sample := make([]string, 0, *k)
	var probes []string
	seen, revoked := 0, 0
	start := time.Now()
	_, err = env.Store.LoadStatuses(ctx, time.Time{}, func(c store.CertStatus) error {
		if idx != nil {
			writeIndexLine(idx, c)
		}
		if c.Issuer != issuerID || skip[c.Serial] {
			return nil
		}
		if c.Status == store.CertRevoked {
			revoked++
		} else if len(probes) < 20 && r.IntN(1000) == 0 {
			probes = append(probes, c.Serial)
			return nil
		}
		seen++
		if len(sample) < *k {
			sample = append(sample, c.Serial)
		} else if j := r.IntN(seen); j < *k {
			sample[j] = c.Serial
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("read %d client certificates (%d revoked) in %s", seen+len(probes), revoked, time.Since(start).Round(time.Millisecond))

	get := create(*out, "get.txt")
	post := create(*out, "post.hex")
	nonce := create(*out, "nonce.hex")
	for _, s := range sample {
		der := request(nameHash[:], keyHash[:], s, nil)
		fmt.Fprintln(get.w, getPath(der))
		fmt.Fprintln(post.w, hex.EncodeToString(der))
		n := make([]byte, 32)
		rand.Read(n)
		fmt.Fprintln(nonce.w, hex.EncodeToString(request(nameHash[:], keyHash[:], s, n)))
	}
	probe := create(*out, "probe.txt")
	for _, s := range probes {
		fmt.Fprintf(probe.w, "%s\t%s\n", s, getPath(request(nameHash[:], keyHash[:], s, nil)))
	}
	for _, f := range []*file{get, post, nonce, probe} {
		f.close()
	}
	log.Printf("wrote %d requests and %d probes to %s", len(sample), len(probes), *out)
}

type file struct {
	f *os.File
	w *bufio.Writer
}

func create(dir, name string) *file {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		log.Fatal(err)
	}
	return &file{f, bufio.NewWriter(f)}
}

func (f *file) close() {
	if err := f.w.Flush(); err != nil {
		log.Fatal(err)
	}
	f.f.Close()
}

// getPath is the RFC 6960 Appendix A.1 GET path, with the base64
// characters that are special in URLs percent-encoded, as openssl does.
func getPath(der []byte) string {
	b := base64.StdEncoding.EncodeToString(der)
	return "/ocsp/" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b)
}

// request is the DER OCSPRequest (RFC 6960 §4.1.1) for one SHA-1 CertID,
// with a nonce extension when nonce is not nil.
func request(nameHash, keyHash []byte, serialHex string, nonce []byte) []byte {
	serial, ok := new(big.Int).SetString(serialHex, 16)
	if !ok {
		log.Fatalf("bad serial %q", serialHex)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // OCSPRequest
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // TBSRequest
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // requestList
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Request
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertID
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(oidSHA1)
							b.AddASN1NULL()
						})
						b.AddASN1OctetString(nameHash)
						b.AddASN1OctetString(keyHash)
						b.AddASN1BigInt(serial)
					})
				})
			})
			if nonce != nil {
				b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Extensions
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(oidNonce)
							b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
								b.AddASN1OctetString(nonce)
							})
						})
					})
				})
			}
		})
	})
	return b.BytesOrPanic()
}

// openssl ca index: status, expiry, revocation "date,reason", serial
// (upper-case hex of whole octets, as BN_bn2hex writes it), file, subject.
var reasonNames = map[int]string{0: "unspecified", 1: "keyCompromise", 2: "CACompromise", 3: "affiliationChanged", 4: "superseded", 5: "cessationOfOperation", 6: "certificateHold", 8: "removeFromCRL"}

func writeIndexLine(w *bufio.Writer, c store.CertStatus) {
	serial := strings.ToUpper(c.Serial)
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	st, rev := "V", ""
	if c.Status == store.CertRevoked {
		st = "R"
		rev = c.RevokedAt.UTC().Format("060102150405Z") + "," + reasonNames[c.Reason]
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\tunknown\t/CN=%s\n", st, c.NotAfter.UTC().Format("060102150405Z"), rev, serial, serial)
}
