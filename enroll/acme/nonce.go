package acme

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// nonces issues single-use, expiring anti-replay nonces (RFC 8555 §6.5).
// They live in this process's memory; a nonce from another node is
// answered badNonce with a fresh one, which clients retry. Every nonce has
// the same lifetime, so issue order is expiry order: a FIFO queue drops the
// expired (and, when full, the oldest) in constant time per nonce.
type nonces struct {
	mu    sync.Mutex
	m     map[string]time.Time
	queue []string
	head  int
	ttl   time.Duration
	max   int
	now   func() time.Time
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
	for n.head < len(n.queue) {
		old := n.queue[n.head]
		exp, live := n.m[old]
		if live && now.Before(exp) && len(n.queue)-n.head < n.max {
			break
		}
		delete(n.m, old)
		n.queue[n.head] = ""
		n.head++
	}
	if n.head > 1024 && n.head > len(n.queue)/2 {
		n.queue = append(n.queue[:0], n.queue[n.head:]...)
		n.head = 0
	}
	n.m[s] = now.Add(n.ttl)
	n.queue = append(n.queue, s)
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
