package portal_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/enroll/portal"
	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

const portalPassword = "right-password-1"

// fixedAuth accepts portalPassword for any active enterprise of the store;
// behind the real Guard, so lockout and the generic error are the
// enrollment service's own.
type fixedAuth struct{ st *store.SQL }

func (f fixedAuth) Authenticate(ctx context.Context, a enroll.Attempt) (*store.Enterprise, error) {
	e, err := f.st.GetEnterprise(ctx, a.Username)
	if err != nil || a.Password != portalPassword || e.Status != store.StatusActive {
		return nil, zerr.New(zerr.Unauthorized, enroll.GenericLoginError)
	}
	return e, nil
}

type portalEnv struct {
	*svcEnv
	e *echo.Echo
}

func newPortalEnv(t *testing.T, downloads ...string) *portalEnv {
	t.Helper()
	env := newSvcEnv(t, enroll.Policy{})
	o := portal.Options{}
	if len(downloads) > 0 {
		o.DownloadsDir = downloads[0]
	}
	return &portalEnv{svcEnv: env, e: newPortalNode(t, env, env.st, o)}
}

// newPortalNode is one node's portal (its own Guard, Portal and echo) on
// env's enrollment service, keeping its state in st; o adds options.
func newPortalNode(t *testing.T, env *svcEnv, st portal.Store, o portal.Options) *echo.Echo {
	t.Helper()
	g, err := enroll.NewGuard(fixedAuth{st: env.st}, enroll.GuardOptions{Store: env.st, Name: "test", Now: env.clock.Now, PerIPRate: 1000, PerIPBurst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	o.Auth, o.Enroll, o.Store, o.Revocation, o.Now = g, env.svc, st, env.svc.Revoke, env.clock.Now
	p, err := portal.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e := web.New(slog.New(slog.DiscardHandler), "https")
	e.Use(web.SecurityHeaders)
	p.Register(e)
	return e
}

// browser keeps cookies like a browser on one site.
type browser struct {
	t       *testing.T
	e       *echo.Echo
	cookies map[string]*http.Cookie
}

func (pe *portalEnv) browser(t *testing.T) *browser {
	return &browser{t: t, e: pe.e, cookies: map[string]*http.Cookie{}}
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	b.t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	b.e.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return rec
}

func (b *browser) csrf() string {
	if c, ok := b.cookies["__Host-zbca-csrf"]; ok {
		return c.Value
	}
	b.do("GET", "/", nil, nil)
	return b.cookies["__Host-zbca-csrf"].Value
}

func (b *browser) post(path string, form url.Values) *httptest.ResponseRecorder {
	form.Set("csrf", b.csrf())
	return b.do("POST", path, form, nil)
}

func (b *browser) login(user, pw string) *httptest.ResponseRecorder {
	return b.post("/login", url.Values{"username": {user}, "password": {pw}, "next": {"apply"}})
}

func wantBody(t *testing.T, rec *httptest.ResponseRecorder, code int, texts ...string) {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status %d, want %d\n%s", rec.Code, code, rec.Body)
	}
	for _, s := range texts {
		if !strings.Contains(rec.Body.String(), s) {
			t.Errorf("answer lacks %q:\n%s", s, rec.Body)
		}
	}
}

func csrPEM(t *testing.T) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func (pe *portalEnv) certCount(t *testing.T, user string) int {
	list, err := pe.st.ListCertificates(context.Background(), store.CertFilter{Username: user, Profile: store.ProfileClient})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

var inlineScript = regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`)

func TestPortalPagesHeadersAndLanguage(t *testing.T) {
	pe := newPortalEnv(t)
	b := pe.browser(t)
	for _, p := range []struct{ path, zh, en string }{
		{"/", "申请证书", "Apply"},
		{"/download", "SHA-256 指纹", "SHA-256 fingerprint"},
		{"/help", "zbcert doctor", "zbcert doctor"},
		{"/apply", "企业用户登录", "Enterprise login"},
		{"/revoke", "废除证书", "Revoke a certificate"},
		{"/nope", "页面不存在", "No such page"},
	} {
		for _, lang := range []string{"zh", "en"} {
			rec := b.do("GET", p.path+"?lang="+lang, nil, nil)
			want, code := p.zh, http.StatusOK
			if lang == "en" {
				want = p.en
			}
			if p.path == "/nope" {
				code = http.StatusNotFound
			}
			wantBody(t, rec, code, want)
			h := rec.Header()
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("%s CSP %q", p.path, csp)
			}
			if h.Get("Strict-Transport-Security") == "" || h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("%s headers %v", p.path, h)
			}
			if inlineScript.MatchString(rec.Body.String()) {
				t.Errorf("%s has an inline script", p.path)
			}
		}
	}
	// The language is remembered; zh-CN is the default for a new visitor.
	if rec := b.do("GET", "/", nil, nil); !strings.Contains(rec.Body.String(), `lang="zh-CN"`) {
		t.Errorf("after ?lang=zh: not Chinese")
	}
	b.do("GET", "/?lang=en", nil, nil)
	if rec := b.do("GET", "/help", nil, nil); !strings.Contains(rec.Body.String(), `lang="en"`) {
		t.Errorf("language cookie not honoured")
	}
	if rec := pe.browser(t).do("GET", "/", nil, nil); !strings.Contains(rec.Body.String(), `lang="zh-CN"`) {
		t.Errorf("default is not Chinese")
	}
	// The API's 404 stays JSON.
	if rec := b.do("GET", "/api/v1/nothing", nil, nil); rec.Code != 404 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Errorf("API 404: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := b.do("GET", "/static/app.js", nil, nil); rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
		t.Errorf("app.js: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestPortalCSRF(t *testing.T) {
	pe := newPortalEnv(t)
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
		fn   func(b *browser)
	}{
		{name: "no token", form: url.Values{"username": {"alpha"}, "password": {portalPassword}}},
		{name: "wrong token", form: url.Values{"csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "username": {"alpha"}, "password": {portalPassword}}},
		{name: "no cookie", form: url.Values{"username": {"alpha"}, "password": {portalPassword}}, fn: func(b *browser) {
			b.cookies = map[string]*http.Cookie{}
		}},
		{name: "foreign origin", hdr: map[string]string{"Origin": "https://evil.example"}, form: url.Values{"username": {"alpha"}, "password": {portalPassword}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := pe.browser(t)
			tok := b.csrf()
			if tc.name == "no cookie" || tc.name == "foreign origin" {
				tc.form.Set("csrf", tok)
			}
			if tc.fn != nil {
				tc.fn(b)
			}
			rec := b.do("POST", "/login", tc.form, tc.hdr)
			wantBody(t, rec, http.StatusForbidden, "页面已过期")
			if _, ok := b.cookies["__Host-zbca-session"]; ok {
				t.Error("a session was started")
			}
		})
	}
	// Every form of the portal is behind the check.
	b := pe.browser(t)
	for _, path := range []string{"/apply", "/keygen", "/revoke", "/revoke/confirm", "/logout"} {
		if rec := b.do("POST", path, url.Values{}, nil); rec.Code != http.StatusForbidden {
			t.Errorf("POST %s without token: %d", path, rec.Code)
		}
	}
}

func TestPortalLogin(t *testing.T) {
	pe := newPortalEnv(t)
	b := pe.browser(t)
	// Wrong password and unknown account: the one generic error.
	wantBody(t, b.login("alpha", "wrong-password"), http.StatusUnauthorized, "用户名或口令错误")
	wantBody(t, b.login("nobody", "wrong-password"), http.StatusUnauthorized, "用户名或口令错误")
	wantBody(t, b.login("gamma", portalPassword), http.StatusUnauthorized, "用户名或口令错误") // disabled
	b.do("GET", "/?lang=en", nil, nil)
	wantBody(t, b.login("alpha", "wrong-password"), http.StatusUnauthorized, "wrong username or password")
	// The lockout of the enrollment service: after 5 failures even the
	// right password is refused.
	for range 3 {
		b.login("alpha", "wrong-password")
	}
	wantBody(t, b.login("alpha", portalPassword), http.StatusUnauthorized, "too many failed logins")
	if _, ok := b.cookies["__Host-zbca-session"]; ok {
		t.Fatal("a locked account got a session")
	}
	// A good login: a strict, short session cookie and a redirect.
	b2 := pe.browser(t)
	rec := b2.login("beta", portalPassword)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/apply" {
		t.Fatalf("login: %d %v", rec.Code, rec.Header())
	}
	c := b2.cookies["__Host-zbca-session"]
	if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.MaxAge != 600 || c.Path != "/" {
		t.Fatalf("session cookie %+v", c)
	}
	wantBody(t, b2.do("GET", "/apply", nil, nil), http.StatusOK, "gen-form", "beta")
	// Logout ends it on the server too.
	old := *c
	b2.post("/logout", url.Values{})
	b2.cookies[old.Name] = &old
	wantBody(t, b2.do("GET", "/certificates", nil, nil), http.StatusOK, "企业用户登录")
}

// TestPortalSessionsAcrossNodes: a session started on one node is good on
// another node on the same store, and a logout on that node ends it on
// the first; sessions expire after the TTL on every node.
func TestPortalSessionsAcrossNodes(t *testing.T) {
	pe := newPortalEnv(t)
	other := newPortalNode(t, pe.svcEnv, pe.st, portal.Options{})
	b := pe.browser(t)
	if rec := b.login("alpha", portalPassword); rec.Code != http.StatusSeeOther {
		t.Fatalf("login: %d", rec.Code)
	}
	session := *b.cookies["__Host-zbca-session"]
	b.e = other
	wantBody(t, b.do("GET", "/apply", nil, nil), http.StatusOK, "gen-form", "alpha")
	b.post("/logout", url.Values{})
	// The first node, with the cookie kept: logged out there too.
	b.e = pe.e
	b.cookies[session.Name] = &session
	wantBody(t, b.do("GET", "/certificates", nil, nil), http.StatusOK, "企业用户登录")

	// Expiry: good until the TTL on the other node, then gone.
	b.login("beta", portalPassword)
	b.e = other
	pe.clock.Add(10*time.Minute - time.Second)
	wantBody(t, b.do("GET", "/apply", nil, nil), http.StatusOK, "gen-form", "beta")
	pe.clock.Add(time.Second)
	wantBody(t, b.do("GET", "/certificates", nil, nil), http.StatusOK, "企业用户登录")
}

// failingSessions is the real store whose session calls fail on demand.
type failingSessions struct {
	portal.Store
	fail bool
}

var errDatabaseDown = errors.New("database down")

func (f *failingSessions) CreateSession(ctx context.Context, token, username string, epoch int64, expires time.Time) error {
	if f.fail {
		return errDatabaseDown
	}
	return f.Store.CreateSession(ctx, token, username, epoch, expires)
}

func (f *failingSessions) Session(ctx context.Context, token string, now time.Time) (string, int64, bool, error) {
	if f.fail {
		return "", 0, false, errDatabaseDown
	}
	return f.Store.Session(ctx, token, now)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPortalSessionStoreDown: a session that cannot be started is an error
// page and no cookie; a session that cannot be read is "not logged in"
// (the login form), with a warning, not an error page.
func TestPortalSessionStoreDown(t *testing.T) {
	env := newSvcEnv(t, enroll.Policy{})
	st := &failingSessions{Store: env.st}
	var logs syncBuffer
	e := newPortalNode(t, env, st, portal.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	b := &browser{t: t, e: e, cookies: map[string]*http.Cookie{}}
	st.fail = true
	wantBody(t, b.login("alpha", portalPassword), http.StatusInternalServerError)
	if _, ok := b.cookies["__Host-zbca-session"]; ok {
		t.Fatal("a session cookie without a session")
	}
	st.fail = false
	if rec := b.login("alpha", portalPassword); rec.Code != http.StatusSeeOther {
		t.Fatalf("login: %d", rec.Code)
	}
	st.fail = true
	wantBody(t, b.do("GET", "/certificates", nil, nil), http.StatusOK, "企业用户登录")
	if !strings.Contains(logs.String(), "reading portal session") || !strings.Contains(logs.String(), "database down") {
		t.Errorf("no warning logged:\n%s", logs.String())
	}
	st.fail = false
	wantBody(t, b.do("GET", "/certificates", nil, nil), http.StatusOK, "alpha")
}

func TestPortalPastedCSR(t *testing.T) {
	pe := newPortalEnv(t)
	b := pe.browser(t)
	b.login("alpha", portalPassword)
	for _, tc := range []struct {
		name, csr string
		code      int
		want      string
	}{
		{"empty", "  ", 400, "请粘贴证书请求"},
		{"garbage", "hello", 400, "证书请求无效"},
		{"bad PEM", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", 400, "malformed CSR"},
		{"a certificate", "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n", 400, "want CERTIFICATE REQUEST"},
		{"oversized", "-----BEGIN CERTIFICATE REQUEST-----\n" + strings.Repeat("QUFB\n", 14000) + "-----END CERTIFICATE REQUEST-----\n", 400, "larger than"},
		{"far too large", strings.Repeat("A", 200<<10), 413, "提交的内容过大"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantBody(t, b.post("/apply", url.Values{"csr": {tc.csr}}), tc.code, tc.want)
			if n := pe.certCount(t, "alpha"); n != 0 {
				t.Fatalf("%d certificates after a refused CSR", n)
			}
		})
	}
	// The page script's request: JSON both ways.
	rec := b.do("POST", "/apply", url.Values{"csrf": {b.csrf()}, "csr": {"junk"}}, map[string]string{"Accept": "application/json"})
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Fatalf("JSON refusal: %d %s", rec.Code, rec.Body)
	}
	rec = b.do("POST", "/apply", url.Values{"csrf": {b.csrf()}, "csr": {csrPEM(t)}}, map[string]string{"Accept": "application/json"})
	var got struct {
		Serial      string   `json:"serial"`
		Certificate string   `json:"certificate"`
		Chain       []string `json:"chain"`
	}
	if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &got) != nil || got.Serial == "" || len(got.Chain) != 2 {
		t.Fatalf("JSON issuance: %d %s", rec.Code, rec.Body)
	}
	// A pasted CSR as a form: the page with the PEM chain; the first
	// certificate is superseded.
	wantBody(t, b.post("/apply", url.Values{"csr": {csrPEM(t)}}), http.StatusCreated, "BEGIN CERTIFICATE", got.Serial)
	if n := pe.certCount(t, "alpha"); n != 2 {
		t.Fatalf("%d certificates, want 2", n)
	}
	// Without a session nothing is issued.
	anon := pe.browser(t)
	wantBody(t, anon.post("/apply", url.Values{"csr": {csrPEM(t)}}), http.StatusUnauthorized, "登录已超时")
	if n := pe.certCount(t, "alpha"); n != 2 {
		t.Fatalf("%d certificates, want 2", n)
	}
}

func TestPortalCertificatesAndRevoke(t *testing.T) {
	pe := newPortalEnv(t)
	iss := pe.issue(t, "alpha")
	b := pe.browser(t)
	b.login("alpha", portalPassword)
	wantBody(t, b.do("GET", "/certificates", nil, nil), http.StatusOK, iss.Record.Serial, "有效", "1095")
	// Another enterprise's serial is not offered and not accepted.
	other := pe.issue(t, "beta")
	wantBody(t, b.post("/revoke", url.Values{"serial": {other.Record.Serial}, "reason": {"keyCompromise"}}), http.StatusBadRequest, "请从列表中选择")
	wantBody(t, b.post("/revoke", url.Values{"serial": {iss.Record.Serial}, "reason": {"cACompromise"}}), http.StatusBadRequest, "may not be chosen")
	// Step one shows what will be revoked; nothing is revoked yet.
	wantBody(t, b.post("/revoke", url.Values{"serial": {"all"}, "reason": {"keyCompromise"}}), http.StatusOK, "确认废除证书", iss.Record.Serial)
	st, err := pe.st.CertStatus(context.Background(), iss.Record.Serial)
	if err != nil || st.Status != store.CertActive {
		t.Fatalf("revoked before confirmation: %+v %v", st, err)
	}
	wantBody(t, b.post("/revoke/confirm", url.Values{"serial": {"all"}, "reason": {"keyCompromise"}}), http.StatusOK, "已废除 1 张证书")
	for serial, want := range map[string]string{iss.Record.Serial: store.CertRevoked, other.Record.Serial: store.CertActive} {
		st, err := pe.st.CertStatus(context.Background(), serial)
		if err != nil || st.Status != want {
			t.Fatalf("%s: %+v %v, want %s", serial, st, err, want)
		}
	}
	wantBody(t, b.do("GET", "/revoke", nil, nil), http.StatusOK, "没有有效的证书")
}

func TestPortalKeygen(t *testing.T) {
	pe := newPortalEnv(t)
	b := pe.browser(t)
	b.login("alpha", portalPassword)
	form := func(os, pw string) url.Values {
		return url.Values{"os": {os}, "keytype": {"EC-P256"}, "p12_password": {pw}, "p12_password2": {pw}}
	}
	// Off by default.
	wantBody(t, b.do("GET", "/keygen", nil, nil), http.StatusOK, "未开通")
	wantBody(t, b.post("/keygen", form("windows", "Good-Passw0rd-x")), http.StatusForbidden, "未开通")
	if err := pe.st.SetServerKeygen(context.Background(), "alpha", true, store.AuditEvent{Actor: "test", Action: "enterprise.set"}); err != nil {
		t.Fatal(err)
	}
	wantBody(t, b.post("/keygen", form("windows", "short")), http.StatusBadRequest, "口令太弱")
	wantBody(t, b.post("/keygen", form("windows", "密码密码密码密码密码密码")), http.StatusBadRequest, "口令太弱")
	wantBody(t, b.post("/keygen", form("beos", "Good-Passw0rd-x")), http.StatusBadRequest, "请从列表中选择")
	if n := pe.certCount(t, "alpha"); n != 0 {
		t.Fatalf("%d certificates after refusals", n)
	}
	for _, os := range []string{"windows", "macos"} {
		rec := b.post("/keygen", form(os, "Good-Passw0rd-x"))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-pkcs12" || !strings.Contains(rec.Header().Get("Content-Disposition"), `alpha.p12`) {
			t.Fatalf("%s: %d %v", os, rec.Code, rec.Header())
		}
		key, cert, chain, err := pkcs12.DecodeChain(rec.Body.Bytes(), "Good-Passw0rd-x")
		if err != nil {
			t.Fatalf("%s: %v", os, err)
		}
		if !key.(*ecdsa.PrivateKey).PublicKey.Equal(cert.PublicKey) || len(chain) != 2 || cert.Subject.CommonName != "alpha" {
			t.Fatalf("%s: key/cert mismatch or chain %d", os, len(chain))
		}
	}
}

func TestPortalDownloads(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "zbcert-linux-amd64"), []byte("binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	pe := newPortalEnv(t, dir)
	b := pe.browser(t)
	wantBody(t, b.do("GET", "/download", nil, nil), http.StatusOK, "zbcert-linux-amd64",
		"/download/zbcert/zbcert-linux-amd64")
	rec := b.do("GET", "/download/zbcert/zbcert-linux-amd64", nil, nil)
	if rec.Code != 200 || rec.Body.String() != "binary" || !strings.Contains(rec.Header().Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
	for _, bad := range []string{"/download/zbcert/sub", "/download/zbcert/..%2fzbca.db", "/download/zbcert/nothing"} {
		if rec := b.do("GET", bad, nil, nil); rec.Code != http.StatusNotFound {
			t.Errorf("%s: %d", bad, rec.Code)
		}
	}
	// The page shows each file's SHA-256, computed once and again only
	// when the file's size or time changes (not read and hashed at every
	// page view): same size and time but other octets still show the
	// remembered sum.
	path := filepath.Join(dir, "zbcert-linux-amd64")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("binary"))
	wantBody(t, b.do("GET", "/download", nil, nil), http.StatusOK, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(path, []byte("BINARY"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, info.ModTime(), info.ModTime())
	wantBody(t, b.do("GET", "/download", nil, nil), http.StatusOK, hex.EncodeToString(sum[:]))
	later := info.ModTime().Add(time.Hour)
	os.Chtimes(path, later, later)
	sum2 := sha256.Sum256([]byte("BINARY"))
	wantBody(t, b.do("GET", "/download", nil, nil), http.StatusOK, hex.EncodeToString(sum2[:]))
	// Without the directory the page says so.
	wantBody(t, pe.browser(t).do("GET", "/download", nil, nil), http.StatusOK)
	wantBody(t, newPortalEnv(t).browser(t).do("GET", "/download", nil, nil), http.StatusOK, "尚未提供 zbcert")
}
