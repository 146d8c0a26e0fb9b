package acme

import (
	"context"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/zbca/zbca/store"
)

// accountCache keeps accounts by id with their parsed keys, so that a
// request signed by kid costs no database read.
//
// This process is the only writer of accounts: the handlers that change one
// (update, deactivation, key change) call drop after the write, whether it
// succeeded or not, and before they answer. A generation number keeps a read
// that raced with such a change from putting the old record back. Entries
// also expire after ttl, which bounds how long a change made elsewhere (by
// another process) could go unseen. Safe for concurrent use.
type accountCache struct {
	load func(ctx context.Context, id string) (*store.ACMEAccount, error)
	ttl  time.Duration
	max  int
	now  func() time.Time

	mu  sync.Mutex
	m   map[string]cachedAccount
	gen uint64
}

type cachedAccount struct {
	acct    store.ACMEAccount
	key     *jose.JSONWebKey // read-only once cached
	expires time.Time
}

// get returns a copy of the account (callers change their copy) and its
// key. A missing account is the loader's error (zerr.NotFound), not cached.
func (c *accountCache) get(ctx context.Context, id string) (*store.ACMEAccount, *jose.JSONWebKey, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[id]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		a := e.acct
		return &a, e.key, nil
	}
	a, err := c.load(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	k := new(jose.JSONWebKey)
	if err := k.UnmarshalJSON([]byte(a.JWK)); err != nil {
		return nil, nil, err
	}
	if c.ttl > 0 {
		c.mu.Lock()
		if c.gen == gen {
			if len(c.m) >= c.max {
				for old := range c.m { // any one
					delete(c.m, old)
					break
				}
			}
			c.m[id] = cachedAccount{acct: *a, key: k, expires: now.Add(c.ttl)}
		}
		c.mu.Unlock()
	}
	return a, k, nil
}

// drop forgets an account that was (or may have been) changed.
func (c *accountCache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.gen++
	c.mu.Unlock()
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
