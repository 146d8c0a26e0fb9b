package revocation

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/internal/ocspder"
)

// MaxOCSPRequest bounds a POST body and a decoded GET request.
const MaxOCSPRequest = 10 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// ServeHTTP answers GET /ocsp/<base64 request> and POST /ocsp (RFC 6960
// Appendix A, RFC 5019 §5). Per-request logging is left to debug level.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var der []byte
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		var ok bool
		if der, ok = decodeGETPath(req.URL.EscapedPath()); !ok {
			r.Stats.Malformed.Add(1)
			r.writeOCSP(w, ocspder.MalformedRequest, nil)
			return
		}
	case http.MethodPost:
		// RFC 6960 A.1.1: application/ocsp-request; tolerate a missing
		// type, refuse a wrong one.
		if ct := req.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/ocsp-request") {
			http.Error(w, "Content-Type must be application/ocsp-request", http.StatusUnsupportedMediaType)
			return
		}
		b, err := io.ReadAll(io.LimitReader(req.Body, MaxOCSPRequest+1))
		if err != nil || len(b) > MaxOCSPRequest {
			r.Stats.Malformed.Add(1)
			w.Header().Set("Connection", "close")
			r.writeOCSP(w, ocspder.MalformedRequest, nil)
			return
		}
		der = b
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	parsed, err := ocspder.ParseRequest(der)
	if err != nil {
		r.Stats.Malformed.Add(1)
		r.writeOCSP(w, ocspder.MalformedRequest, nil)
		return
	}
	bp := bufPool.Get().(*[]byte)
	a := r.Respond(parsed, (*bp)[:0])
	r.writeOCSP(w, a.DER, &a)
	*bp = a.DER[:0]
	if cap(*bp) <= 8192 {
		bufPool.Put(bp)
	}
}

// writeOCSP writes an OCSP response with RFC 5019 §6 caching headers;
// max-age counts from the responder's clock, as thisUpdate does.
func (r *Responder) writeOCSP(w http.ResponseWriter, der []byte, a *Answer) {
	h := w.Header()
	h["Content-Type"] = ctOCSP
	if a != nil && a.Cacheable {
		maxAge := max(a.NextUpdate.Unix()-r.o.Now().Unix(), 0)
		h["Cache-Control"] = headerCache.get(cacheControl, maxAge)
		h["Last-Modified"] = headerCache.get(httpDate, a.ThisUpdate.Unix())
		h["Expires"] = headerCache.get(httpDate, a.NextUpdate.Unix())
		tag := a.ETag
		if tag == 0 {
			f := fnv.New64a()
			f.Write(der)
			tag = f.Sum64()
		}
		var etag [18]byte
		etag[0], etag[17] = '"', '"'
		var tb [8]byte
		binary.BigEndian.PutUint64(tb[:], tag)
		hex.Encode(etag[1:17], tb[:])
		h["Etag"] = []string{string(etag[:])}
	} else {
		h["Cache-Control"] = noStore
	}
	h["Content-Length"] = headerCache.get(decimal, int64(len(der)))
	w.WriteHeader(http.StatusOK)
	w.Write(der)
}

// Header values that repeat from one response to the next (dates of the
// same second, the same max-age, the same length) are formatted once.
// net/http only reads them.
const (
	httpDate = iota
	cacheControl
	decimal
	headerKinds
)

type headerValue struct {
	n int64
	v []string
}

type headerValues [headerKinds][1024]atomic.Pointer[headerValue]

var headerCache headerValues

func (c *headerValues) get(kind int, n int64) []string {
	slot := &c[kind][uint64(n)%uint64(len(c[kind]))]
	if hv := slot.Load(); hv != nil && hv.n == n {
		return hv.v
	}
	var s string
	switch kind {
	case httpDate:
		s = time.Unix(n, 0).UTC().Format(http.TimeFormat)
	case cacheControl:
		s = "max-age=" + strconv.FormatInt(n, 10) + ", public, no-transform, must-revalidate"
	default:
		s = strconv.FormatInt(n, 10)
	}
	hv := &headerValue{n: n, v: []string{s}}
	slot.Store(hv)
	return hv.v
}

var (
	ctOCSP  = []string{"application/ocsp-response"}
	noStore = []string{"no-store, max-age=0"}
)

// decodeGETPath extracts the request from "/ocsp/<base64>": percent
// escapes (%2B, %2F, %3D) are undone, a "+" that arrived as a space is
// restored, leading slashes ("//") and missing padding are tolerated.
func decodeGETPath(escaped string) ([]byte, bool) {
	p, ok := strings.CutPrefix(strings.TrimLeft(escaped, "/"), "ocsp")
	if !ok {
		return nil, false
	}
	p = strings.TrimLeft(p, "/")
	if p == "" || len(p) > 2*MaxOCSPRequest {
		return nil, false
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' && i+2 < len(p):
			v, err := strconv.ParseUint(p[i+1:i+3], 16, 8)
			if err != nil {
				return nil, false
			}
			c = byte(v)
			i += 2
		case c == '%':
			return nil, false
		}
		if c == ' ' {
			c = '+'
		}
		b.WriteByte(c)
	}
	s := strings.TrimRight(b.String(), "=")
	der, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		// Some clients use the URL-safe alphabet.
		if der, err = base64.RawURLEncoding.DecodeString(s); err != nil {
			return nil, false
		}
	}
	return der, len(der) > 0 && len(der) <= MaxOCSPRequest
}
