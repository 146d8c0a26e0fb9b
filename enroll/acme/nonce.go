package acme

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// nonces issues single-use, expiring anti-replay nonces (RFC 8555 §6.5).
// They live in this process's memory; a nonce from another node is
// answered badNonce with a fresh one, which clients retry.
type nonces struct {
	mu   sync.Mutex
	m    map[string]time.Time
	ttl  time.Duration
	max  int
	now  func() time.Time
	last time.Time
}

func newNonces(ttl time.Duration, max int, now func() time.Time) *nonces {
	return &nonces{m: make(map[string]time.Time), ttl: ttl, max: max, now: now}
}

func (n *nonces) make() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	s := base64.RawURLEncoding.EncodeToString(b)
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.m) >= n.max || now.Sub(n.last) > n.ttl {
		for k, exp := range n.m {
			if now.After(exp) {
				delete(n.m, k)
			}
		}
		n.last = now
		// Still full of live nonces: drop an arbitrary one (its client
		// gets badNonce and retries).
		for k := range n.m {
			if len(n.m) < n.max {
				break
			}
			delete(n.m, k)
		}
	}
	n.m[s] = now.Add(n.ttl)
	return s
}

// use consumes a nonce; false if unknown, used or expired.
func (n *nonces) use(s string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	exp, ok := n.m[s]
	if !ok {
		return false
	}
	delete(n.m, s)
	return n.now().Before(exp)
}
