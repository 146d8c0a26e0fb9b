// Package ocspder is a small, allocation-light OCSP codec for zbca's
// responder: it parses OCSPRequests (RFC 6960 §4.1, with the RFC 5019
// profile) including the nonce extension (RFC 8954), and builds signed
// BasicOCSPResponses (RFC 6960 §4.2) including responseExtensions (nonce,
// extended revoke) by appending DER bytes with precomputed headers.
//
// golang.org/x/crypto/ocsp neither reads request extensions nor writes
// responseExtensions, and its reflection-based encoding/asn1 is slower than
// the responder's budget (35,000 responses/s, 1,000,000 pre-signed responses
// in under a minute on two cores).
//
// The split between [Signer.SignBody] and [Signer.AppendResponse] lets a
// cache keep only the signed part of a response (about 200 bytes with a
// P-256 key) and wrap it, with the responder certificate, when serving.
package ocspder
