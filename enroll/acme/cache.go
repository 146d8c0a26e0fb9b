package acme

import (
	"context"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"github.com/zbca/zbca/store"
)

// accountCache reads an account on every request and keeps only what
// never goes stale: the parsed key of each JWK text it has seen, so that a
// request signed by kid costs one indexed read and no JSON key parsing.
//
// The account row is read every time because it carries what must count
// at once on every node: the account's status, its enterprise's status and
// credential epoch (store.ACMEAccount.Current). A key change writes a new
// JWK text, which simply misses the key map. Safe for concurrent use.
type accountCache struct {
	load func(ctx context.Context, id string) (*store.ACMEAccount, error)
	max  int

	mu   sync.Mutex
	keys map[string]*jose.JSONWebKey // by JWK text; read-only once stored
}

func newAccountCache(load func(ctx context.Context, id string) (*store.ACMEAccount, error), max int) *accountCache {
	return &accountCache{load: load, max: max, keys: make(map[string]*jose.JSONWebKey)}
}

// get returns the account as stored now and its key. A missing account is
// the loader's error (zerr.NotFound).
func (c *accountCache) get(ctx context.Context, id string) (*store.ACMEAccount, *jose.JSONWebKey, error) {
	a, err := c.load(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	k, ok := c.keys[a.JWK]
	c.mu.Unlock()
	if ok {
		return a, k, nil
	}
	k = new(jose.JSONWebKey)
	if err := k.UnmarshalJSON([]byte(a.JWK)); err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	if len(c.keys) >= c.max {
		for old := range c.keys { // any one
			delete(c.keys, old)
			break
		}
	}
	c.keys[a.JWK] = k
	c.mu.Unlock()
	return a, k, nil
}

// issuedCache keeps the certificates this process issued most recently, for
// the download that follows a finalize (RFC 8555 §7.4.2) without a database
// read. A certificate and its enterprise never change once stored. Safe for
// concurrent use.
type issuedCache struct {
	mu   sync.Mutex
	m    map[string]issuedCert
	ring []string // serials, oldest first from next
	next int
}

type issuedCert struct {
	enterpriseID int64
	der          []byte
}

func newIssuedCache(n int) *issuedCache {
	return &issuedCache{m: make(map[string]issuedCert, n), ring: make([]string, n)}
}

func (c *issuedCache) put(serial string, enterpriseID int64, der []byte) {
	if len(c.ring) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[serial]; ok {
		return
	}
	delete(c.m, c.ring[c.next])
	c.ring[c.next] = serial
	c.next = (c.next + 1) % len(c.ring)
	c.m[serial] = issuedCert{enterpriseID: enterpriseID, der: der}
}

func (c *issuedCache) get(serial string) (issuedCert, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ic, ok := c.m[serial]
	return ic, ok
}
