package verify

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/internal/zerr"
)

// MaxBody bounds a POST /api/v1/verify body; larger ones get 413.
const MaxBody = 64 << 10

// maxUsername bounds the claimed username (account usernames are shorter).
const maxUsername = 256

// HandlerOptions configures NewHandler.
type HandlerOptions struct {
	// CertHeader carries nginx's $ssl_client_escaped_cert; UserHeader the
	// username logging in (config verify.nginx_cert_header and
	// nginx_user_header).
	CertHeader string
	UserHeader string
}

// Handler serves the verification API on the HTTPS listener.
type Handler struct {
	svc        *Service
	certHeader string
	userHeader string
}

// NewHandler returns the HTTP face of s.
func NewHandler(s *Service, o HandlerOptions) *Handler {
	if o.CertHeader == "" {
		o.CertHeader = "X-SSL-Client-Cert"
	}
	if o.UserHeader == "" {
		o.UserHeader = "X-ZBCA-Username"
	}
	return &Handler{svc: s, certHeader: o.CertHeader, userHeader: o.UserHeader}
}

// Register mounts POST /api/v1/verify and GET /api/v1/verify/nginx.
func (h *Handler) Register(e *echo.Echo) {
	e.POST("/api/v1/verify", h.verify)
	e.GET("/api/v1/verify/nginx", h.nginx)
}

// authenticate reads the API key from "Authorization: Bearer <key>" or
// "X-API-Key: <key>".
func (h *Handler) authenticate(c echo.Context) error {
	r := c.Request()
	// net/http gives canonical keys: the map is read directly.
	key := first(r.Header["X-Api-Key"])
	if a := first(r.Header[echo.HeaderAuthorization]); a != "" {
		scheme, token, ok := strings.Cut(a, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return h.unauthorized(c)
		}
		key = strings.TrimSpace(token)
	}
	if _, err := h.svc.Authenticate(r.Context(), key); err != nil {
		if zerr.KindOf(err) == zerr.Unauthorized {
			return h.unauthorized(c)
		}
		return err
	}
	return nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (h *Handler) unauthorized(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="zbca verify"`)
	return errBadKey
}

type request struct {
	Certificate string `json:"certificate"`
	Username    string `json:"username"`
}

var (
	noStore  = []string{"no-store"}
	jsonType = []string{echo.MIMEApplicationJSON}
)

// bufs holds request and answer buffers between requests.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// verify: POST /api/v1/verify {"certificate", "username"} → Answer.
func (h *Handler) verify(c echo.Context) error {
	if err := h.authenticate(c); err != nil {
		return err
	}
	r := c.Request()
	if r.ContentLength > MaxBody {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "request body larger than 64 KB")
	}
	bp := bufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 16<<10 { // a 413's buffer is not kept
			bufs.Put(bp)
		}
	}()
	body, err := readBody(r.Body, (*bp)[:0])
	*bp = body[:0]
	if err != nil {
		return err
	}
	// The fast reader unescapes in place: it reads a copy (in the same
	// pooled buffer), so that the slow one still has the body when the
	// fast one gives up.
	n := len(body)
	body = append(body, body...)
	*bp = body[:0]
	var req Request
	var ok bool
	if req.Certificate, req.Username, ok = decodeRequestFast(body[n:]); !ok {
		j, err := decodeRequest(body[:n])
		if err != nil {
			return err
		}
		req = Request{Certificate: []byte(j.Certificate), Username: j.Username}
	}
	if len(bytes.TrimSpace(req.Certificate)) == 0 {
		return zerr.New(zerr.BadRequest, "certificate is required")
	}
	if err := checkUsername(req.Username); err != nil {
		return err
	}
	a, err := h.svc.Verify(r.Context(), req)
	if err != nil {
		return err
	}
	out := a.appendJSON(body[:0])
	*bp = out[:0]
	// Assigned, not Set: canonical keys and shared values (net/http only
	// reads them).
	w := c.Response()
	hd := w.Header()
	hd[echo.HeaderCacheControl] = noStore
	hd[echo.HeaderContentType] = jsonType
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(out)
	return err
}

// readBody reads at most MaxBody bytes into buf; more is a 413.
func readBody(rd io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > MaxBody {
			return buf, echo.NewHTTPError(http.StatusRequestEntityTooLarge, "request body larger than 64 KB")
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, zerr.Wrap(zerr.BadRequest, err, "reading request body")
		}
	}
}

// decodeRequest is the strict, slow reader, for what decodeRequestFast
// does not take: it gives the caller encoding/json's precise error.
func decodeRequest(body []byte) (request, error) {
	var req request
	if err := web.DecodeJSON(body, &req); err != nil {
		return req, zerr.Wrap(zerr.BadRequest, err, "malformed JSON: want {\"certificate\": \"<PEM or base64 DER>\", \"username\": \"<optional>\"}")
	}
	return req, nil
}

func checkUsername(u string) error {
	if len(u) > maxUsername || !utf8.ValidString(u) {
		return zerr.New(zerr.BadRequest, "username: not valid UTF-8 or longer than %d bytes", maxUsername)
	}
	return nil
}

// nginx: GET /api/v1/verify/nginx for nginx's auth_request. The
// certificate comes URL-escaped in the CertHeader ($ssl_client_escaped_cert),
// the username in UserHeader. 200 for valid and expiring, 403 otherwise;
// the X-ZBCA-* headers say why, the body is the message for the user.
func (h *Handler) nginx(c echo.Context) error {
	if err := h.authenticate(c); err != nil {
		return err
	}
	r := c.Request()
	raw := r.Header.Get(h.certHeader)
	pemText, err := url.PathUnescape(raw)
	if err != nil {
		pemText = "" // answered malformed below
	}
	user := r.Header.Get(h.userHeader)
	if err := checkUsername(user); err != nil {
		return err
	}
	a, err := h.svc.Verify(r.Context(), Request{Certificate: []byte(pemText), Username: user})
	if err != nil {
		return err
	}
	hd := c.Response().Header()
	hd.Set(echo.HeaderCacheControl, "no-store")
	hd.Set("X-ZBCA-Result", string(a.Result))
	if a.Enterprise != nil {
		hd.Set("X-ZBCA-Enterprise", url.PathEscape(a.Enterprise.Username))
		hd.Set("X-ZBCA-Enterprise-Name", url.PathEscape(a.Enterprise.Name))
		hd.Set("X-ZBCA-Enterprise-ID", url.PathEscape(a.Enterprise.ID))
		hd.Set("X-ZBCA-Serial", a.Serial)
		hd.Set("X-ZBCA-Not-After", a.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))
		hd.Set("X-ZBCA-Days-Left", strconv.Itoa(*a.DaysLeft))
	}
	status := http.StatusOK
	if !a.Valid {
		status = http.StatusForbidden
	}
	return c.String(status, a.Message.ZH+"\n"+a.Message.EN+"\n")
}
