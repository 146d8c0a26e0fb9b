package acme_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/enroll/acme"
	"github.com/zbca/zbca/store"
)

// otherNode is a second ACME server on its own store.Open of e's database,
// as another node behind the load balancer; it shares e's client, clock
// and enrollment service.
func (e *testEnv) otherNode(t *testing.T) *testEnv {
	t.Helper()
	var path string
	if err := e.db.QueryRow(`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := acme.New(acme.Options{Store: st, Enroll: e.es, Revocation: e.es.Revoke, Issuers: e.auth.IssuingCerts(), Now: e.clock.Now})
	n := *e
	n.st = st
	n.e = echo.New()
	srv.Register(n.e)
	n.srv = httptest.NewTLSServer(n.e)
	t.Cleanup(n.srv.Close)
	n.base = n.srv.URL
	return &n
}

// newOrderBody is a newOrder request of acct, signed for node n.
func newOrderBody(t *testing.T, n *testEnv, acct *key, acctBase, nonce string) []byte {
	t.Helper()
	order := marshalPayload(t, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}})
	kid := n.base + strings.TrimPrefix(acct.kid, acctBase)
	return signJWS(t, acct.alg, acct.signer, hdr{nonce: nonce, url: n.url("/acme/new-order"), kid: kid}, order)
}

// TestNonceAcrossNodes: a nonce from one node is good once on another, and
// then used on both (RFC 8555 §6.5: badNonce with a fresh nonce).
func TestNonceAcrossNodes(t *testing.T) {
	a := newTestEnv(t, enroll.Policy{})
	b := a.otherNode(t)
	acct := a.account(t, "alpha")
	n := a.nonce(t)
	wantStatus(t, b.postJOSE(t, b.url("/acme/new-order"), newOrderBody(t, b, acct, a.base, n)), http.StatusCreated)
	before := a.count(t)
	for _, node := range []*testEnv{a, b} {
		r := node.postJOSE(t, node.url("/acme/new-order"), newOrderBody(t, node, acct, a.base, n))
		wantProblem(t, r, http.StatusBadRequest, "badNonce")
		if fresh := r.header.Get("Replay-Nonce"); fresh == "" || fresh == n {
			t.Fatalf("badNonce answer with nonce %q", fresh)
		}
	}
	a.unchanged(t, before)
	// The fresh nonce of one node's error answer works on the other.
	r := b.postJOSE(t, b.url("/acme/new-order"), newOrderBody(t, b, acct, a.base, n))
	wantStatus(t, a.postJOSE(t, a.url("/acme/new-order"), newOrderBody(t, a, acct, a.base, r.header.Get("Replay-Nonce"))), http.StatusCreated)
}

// TestNonceForgedOrGarbage: nonces that are not exactly one this cluster
// made are badNonce with a fresh nonce, and trying them does not use up
// the nonce they were made from.
func TestNonceForgedOrGarbage(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	acct := e.account(t, "alpha")
	good := e.nonce(t)
	raw, err := base64.RawURLEncoding.DecodeString(good)
	if err != nil || len(raw) != 36 {
		t.Fatalf("nonce %q is not 36 bytes of base64url", good)
	}
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return base64.RawURLEncoding.EncodeToString(b)
	}
	// A well-formed nonce with a MAC under another key (another cluster's).
	otherKey := make([]byte, 32)
	rand.Read(otherKey)
	foreign := make([]byte, 36)
	binary.BigEndian.PutUint64(foreign, uint64(time.Now().Add(5*time.Minute).Unix()))
	rand.Read(foreign[8:20])
	m := hmac.New(sha256.New, otherKey)
	m.Write(foreign[:20])
	copy(foreign[20:], m.Sum(nil))
	for name, n := range map[string]string{
		"later expiry":      flip(7),
		"other random":      flip(10),
		"other MAC":         flip(35),
		"another key":       base64.RawURLEncoding.EncodeToString(foreign),
		"short":             good[:47],
		"long":              good + "A",
		"line break":        good[:20] + "\n" + good[21:],
		"padded":            base64.URLEncoding.EncodeToString(raw[:35]),
		"not base64":        strings.Repeat("!", 48),
		"zeros":             strings.Repeat("A", 48),
		"old random format": "AAAAAAAAAAAAAAAAAAAAAA",
		"huge":              strings.Repeat("A", 4096),
	} {
		t.Run(name, func(t *testing.T) {
			before := e.count(t)
			r := e.postJOSE(t, e.url("/acme/new-order"), newOrderBody(t, e, acct, e.base, n))
			wantProblem(t, r, http.StatusBadRequest, "badNonce")
			if r.header.Get("Replay-Nonce") == "" {
				t.Fatal("badNonce without a fresh nonce")
			}
			e.unchanged(t, before)
		})
	}
	wantStatus(t, e.postJOSE(t, e.url("/acme/new-order"), newOrderBody(t, e, acct, e.base, good)), http.StatusCreated)
}

// TestNonceStorage: issuing nonces writes nothing; used ones are kept
// until well after they expire, then pruned.
func TestNonceStorage(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	acct := e.account(t, "alpha") // uses some nonces
	used := func() int {
		t.Helper()
		var n int
		if err := e.db.QueryRow(`SELECT COUNT(*) FROM acme_used_nonces`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	start := used()
	for range 50 {
		e.nonce(t)
	}
	if n := used(); n != start {
		t.Fatalf("issuing nonces wrote %d rows", n-start)
	}
	var secrets int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM cluster_secrets`).Scan(&secrets); err != nil || secrets != 1 {
		t.Fatalf("%d cluster secrets (%v), want the nonce key", secrets, err)
	}
	wantStatus(t, e.postJOSE(t, e.url("/acme/new-order"), newOrderBody(t, e, acct, e.base, e.nonce(t))), http.StatusCreated)
	if n := used(); n != start+1 {
		t.Fatalf("%d used nonces recorded, want %d", n, start+1)
	}
	// 10 minutes of life, kept 5 more for other nodes' clocks: after 16
	// minutes the janitor prunes them all but the one used then.
	e.clock.Add(16 * time.Minute)
	wantStatus(t, e.postJOSE(t, e.url("/acme/new-order"), newOrderBody(t, e, acct, e.base, e.nonce(t))), http.StatusCreated)
	if n := used(); n != start+2 {
		t.Fatalf("%d used nonces before pruning, want %d: nothing prunes on the request path", n, start+2)
	}
	if _, err := e.acme.Prune(context.Background(), e.st); err != nil {
		t.Fatal(err)
	}
	if n := used(); n != 1 {
		t.Fatalf("%d used nonces after they expired, want 1", n)
	}
}
