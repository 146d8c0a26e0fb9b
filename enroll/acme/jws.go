package acme

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"

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

type flattened struct {
	Protected  string          `json:"protected"`
	Payload    *string         `json:"payload"`
	Signature  string          `json:"signature"`
	Header     json.RawMessage `json:"header,omitempty"`
	Signatures json.RawMessage `json:"signatures,omitempty"`
}

type protectedHeader struct {
	Alg   string          `json:"alg"`
	Nonce string          `json:"nonce"`
	URL   string          `json:"url"`
	KID   string          `json:"kid"`
	JWK   json.RawMessage `json:"jwk"`
}

// verify checks an ACME POST (RFC 8555 §6.2–6.5): content type, size,
// flattened JWS with one protected header, algorithm, single-use nonce, url
// equal to the request URL, jwk or kid as the resource requires, and the
// signature.
func (s *Server) verify(c echo.Context, mode keyMode) (*request, error) {
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
	var f flattened
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&f); err != nil || dec.More() {
		return nil, malformed("the body is not a flattened JWS JSON object")
	}
	if len(f.Signatures) > 0 || len(f.Header) > 0 || f.Payload == nil || f.Protected == "" {
		return nil, malformed("the JWS must be flattened, with a protected header only, a payload and one signature")
	}
	hb, err := base64.RawURLEncoding.DecodeString(f.Protected)
	if err != nil {
		return nil, malformed("protected header is not base64url")
	}
	var h protectedHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, malformed("protected header is not JSON")
	}
	algOK := false
	for _, a := range accountAlgs {
		if string(a) == h.Alg {
			algOK = true
		}
	}
	if !algOK {
		return nil, badSigAlg("algorithm " + quote(h.Alg) + " is not accepted; use ES256, ES384, RS256 or EdDSA")
	}
	if f.Signature == "" {
		return nil, malformed("the JWS has no signature")
	}
	fresh, err := s.nonces.use(r.Context(), h.Nonce)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, badNonce("the nonce is unknown, used or expired")
	}
	want := s.requestURL(c)
	if h.URL != want {
		return nil, unauthorized("the url header " + quote(h.URL) + " is not the request URL " + quote(want))
	}
	hasJWK, hasKID := len(h.JWK) > 0 && string(h.JWK) != "null", h.KID != ""
	switch {
	case hasJWK == hasKID:
		return nil, malformed("the protected header must have exactly one of jwk and kid")
	case mode == byKID && hasJWK:
		return nil, malformed("this request must be signed by the account key (kid)")
	case mode == byJWK && hasKID:
		return nil, malformed("this request must carry the new account's key (jwk)")
	}
	jws, err := jose.ParseSignedJSON(string(body), accountAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, malformed("the JWS cannot be parsed")
	}
	req := &request{url: h.URL, payload: nil}
	if hasJWK {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(h.JWK); err != nil || !k.Valid() || !k.IsPublic() {
			return nil, malformed("the jwk is not a valid public key")
		}
		if err := checkAccountKey(k.Key); err != nil {
			return nil, badSigAlg(err.Error())
		}
		req.jwk = &k
	} else {
		id, ok := strings.CutPrefix(h.KID, s.base(c)+"/acme/acct/")
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
		if acct.Status != "valid" {
			return nil, unauthorized("the account is " + acct.Status)
		}
		req.jwk, req.account = k, acct
	}
	payload, err := jws.Verify(req.jwk.Key)
	if err != nil {
		return nil, malformed("the JWS signature does not verify")
	}
	req.payload = payload
	req.postAsGet = len(payload) == 0
	return req, nil
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
