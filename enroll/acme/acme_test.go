package acme_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/enroll/acme"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/revocation/revtest"
	"github.com/zbca/zbca/store"
)

// errNS is the namespace of ACME problem types (RFC 8555 §6.7).
const errNS = "urn:ietf:params:acme:error:"

// testClock is the ACME server's clock; it starts at the real time so the
// store's own clock and the server's agree until a test moves it.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// testEnv is the real stack: SQLite store, CA, OCSP responder, CRL
// publisher, revocation and enrollment services, and the ACME server on
// an HTTPS test server.
type testEnv struct {
	st    *store.SQL
	db    *sql.DB // read-only view of the same database, for counting rows
	auth  *ca.Authority
	es    *enroll.Service
	e     *echo.Echo
	srv   *httptest.Server
	hc    *http.Client
	base  string // https://host:port, what the server builds its URLs from
	clock *testClock
	ents  map[string]*store.Enterprise
	acme  *acme.Server
	// revocation is the revocation service, for a second node.
	revocation *revocation.Service
}

func newTestEnv(t testing.TB, p enroll.Policy) *testEnv {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	path := filepath.Join(dir, "zbca.db")
	st, err := store.Open(ctx, store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Resolve()
	auth, err := ca.Init(ctx, ca.Options{Dir: filepath.Join(dir, "ca"), Config: cfg.CA, PublicURL: "http://pki.test", TLSHosts: cfg.HTTPS.Hosts, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	env := &testEnv{st: st, auth: auth, clock: &testClock{}, ents: map[string]*store.Enterprise{}}
	for _, u := range []string{"alpha", "beta"} {
		if err := st.AddEnterprise(ctx, &store.Enterprise{Username: u, Name: strings.ToUpper(u), PasswordHash: "x"}, store.AuditEvent{Actor: "test", Action: "enterprise.add", Subject: u}); err != nil {
			t.Fatal(err)
		}
		e, err := st.GetEnterprise(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		env.ents[u] = e
	}
	stack := revtest.Start(t, st, auth)
	env.revocation = stack.Service
	rs := env.revocation
	env.es = &enroll.Service{CA: auth, Store: st, Revoke: rs, Policy: p}
	srv := acme.New(acme.Options{Store: st, Enroll: env.es, Revocation: rs, Issuers: auth.IssuingCerts(), Now: env.clock.Now})
	env.acme = srv
	env.e = echo.New()
	srv.Register(env.e)
	env.srv = httptest.NewTLSServer(env.e)
	t.Cleanup(env.srv.Close)
	env.hc = env.srv.Client()
	env.hc.Timeout = time.Minute
	env.base = env.srv.URL
	env.db, err = sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.db.Close() })
	return env
}

func (e *testEnv) url(path string) string { return e.base + path }

// rows counts what a refused request must not create.
type rows struct {
	Accounts, Orders, Certs, UsedEAB, NotReady int
}

func (e *testEnv) count(t testing.TB) rows {
	t.Helper()
	var r rows
	err := e.db.QueryRow(`SELECT
		(SELECT COUNT(*) FROM acme_accounts),
		(SELECT COUNT(*) FROM acme_orders),
		(SELECT COUNT(*) FROM certificates WHERE profile = 'client'),
		(SELECT COUNT(*) FROM eab_keys WHERE used_at <> 0),
		(SELECT COUNT(*) FROM acme_orders WHERE status <> 'ready')`).Scan(&r.Accounts, &r.Orders, &r.Certs, &r.UsedEAB, &r.NotReady)
	if err != nil {
		t.Fatalf("counting rows: %v", err)
	}
	return r
}

// unchanged fails unless nothing was created or moved since before.
func (e *testEnv) unchanged(t testing.TB, before rows) {
	t.Helper()
	if after := e.count(t); after != before {
		t.Errorf("the store changed: before %+v, after %+v", before, after)
	}
}

// result is one HTTP answer.
type result struct {
	status int
	header http.Header
	body   []byte
}

type problemDoc struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
	Status int    `json:"status"`
}

func (e *testEnv) do(t testing.TB, method, url, contentType string, body []byte) *result {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &result{status: resp.StatusCode, header: resp.Header, body: b}
}

// postJOSE posts body as application/jose+json.
func (e *testEnv) postJOSE(t testing.TB, url string, body []byte) *result {
	t.Helper()
	return e.do(t, http.MethodPost, url, "application/jose+json", body)
}

// nonce gets a fresh nonce with HEAD /acme/new-nonce.
func (e *testEnv) nonce(t testing.TB) string {
	t.Helper()
	r := e.do(t, http.MethodHead, e.url("/acme/new-nonce"), "", nil)
	n := r.header.Get("Replay-Nonce")
	if r.status != http.StatusOK || n == "" {
		t.Fatalf("HEAD new-nonce: %d, nonce %q", r.status, n)
	}
	return n
}

// wantCommon checks the headers of every ACME response.
func wantCommon(t testing.TB, r *result) {
	t.Helper()
	if r.header.Get("Replay-Nonce") == "" {
		t.Errorf("no Replay-Nonce in a %d response", r.status)
	}
	if l := r.header.Get("Link"); !strings.Contains(l, `/acme/directory>;rel="index"`) {
		t.Errorf("Link = %q, want the index link", l)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
}

// wantProblem checks an ACME problem document (RFC 8555 §6.7).
func wantProblem(t testing.TB, r *result, status int, typ string) problemDoc {
	t.Helper()
	wantCommon(t, r)
	var p problemDoc
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("status %d, body %q is not a problem document: %v", r.status, r.body, err)
	}
	if r.status != status || p.Type != errNS+typ || p.Status != status {
		t.Fatalf("got %d %s (status field %d, detail %q), want %d %s", r.status, p.Type, p.Status, p.Detail, status, errNS+typ)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	return p
}

func wantStatus(t testing.TB, r *result, status int) {
	t.Helper()
	wantCommon(t, r)
	if r.status != status {
		t.Fatalf("got %d %s, want %d", r.status, r.body, status)
	}
}

// key is an account (or certificate) key and, once registered, its
// account URL.
type key struct {
	signer crypto.Signer
	alg    jose.SignatureAlgorithm
	kid    string
}

func newKey(t testing.TB, alg jose.SignatureAlgorithm) *key {
	t.Helper()
	var s crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.RS256:
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &key{signer: s, alg: alg}
}

func (k *key) jwkJSON(t testing.TB) []byte {
	t.Helper()
	b, err := (&jose.JSONWebKey{Key: k.signer.Public()}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hdr is what goes into a protected header besides alg.
type hdr struct {
	nonce, url, kid string
	jwk             bool
	extra           map[string]any // set last: may override anything, alg included
}

// signJWS signs payload with go-jose and returns the flattened JSON
// serialization (RFC 7515 §7.2.2) that ACME requires.
func signJWS(t testing.TB, alg jose.SignatureAlgorithm, signingKey any, h hdr, payload []byte) []byte {
	t.Helper()
	o := &jose.SignerOptions{EmbedJWK: h.jwk}
	if h.nonce != "" {
		o.WithHeader("nonce", h.nonce)
	}
	if h.url != "" {
		o.WithHeader("url", h.url)
	}
	if h.kid != "" {
		o.WithHeader("kid", h.kid)
	}
	for k, v := range h.extra {
		o.WithHeader(jose.HeaderKey(k), v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signingKey}, o)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return flatten(t, compact)
}

// flatten turns a compact JWS into the flattened JSON serialization.
func flatten(t testing.TB, compact string) []byte {
	t.Helper()
	p := strings.Split(compact, ".")
	if len(p) != 3 {
		t.Fatalf("compact JWS with %d parts", len(p))
	}
	b, err := json.Marshal(map[string]string{"protected": p[0], "payload": p[1], "signature": p[2]})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawJWS builds a flattened JWS from a protected header given as JSON
// text, for headers go-jose will not write.
func rawJWS(protected string, payload []byte, sig []byte) []byte {
	b, _ := json.Marshal(map[string]string{
		"protected": base64.RawURLEncoding.EncodeToString([]byte(protected)),
		"payload":   base64.RawURLEncoding.EncodeToString(payload),
		"signature": base64.RawURLEncoding.EncodeToString(sig),
	})
	return b
}

// marshalPayload: nil is POST-as-GET (an empty payload), []byte is sent
// as is, anything else as JSON.
func marshalPayload(t testing.TB, v any) []byte {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return []byte{}
	case []byte:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a request body signed by k with a fresh nonce: by kid once k
// is registered, else with the jwk.
func (e *testEnv) sign(t testing.TB, k *key, url string, payload any) []byte {
	t.Helper()
	h := hdr{nonce: e.nonce(t), url: url, kid: k.kid, jwk: k.kid == ""}
	return signJWS(t, k.alg, k.signer, h, marshalPayload(t, payload))
}

// post signs and posts to path.
func (e *testEnv) post(t testing.TB, k *key, path string, payload any) *result {
	t.Helper()
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = e.url(path)
	}
	return e.postJOSE(t, u, e.sign(t, k, u, payload))
}

// addEAB stores an EAB key of username directly (what POST /api/v1/eab
// does after a password login).
func (e *testEnv) addEAB(t testing.TB, username string, expires time.Time) (string, []byte) {
	t.Helper()
	kid := randomString(t)
	hk := make([]byte, 32)
	if _, err := rand.Read(hk); err != nil {
		t.Fatal(err)
	}
	ent, err := e.st.GetEnterprise(context.Background(), username)
	if err != nil {
		t.Fatal(err)
	}
	err = e.st.AddEABKey(context.Background(), &store.EABKey{KID: kid, HMACKey: hk, EnterpriseID: ent.ID, Epoch: ent.CredentialEpoch, CreatedAt: time.Now(), ExpiresAt: expires},
		store.AuditEvent{Actor: "test", Action: "eab.issue", Subject: kid})
	if err != nil {
		t.Fatal(err)
	}
	return kid, hk
}

func randomString(t testing.TB) string {
	t.Helper()
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// eabJWS is the externalAccountBinding of RFC 8555 §7.3.4: a JWS by the
// EAB MAC key over the account's jwk.
func eabJWS(t testing.TB, alg jose.SignatureAlgorithm, macKey any, kid, url string, jwk []byte) json.RawMessage {
	t.Helper()
	return json.RawMessage(signJWS(t, alg, macKey, hdr{url: url, kid: kid}, jwk))
}

type newAccountReq struct {
	Contact              []string        `json:"contact,omitempty"`
	TermsOfServiceAgreed bool            `json:"termsOfServiceAgreed"`
	OnlyReturnExisting   bool            `json:"onlyReturnExisting,omitempty"`
	EAB                  json.RawMessage `json:"externalAccountBinding,omitempty"`
}

// register makes an account for k bound to username, and records its URL
// in k.kid.
func (e *testEnv) register(t testing.TB, k *key, username string) {
	t.Helper()
	kid, hk := e.addEAB(t, username, time.Now().Add(10*time.Minute))
	u := e.url("/acme/new-account")
	r := e.post(t, k, u, newAccountReq{TermsOfServiceAgreed: true, EAB: eabJWS(t, jose.HS256, hk, kid, u, k.jwkJSON(t))})
	wantStatus(t, r, http.StatusCreated)
	k.kid = r.header.Get("Location")
	if !strings.HasPrefix(k.kid, e.url("/acme/acct/")) {
		t.Fatalf("account Location %q", k.kid)
	}
}

func (e *testEnv) account(t testing.TB, username string) *key {
	t.Helper()
	k := newKey(t, jose.ES256)
	e.register(t, k, username)
	return k
}

type identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type orderDoc struct {
	Status         string       `json:"status"`
	Expires        time.Time    `json:"expires"`
	Identifiers    []identifier `json:"identifiers"`
	Authorizations []string     `json:"authorizations"`
	Finalize       string       `json:"finalize"`
	Certificate    string       `json:"certificate"`
	url            string
}

func (e *testEnv) order(t testing.TB, k *key, username string) *orderDoc {
	t.Helper()
	r := e.post(t, k, "/acme/new-order", map[string]any{"identifiers": []identifier{{"enterprise", username}}})
	wantStatus(t, r, http.StatusCreated)
	var o orderDoc
	if err := json.Unmarshal(r.body, &o); err != nil {
		t.Fatal(err)
	}
	o.url = r.header.Get("Location")
	if o.Status != "ready" || o.url == "" {
		t.Fatalf("new order: %s, Location %q", r.body, o.url)
	}
	return &o
}

// csr makes a CSR for a new P-256 key; the subject is ignored by the
// server.
func csr(t testing.TB) ([]byte, crypto.Signer) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return csrFor(t, k), k
}

func csrFor(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func csrPayload(der []byte) map[string]string {
	return map[string]string{"csr": base64.RawURLEncoding.EncodeToString(der)}
}

// issue runs order and finalize for k's enterprise and returns the order
// and the certificate.
func (e *testEnv) issue(t testing.TB, k *key, username string) (*orderDoc, *x509.Certificate, crypto.Signer) {
	t.Helper()
	o := e.order(t, k, username)
	der, ck := csr(t)
	r := e.post(t, k, o.Finalize, csrPayload(der))
	wantStatus(t, r, http.StatusOK)
	var done orderDoc
	if err := json.Unmarshal(r.body, &done); err != nil {
		t.Fatal(err)
	}
	if done.Status != "valid" || done.Certificate == "" {
		t.Fatalf("finalized order: %s", r.body)
	}
	done.url = o.url
	return &done, e.download(t, k, done.Certificate), ck
}

// download fetches a certificate and checks its chain.
func (e *testEnv) download(t testing.TB, k *key, url string) *x509.Certificate {
	t.Helper()
	r := e.post(t, k, url, nil)
	wantStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/pem-certificate-chain" {
		t.Errorf("certificate Content-Type %q", ct)
	}
	var certs []*x509.Certificate
	for rest := r.body; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 {
		t.Fatalf("chain of %d certificates, want leaf and issuing CA", len(certs))
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(e.auth.Root())
	inter.AddCert(certs[1])
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("downloaded chain does not verify: %v", err)
	}
	return certs[0]
}

func (e *testEnv) certStatus(t testing.TB, c *x509.Certificate) *store.Certificate {
	t.Helper()
	rec, err := e.st.GetCertificate(context.Background(), ca.SerialHex(c.SerialNumber))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestDirectoryAndNonce(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	r := e.do(t, http.MethodGet, e.url("/acme/directory"), "", nil)
	wantStatus(t, r, http.StatusOK)
	var dir struct {
		NewNonce, NewAccount, NewOrder, RevokeCert, KeyChange string
		Meta                                                  struct {
			ExternalAccountRequired bool `json:"externalAccountRequired"`
		}
	}
	if err := json.Unmarshal(r.body, &dir); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{"newNonce": dir.NewNonce, "newAccount": dir.NewAccount, "newOrder": dir.NewOrder, "revokeCert": dir.RevokeCert, "keyChange": dir.KeyChange} {
		if !strings.HasPrefix(got, e.base+"/acme/") {
			t.Errorf("%s = %q", name, got)
		}
	}
	if !dir.Meta.ExternalAccountRequired {
		t.Error("meta.externalAccountRequired is not true")
	}
	// RFC 8555 §7.2: HEAD answers 200, GET 204, both with a nonce.
	head := e.do(t, http.MethodHead, dir.NewNonce, "", nil)
	wantStatus(t, head, http.StatusOK)
	get := e.do(t, http.MethodGet, dir.NewNonce, "", nil)
	wantStatus(t, get, http.StatusNoContent)
	if head.header.Get("Replay-Nonce") == get.header.Get("Replay-Nonce") {
		t.Error("two nonces are equal")
	}
	r = e.do(t, http.MethodPost, e.url("/acme/no-such-thing"), "application/jose+json", []byte("{}"))
	wantProblem(t, r, http.StatusNotFound, "malformed")
}

// TestIssuance is the whole flow with each accepted account-key algorithm.
func TestIssuance(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 10})
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			k := newKey(t, alg)
			e.register(t, k, "alpha")
			// POST-as-GET of the account.
			wantStatus(t, e.post(t, k, k.kid, nil), http.StatusOK)
			// newAccount again with the same key answers the account, 200.
			r := e.post(t, &key{signer: k.signer, alg: k.alg}, "/acme/new-account", newAccountReq{OnlyReturnExisting: true})
			wantStatus(t, r, http.StatusOK)
			if r.header.Get("Location") != k.kid {
				t.Errorf("onlyReturnExisting Location %q, want %q", r.header.Get("Location"), k.kid)
			}
			o := e.order(t, k, "alpha")
			r = e.post(t, k, o.Authorizations[0], nil)
			wantStatus(t, r, http.StatusOK)
			if !bytes.Contains(r.body, []byte(`"status":"valid"`)) {
				t.Errorf("authorization: %s", r.body)
			}
			der, ck := csr(t)
			wantStatus(t, e.post(t, k, o.Finalize, csrPayload(der)), http.StatusOK)
			r = e.post(t, k, o.url, nil)
			wantStatus(t, r, http.StatusOK)
			var got orderDoc
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != "valid" || got.Certificate == "" {
				t.Fatalf("order after finalize: %s", r.body)
			}
			c := e.download(t, k, got.Certificate)
			if !c.PublicKey.(*ecdsa.PublicKey).Equal(ck.Public()) {
				t.Error("the certificate does not certify the CSR's key")
			}
			if rec := e.certStatus(t, c); rec.EnterpriseID != e.ents["alpha"].ID || rec.Status != store.CertActive {
				t.Errorf("stored certificate: enterprise %d, status %s", rec.EnterpriseID, rec.Status)
			}
		})
	}
}

// postConcurrently POSTs every JWS body to u at once and returns how many
// answers had status want; any status other than want and other is an
// error (a race must end in one success and clean refusals).
func (e *testEnv) postConcurrently(t *testing.T, u string, bodies [][]byte, want, other int) int {
	t.Helper()
	codes := make(chan int, len(bodies))
	for _, b := range bodies {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/jose+json")
			resp, err := e.hc.Do(req)
			if err != nil {
				codes <- -1
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	got := 0
	for range bodies {
		switch c := <-codes; c {
		case want:
			got++
		case other:
		default:
			t.Errorf("status %d", c)
		}
	}
	return got
}
