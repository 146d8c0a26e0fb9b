// Package acmetest is a fake zbca HTTPS listener for zbcert's tests: the
// password API POST /api/v1/eab for one enterprise, and the ACME endpoints
// (RFC 8555) that golang.org/x/crypto/acme uses to register an account with
// External Account Binding, order and finalize. It is a test double, not a
// server: it does not verify the account's JWS signatures (it knows
// accounts by their JWK); it does verify the EAB MAC, since that is what
// binds an account to the password.
package acmetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Problem is an answer the test wants instead of the fake's own: an ACME
// problem document (RFC 8555 §6.7) on /acme/*, a JSON error on /api/v1/*.
type Problem struct {
	Status     int
	Type       string // e.g. "urn:ietf:params:acme:error:rateLimited"
	Detail     string
	RetryAfter string // Retry-After header, if any
}

// Server is the fake. Its fields may be changed between requests, not
// during one.
type Server struct {
	*httptest.Server
	User, Password string

	// Refuse, when it returns non-nil, answers a request to path (e.g.
	// "/acme/new-order", "/acme/finalize/1") before the fake handles it.
	Refuse func(path string) *Problem

	mu       sync.Mutex
	caKey    *ecdsa.PrivateKey
	caCert   *x509.Certificate
	accounts map[string]*account // by JWK
	byURL    map[string]*account
	eab      map[string][]byte // unused EAB keys by key ID
	logins   int
	refused  int
	certs    map[string][]byte // PEM chains by URL
	orders   int
	hits     map[string]int
}

type account struct {
	url   string
	ended bool
}

// New starts a fake with TLS for user and password.
func New(user, password string) *Server {
	s := &Server{User: user, Password: password, accounts: map[string]*account{}, byURL: map[string]*account{},
		eab: map[string][]byte{}, certs: map[string][]byte{}, hits: map[string]int{}}
	s.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acmetest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.caKey.Public(), s.caKey)
	s.caCert, _ = x509.ParseCertificate(der)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s
}

// Logins counts the successful password logins (EAB keys handed out);
// Refused counts the refused ones.
func (s *Server) Logins() int { s.mu.Lock(); defer s.mu.Unlock(); return s.logins }

// Refused counts password logins refused.
func (s *Server) Refused() int { s.mu.Lock(); defer s.mu.Unlock(); return s.refused }

// Issued counts the certificates issued.
func (s *Server) Issued() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.certs) }

// Accounts counts the ACME accounts registered.
func (s *Server) Accounts() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.accounts) }

// Hits counts the requests to path.
func (s *Server) Hits(path string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.hits[path] }

// EndAccess does what a password change does on the real server: every
// account registered so far is refused (unauthorized) from now on.
func (s *Server) EndAccess() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		a.ended = true
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	refuse := s.Refuse
	s.mu.Unlock()
	if refuse != nil {
		if p := refuse(r.URL.Path); p != nil {
			s.problem(w, r, p)
			return
		}
	}
	base := s.URL + "/acme/"
	switch {
	case r.URL.Path == "/api/v1/eab" && r.Method == http.MethodPost:
		s.newEAB(w, r)
	case r.URL.Path == "/acme/directory":
		writeJSON(w, http.StatusOK, map[string]string{"newNonce": base + "new-nonce", "newAccount": base + "new-account",
			"newOrder": base + "new-order", "revokeCert": base + "revoke-cert", "keyChange": base + "key-change"})
	case r.URL.Path == "/acme/new-nonce":
		s.nonce(w)
		w.WriteHeader(http.StatusOK)
	case r.Method != http.MethodPost:
		http.NotFound(w, r)
	default:
		s.acme(w, r)
	}
}

func (s *Server) nonce(w http.ResponseWriter) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	w.Header().Set("Replay-Nonce", base64.RawURLEncoding.EncodeToString(b))
	w.Header().Set("Cache-Control", "no-store")
}

func (s *Server) problem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.RetryAfter != "" {
		w.Header().Set("Retry-After", p.RetryAfter)
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, p.Status, map[string]any{"status": p.Status, "error": http.StatusText(p.Status), "detail": p.Detail})
		return
	}
	s.nonce(w)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": p.Type, "detail": p.Detail, "status": p.Status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) newEAB(w http.ResponseWriter, r *http.Request) {
	var c struct{ Username, Password string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 8192)).Decode(&c); err != nil {
		s.problem(w, r, &Problem{Status: http.StatusBadRequest, Detail: "bad JSON"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Username != s.User || c.Password != s.Password {
		s.refused++
		writeJSON(w, http.StatusUnauthorized, map[string]any{"status": 401, "error": "Unauthorized", "detail": "用户名或口令错误 / wrong username or password"})
		return
	}
	s.logins++
	kid := fmt.Sprintf("kid-%d", s.logins)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s.eab[kid] = key
	writeJSON(w, http.StatusCreated, map[string]string{"kid": kid, "hmac_key": base64.RawURLEncoding.EncodeToString(key),
		"directory": s.URL + "/acme/directory"})
}

type jws struct {
	Protected string `json:"protected"`
	Payload   string `json:"payload"`
	Signature string `json:"signature"`
}

func (j *jws) decode() (hdr struct {
	JWK json.RawMessage `json:"jwk"`
	KID string          `json:"kid"`
}, payload []byte, err error) {
	p, err := base64.RawURLEncoding.DecodeString(j.Protected)
	if err == nil {
		err = json.Unmarshal(p, &hdr)
	}
	if err == nil {
		payload, err = base64.RawURLEncoding.DecodeString(j.Payload)
	}
	return hdr, payload, err
}

func (s *Server) acme(w http.ResponseWriter, r *http.Request) {
	var body jws
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body); err != nil {
		s.problem(w, r, &Problem{Status: 400, Type: "urn:ietf:params:acme:error:malformed", Detail: "bad JWS"})
		return
	}
	hdr, payload, err := body.decode()
	if err != nil {
		s.problem(w, r, &Problem{Status: 400, Type: "urn:ietf:params:acme:error:malformed", Detail: err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/acme/new-account" {
		s.newAccount(w, r, string(hdr.JWK), payload)
		return
	}
	a := s.byURL[hdr.KID]
	switch {
	case a == nil:
		s.problem(w, r, &Problem{Status: 400, Type: "urn:ietf:params:acme:error:accountDoesNotExist", Detail: "no such account"})
		return
	case a.ended:
		s.problem(w, r, &Problem{Status: 403, Type: "urn:ietf:params:acme:error:unauthorized",
			Detail: "企业口令已更改，请重新申请证书 / the enterprise's password changed since this account was made: enroll again"})
		return
	}
	s.nonce(w)
	switch {
	case r.URL.Path == "/acme/new-order":
		s.orders++
		n := s.orders
		w.Header().Set("Location", fmt.Sprintf("%s/acme/order/%d", s.URL, n))
		writeJSON(w, http.StatusCreated, map[string]any{"status": "ready",
			"identifiers": []map[string]string{{"type": "enterprise", "value": s.User}},
			"finalize":    fmt.Sprintf("%s/acme/finalize/%d", s.URL, n)})
	case strings.HasPrefix(r.URL.Path, "/acme/finalize/"):
		s.finalize(w, r, payload)
	case strings.HasPrefix(r.URL.Path, "/acme/cert/"):
		chain, ok := s.certs[s.URL+r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		_, _ = w.Write(chain)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) newAccount(w http.ResponseWriter, r *http.Request, jwk string, payload []byte) {
	var req struct {
		OnlyReturnExisting     bool `json:"onlyReturnExisting"`
		ExternalAccountBinding *jws `json:"externalAccountBinding"`
	}
	if err := json.Unmarshal(payload, &req); err != nil || jwk == "" {
		s.problem(w, r, &Problem{Status: 400, Type: "urn:ietf:params:acme:error:malformed", Detail: "bad new-account request"})
		return
	}
	if a := s.accounts[jwk]; a != nil {
		if a.ended {
			s.problem(w, r, &Problem{Status: 403, Type: "urn:ietf:params:acme:error:unauthorized",
				Detail: "企业口令已更改，请重新申请证书 / the enterprise's password changed since this account was made: enroll again"})
			return
		}
		s.nonce(w)
		w.Header().Set("Location", a.url)
		writeJSON(w, http.StatusOK, map[string]string{"status": "valid"})
		return
	}
	if req.OnlyReturnExisting {
		s.problem(w, r, &Problem{Status: 400, Type: "urn:ietf:params:acme:error:accountDoesNotExist", Detail: "no such account"})
		return
	}
	if !s.checkEAB(req.ExternalAccountBinding) {
		s.problem(w, r, &Problem{Status: 403, Type: "urn:ietf:params:acme:error:unauthorized", Detail: "bad external account binding"})
		return
	}
	a := &account{url: fmt.Sprintf("%s/acme/acct/%d", s.URL, len(s.accounts)+1)}
	s.accounts[jwk] = a
	s.byURL[a.url] = a
	s.nonce(w)
	w.Header().Set("Location", a.url)
	writeJSON(w, http.StatusCreated, map[string]string{"status": "valid"})
}

// checkEAB verifies the HS256 MAC of a single-use EAB key and spends it.
func (s *Server) checkEAB(e *jws) bool {
	if e == nil {
		return false
	}
	p, err := base64.RawURLEncoding.DecodeString(e.Protected)
	if err != nil {
		return false
	}
	var h struct{ KID string }
	if json.Unmarshal(p, &h) != nil {
		return false
	}
	key, ok := s.eab[h.KID]
	if !ok {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(e.Protected + "." + e.Payload))
	sig, err := base64.RawURLEncoding.DecodeString(e.Signature)
	if err != nil || !hmac.Equal(sig, m.Sum(nil)) {
		return false
	}
	delete(s.eab, h.KID)
	return true
}

func (s *Server) finalize(w http.ResponseWriter, r *http.Request, payload []byte) {
	var req struct{ CSR string }
	csrDER, err := func() ([]byte, error) {
		if err := json.Unmarshal(payload, &req); err != nil {
			return nil, err
		}
		return base64.RawURLEncoding.DecodeString(req.CSR)
	}()
	csr, perr := x509.ParseCertificateRequest(csrDER)
	if err != nil || perr != nil || csr.CheckSignature() != nil {
		s.problem(w, r, &Problem{Status: 400, Type: "urn:ietf:params:acme:error:badCSR", Detail: "bad CSR"})
		return
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: s.User},
		NotBefore: time.Now().Add(-5 * time.Minute), NotAfter: time.Now().AddDate(3, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, csr.PublicKey, s.caKey)
	if err != nil {
		s.problem(w, r, &Problem{Status: 500, Type: "urn:ietf:params:acme:error:serverInternal", Detail: err.Error()})
		return
	}
	certURL := fmt.Sprintf("%s/acme/cert/%d", s.URL, len(s.certs)+1)
	s.certs[certURL] = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.caCert.Raw})...)
	writeJSON(w, http.StatusOK, map[string]any{"status": "valid", "certificate": certURL,
		"identifiers": []map[string]string{{"type": "enterprise", "value": s.User}}})
}
