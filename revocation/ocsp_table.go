package revocation

import (
	"sync"

	"github.com/zbca/zbca/internal/ocspder"
)

// The responder keeps one entry per certificate in memory, a million or
// more, for the whole life of the process. The table is built so that the
// garbage collector has nothing to trace in it: keys are fixed-size arrays,
// entries are values in one slice per shard, and the only variable part of
// a pre-signed response, its signature, lives in large byte chunks. The
// rest of the response (CertID, times, status) is rebuilt from the entry at
// each answer, byte for byte as it was signed (ocspder.AppendSigned).

// serialKey is a serial number's magnitude, at most 20 octets (RFC 5280
// §4.1.2.2).
type serialKey struct {
	n uint8
	b [ocspder.MaxSerialLen]byte
}

// keyOf returns the key for a serial magnitude; false when it is empty or
// longer than 20 octets (never one of ours).
func keyOf(serial []byte) (serialKey, bool) {
	var k serialKey
	for len(serial) > 0 && serial[0] == 0 {
		serial = serial[1:]
	}
	if len(serial) == 0 || len(serial) > len(k.b) {
		return k, false
	}
	k.n = uint8(len(serial))
	copy(k.b[:], serial)
	return k, true
}

func (k *serialKey) bytes() []byte { return k.b[:k.n] }

// entry is the responder's view of one certificate and of its pre-signed
// response for a SHA-1 CertID (the RFC 5019 profile, what nginx sends).
// It holds no pointer.
type entry struct {
	revokedAt  int64 // unix nanoseconds (OCSP writes whole seconds)
	thisUpdate int64 // unix seconds; producedAt is thisUpdate + backdate
	nextUpdate int64
	// The signature is chunks[sigChunk][sigOff:sigOff+sigLen] of the
	// shard; sigLen is 0 while the entry is unsigned (after a change, or
	// before the first refresh). sigCap is the slot's size.
	sigOff uint32
	// notAfter is the certificate's, in unix seconds (to 2106), for its
	// grace (ResponderOptions.ExpiredGrace); 0: unknown.
	notAfter uint32
	// gen changes at every write, so that a re-signature made from an
	// older copy is not stored over a newer status.
	gen      uint32
	sigChunk uint16
	sigLen   uint16
	sigCap   uint16
	signer   uint16 // index in Responder.signers
	issuer   int8   // index in Responder.issuers
	status   int8   // ocspder.Good or ocspder.Revoked
	reason   int8
}

// signed reports whether e holds a signature still valid at now.
func (e *entry) signed(now int64) bool { return e.sigLen > 0 && now < e.nextUpdate }

const (
	shards = 256
	// chunkSize is the size of the byte chunks signatures are kept in.
	chunkSize = 64 << 10
)

type shard struct {
	mu     sync.RWMutex
	idx    map[serialKey]uint32 // index in ents
	ents   []entry
	chunks [][]byte
}

// slot returns entry i's signature; the caller holds the lock.
func (sh *shard) sig(e *entry) []byte {
	return sh.chunks[e.sigChunk][e.sigOff : e.sigOff+uint32(e.sigLen)]
}

// setSig stores sig as entry i's signature, in place when it fits its
// slot; the caller holds the write lock.
func (sh *shard) setSig(i uint32, sig []byte) {
	e := &sh.ents[i]
	if len(sig) > int(e.sigCap) {
		need := (len(sig) + 7) &^ 7
		last := len(sh.chunks) - 1
		if last < 0 || len(sh.chunks[last])+need > chunkSize {
			sh.chunks = append(sh.chunks, make([]byte, 0, chunkSize))
			last++
		}
		c := sh.chunks[last]
		e.sigChunk, e.sigOff, e.sigCap = uint16(last), uint32(len(c)), uint16(need)
		sh.chunks[last] = c[:len(c)+need]
	}
	copy(sh.chunks[e.sigChunk][e.sigOff:], sig)
	e.sigLen = uint16(len(sig))
}

// find returns the index of k's entry; the caller holds a lock.
func (sh *shard) find(k serialKey) (uint32, bool) {
	i, ok := sh.idx[k]
	return i, ok
}

// insert adds an unsigned entry for k; the caller holds the write lock and
// has checked that k is absent.
func (sh *shard) insert(k serialKey, e entry) uint32 {
	i := uint32(len(sh.ents))
	e.sigLen, e.sigCap = 0, 0
	sh.ents = append(sh.ents, e)
	sh.idx[k] = i
	return i
}

func (r *Responder) shardOf(k *serialKey) *shard { return &r.shards[k.b[k.n-1]] }

// get returns a copy of k's entry.
func (r *Responder) get(k serialKey) (entry, bool) {
	sh := r.shardOf(&k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i, ok := sh.find(k)
	if !ok {
		return entry{}, false
	}
	return sh.ents[i], true
}

// setStatus records a certificate's status. It reports whether anything
// changed; a change leaves the entry unsigned, so that a response with the
// old status is never served again.
func (r *Responder) setStatus(k serialKey, issuer, status, reason int8, revokedAt int64, notAfter uint32) bool {
	sh := r.shardOf(&k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(k)
	if !ok {
		sh.insert(k, entry{issuer: issuer, status: status, reason: reason, revokedAt: revokedAt, notAfter: notAfter})
		r.count.Add(1)
		return true
	}
	e := &sh.ents[i]
	e.notAfter = notAfter
	if e.issuer == issuer && e.status == status && e.revokedAt == revokedAt && e.reason == reason {
		return false
	}
	// Revocation is final in zbca (no certificateHold): a "good" read
	// before a revocation committed and applied after it (a live lookup
	// racing the feed) must not bring the certificate back.
	if e.status == ocspder.Revoked && status != ocspder.Revoked {
		return false
	}
	e.issuer, e.status, e.reason, e.revokedAt = issuer, status, reason, revokedAt
	e.sigLen, e.thisUpdate, e.nextUpdate = 0, 0, 0
	e.gen++
	return true
}

// store writes e (status, times, signer) and its signature for k. With
// ifGen set, only if the entry is still at generation gen: a refresh must
// not overwrite a revocation recorded while it was signing.
func (r *Responder) store(k serialKey, e entry, sig []byte, ifGen bool, gen uint32) bool {
	sh := r.shardOf(&k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(k)
	if !ok {
		if ifGen {
			return false
		}
		i = sh.insert(k, e)
		r.count.Add(1)
	}
	cur := &sh.ents[i]
	if ifGen && cur.gen != gen {
		return false
	}
	off, chunk, capacity := cur.sigOff, cur.sigChunk, cur.sigCap
	g := cur.gen + 1
	*cur = e
	cur.sigOff, cur.sigChunk, cur.sigCap, cur.gen = off, chunk, capacity, g
	sh.setSig(i, sig)
	return true
}

// compact drops the entries whose certificate ended before cutoff (unix
// seconds), rebuilding the shard's index, entries and signature chunks so
// that their memory goes too. It returns how many it dropped; the caller
// holds no lock.
func (sh *shard) compact(cutoff int64) int {
	// (cutoff in unix seconds; entries' notAfter are uint32 seconds)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := 0
	gone := func(e *entry) bool { return e.notAfter != 0 && int64(e.notAfter) < cutoff }
	for i := range sh.ents {
		if gone(&sh.ents[i]) {
			n++
		}
	}
	if n == 0 {
		return 0
	}
	keep := len(sh.ents) - n
	idx := make(map[serialKey]uint32, keep)
	ents := make([]entry, 0, keep)
	old, oldEnts := sh.chunks, sh.ents
	sh.chunks = nil
	for k, i := range sh.idx {
		e := oldEnts[i]
		if gone(&e) {
			continue
		}
		j := uint32(len(ents))
		var sig []byte
		if e.sigLen > 0 { // an unsigned entry may sit in a shard without chunks
			sig = old[e.sigChunk][e.sigOff : e.sigOff+uint32(e.sigLen)]
		}
		e.sigCap, e.sigLen, e.sigChunk, e.sigOff = 0, 0, 0, 0
		ents = append(ents, e)
		idx[k] = j
		if len(sig) > 0 {
			sh.ents = ents // setSig works on sh.ents
			sh.setSig(j, sig)
		}
	}
	sh.idx, sh.ents = idx, ents
	return n
}
