package verify

import (
	"sync"
	"time"
)

// cert is what is kept of a parsed and verified certificate: everything
// about it that cannot change. Its status is read from the store at each
// verification.
type cert struct {
	serial     string
	enterprise Enterprise
	notBefore  time.Time
	notAfter   time.Time
}

// certCache is a bounded map from SHA-256 fingerprint to cert with two
// generations: entries are added to the young one; when it holds half of
// the bound, the old one is dropped and the young one becomes old. A hit in
// the old generation moves the entry to the young one, so certificates in
// use survive and the bound holds with O(1) work and no per-entry links
// (an approximation of LRU).
type certCache struct {
	mu         sync.Mutex
	half       int
	young, old map[[32]byte]*cert
}

func newCertCache(size int) *certCache {
	half := max(size/2, 1)
	return &certCache{half: half, young: make(map[[32]byte]*cert), old: map[[32]byte]*cert{}}
}

func (c *certCache) get(fp [32]byte) *cert {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.young[fp]; ok {
		return e
	}
	e, ok := c.old[fp]
	if !ok {
		return nil
	}
	delete(c.old, fp)
	c.putLocked(fp, e)
	return e
}

func (c *certCache) put(fp [32]byte, e *cert) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(fp, e)
}

func (c *certCache) putLocked(fp [32]byte, e *cert) {
	if len(c.young) >= c.half {
		c.old, c.young = c.young, make(map[[32]byte]*cert, c.half)
	}
	c.young[fp] = e
}

// len returns the number of entries.
func (c *certCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.young) + len(c.old)
}
