package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// The account-key algorithms accepted (RFC 8555 §6.2): never "none", never
// a MAC on the outer JWS.
var accountAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.EdDSA}

// MaxBody bounds an ACME request body.
const MaxBody = 64 << 10

type keyMode int

const (
	byKID    keyMode = iota // every request but newAccount and revokeCert
	byJWK                   // newAccount (and keyChange's inner JWS)
	byEither                // revokeCert: the account key or the certificate key
)

// request is a verified ACME request.
type request struct {
	payload   []byte
	postAsGet bool
	jwk       *jose.JSONWebKey   // the verifying key
	account   *store.ACMEAccount // for kid requests
	url       string
}

// verify checks an ACME POST (RFC 8555 §6.2–6.5): content type, size,
// a flattened JWS with a protected header only, the algorithm, jwk or kid
// as the resource requires, the signature, url equal to the request URL,
// and last the single-use nonce.
//
// Every header value is taken from the protected header that go-jose
// verified the signature over (parseJWS), never from a second decoding of
// the body. The nonce is consumed only once the signature has verified:
// a request that does not prove a key writes nothing.
func (s *Server) verify(c echo.Context, mode keyMode) (*request, error) {
	return s.verifyWith(c, mode, nil)
}

// verifyWith is verify with the resource's own read-only checks (pre) run
// after the signature and before the nonce is spent: a request that pre
// refuses (newAccount without a usable EAB key, revokeCert by a key that
// is not the certificate's) writes nothing either.
func (s *Server) verifyWith(c echo.Context, mode keyMode, pre func(*request) error) (*request, error) {
	r := c.Request()
	if ct := r.Header.Get("Content-Type"); ct != "application/jose+json" {
		return nil, &Problem{Type: ns + "malformed", Status: http.StatusUnsupportedMediaType, Detail: "Content-Type must be application/jose+json"}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return nil, malformed("reading the request body")
	}
	if len(body) > MaxBody {
		return nil, &Problem{Type: ns + "malformed", Status: http.StatusRequestEntityTooLarge, Detail: "request body too large"}
	}
	jws, h, err := parseJWS(body, accountAlgs)
	if err != nil {
		return nil, err
	}
	hasJWK, hasKID := h.JSONWebKey != nil, h.KeyID != ""
	switch {
	case hasJWK == hasKID:
		return nil, malformed("the protected header must have exactly one of jwk and kid")
	case mode == byKID && hasJWK:
		return nil, malformed("this request must be signed by the account key (kid)")
	case mode == byJWK && hasKID:
		return nil, malformed("this request must carry the new account's key (jwk)")
	}
	req := &request{}
	if hasJWK {
		if err := checkAccountKey(h.JSONWebKey.Key); err != nil {
			return nil, badSigAlg(err.Error())
		}
		req.jwk = h.JSONWebKey
	} else {
		id, ok := strings.CutPrefix(h.KeyID, s.base(c)+"/acme/acct/")
		if !ok {
			return nil, accountDoesNotExist("the kid is not an account URL of this server")
		}
		acct, k, err := s.accounts.get(r.Context(), id)
		if errors.Is(err, zerr.NotFound) {
			return nil, accountDoesNotExist("no such account")
		}
		if err != nil {
			return nil, err
		}
		req.jwk, req.account = k, acct
	}
	if !keyMatchesAlg(req.jwk, h.Algorithm) {
		return nil, malformed("the JWS algorithm does not fit the key")
	}
	payload, err := jws.Verify(req.jwk.Key)
	if err != nil {
		return nil, malformed("the JWS signature does not verify")
	}
	// From here on the request is signed by the key it names.
	url, _ := h.ExtraHeaders[jose.HeaderKey("url")].(string)
	if want := s.requestURL(c); url != want {
		return nil, unauthorized("the url header " + quote(url) + " is not the request URL " + quote(want))
	}
	req.url = url
	req.payload = payload
	req.postAsGet = len(payload) == 0
	if pre != nil && (req.account == nil || req.account.Current()) {
		if err := pre(req); err != nil {
			return nil, err
		}
	}
	fresh, err := s.nonces.use(r.Context(), h.Nonce)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, badNonce("the nonce is unknown, used or expired")
	}
	// After the nonce: a replayed request learns nothing of the account's
	// state but badNonce.
	if a := req.account; a != nil && !a.Current() {
		return nil, staleAccount(a)
	}
	return req, nil
}

// parseJWS parses an ACME request body, or an EAB's inner JWS, as a
// flattened JWS JSON serialization (RFC 7515 §7.2.2) that RFC 8555 §6.2
// allows: exactly the members "protected", "payload" and "signature",
// each once, spelled exactly so; no unprotected header, no "signatures".
// The protected header must be a JSON object without duplicate members
// (in any case) whose alg is one of algs. The header returned is go-jose's
// parse of the bytes its signature covers: the caller reads every value
// from it and verifies the signature with jws.Verify.
func parseJWS(body []byte, algs []jose.SignatureAlgorithm) (*jose.JSONWebSignature, *jose.Header, error) {
	members, err := objectMembers(body)
	if err != nil {
		return nil, nil, malformed("the body is not a flattened JWS JSON object: " + err.Error())
	}
	if len(members) != 3 || members["protected"] == nil || members["payload"] == nil || members["signature"] == nil {
		return nil, nil, malformed(`the JWS must be flattened, with exactly the members "protected", "payload" and "signature"`)
	}
	var prot string
	if err := json.Unmarshal(members["protected"], &prot); err != nil || prot == "" {
		return nil, nil, malformed("the protected header is not a string")
	}
	hb, err := base64.RawURLEncoding.DecodeString(prot)
	if err != nil {
		return nil, nil, malformed("the protected header is not base64url")
	}
	if _, err := objectMembers(hb); err != nil {
		return nil, nil, malformed("the protected header is not a JSON object without duplicate members: " + err.Error())
	}
	jws, err := jose.ParseSignedJSON(string(body), algs)
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return nil, nil, badSigAlg("algorithm " + quote(string(alg.Got)) + " is not accepted; use " + algNames(algs))
		}
		return nil, nil, malformed("the JWS cannot be parsed")
	}
	if len(jws.Signatures) != 1 || len(jws.Signatures[0].Signature) == 0 {
		return nil, nil, malformed("the JWS must carry one signature")
	}
	h := jws.Signatures[0].Protected
	return jws, &h, nil
}

// objectMembers is web.ObjectMembers: one JSON object, nothing after it,
// no member twice in any case.
var objectMembers = web.ObjectMembers

// keyMatchesAlg reports whether the header's alg is one the key can make.
// go-jose refuses a mismatch at Verify too; this gives a clear answer.
func keyMatchesAlg(k *jose.JSONWebKey, alg string) bool {
	switch alg {
	case string(jose.ES256), string(jose.ES384):
		_, ok := k.Key.(*ecdsa.PublicKey)
		return ok
	case string(jose.RS256):
		_, ok := k.Key.(*rsa.PublicKey)
		return ok
	case string(jose.EdDSA):
		_, ok := k.Key.(ed25519.PublicKey)
		return ok
	}
	return false
}

func algNames(algs []jose.SignatureAlgorithm) string {
	var b strings.Builder
	for i, a := range algs {
		switch {
		case i == 0:
		case i == len(algs)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(string(a))
	}
	return b.String()
}

// checkAccountKey refuses weak account keys.
func checkAccountKey(k any) error {
	switch k := k.(type) {
	case interface{ Size() int }: // *rsa.PublicKey
		if k.Size()*8 < 2048 {
			return errors.New("RSA account keys must have at least 2048 bits")
		}
	}
	return nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint, base64url.
func thumbprint(k *jose.JSONWebKey) (string, error) {
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func quote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// lookupAccountByKey finds the account of a jwk.
func (s *Server) lookupAccountByKey(ctx context.Context, k *jose.JSONWebKey) (*store.ACMEAccount, string, error) {
	tp, err := thumbprint(k)
	if err != nil {
		return nil, "", malformed("cannot compute the key thumbprint")
	}
	a, err := s.o.Store.GetACMEAccountByThumbprint(ctx, tp)
	if errors.Is(err, zerr.NotFound) {
		return nil, tp, nil
	}
	return a, tp, err
}
