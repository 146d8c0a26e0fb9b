package ca

import (
	"math/big"
	"net/url"
	"strconv"

	"github.com/zbca/zbca/config"
)

// Partitioned CRLs (config ca.crl_shards): the shard count is fixed when
// the CA is created and kept in its manifest. A certificate of serial s
// belongs to shard s mod N of its issuing CA, whose CRL is named
// "<issuing CA>-<k>" ("issuing-1-3") and is published beside the full CRL
// "<issuing CA>". The publisher (package revocation) uses the same
// functions, so that the URL written into a certificate and the issuing
// distribution point of its shard CRL are the same string.

// CRLShards is the number of shard CRLs per issuing CA, 0 when CRLs are
// not partitioned.
func (a *Authority) CRLShards() int { return a.m.CRLShards }

// CRLShardName names shard k of the CRL of issuer ("issuing-1").
func CRLShardName(issuer string, k int) string { return issuer + "-" + strconv.Itoa(k) }

// CRLURL is the URL at which the CRL name is published (DER), below the
// public base URL.
func CRLURL(publicURL, name string) string {
	return publicURL + "/crl/" + url.PathEscape(name) + ".crl"
}

// CRLShardOf returns the shard, 0..n-1, of the certificate whose serial
// has the big-endian magnitude serial: the serial modulo n. It is the same
// as new(big.Int).SetBytes(serial) mod n, without the allocation.
func CRLShardOf(serial []byte, n int) int {
	if n <= 1 {
		return 0
	}
	r := 0
	for _, b := range serial {
		r = (r<<8 | int(b)) % n
	}
	return r
}

// checkCRLShards refuses a manifest shard count out of range.
func checkCRLShards(n int) bool { return n >= 0 && n != 1 && n <= config.MaxCRLShards }

// shardCRLDP replaces, in the CRL distribution points of a certificate
// template, the current issuing CA's full CRL URL by the URL of the
// certificate's shard. The template was rendered before the serial was
// drawn (policy checks come first); an operator template that writes other
// URLs keeps them.
func (a *Authority) shardCRLDP(dps []string, serial *big.Int) []string {
	if a.m.CRLShards == 0 {
		return dps
	}
	full := CRLURL(a.opts.PublicURL, a.m.Issuing.Name)
	shard := CRLURL(a.opts.PublicURL, CRLShardName(a.m.Issuing.Name, CRLShardOf(serial.Bytes(), a.m.CRLShards)))
	out := make([]string, len(dps))
	for i, u := range dps {
		if u == full {
			u = shard
		}
		out[i] = u
	}
	return out
}
