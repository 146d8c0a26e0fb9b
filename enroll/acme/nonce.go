package acme

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/store"
)

// NonceStore is what the nonces need from the store: the MAC key, the same
// on every node, and the record of used nonces.
type NonceStore interface {
	store.NonceStore
	store.ClusterSecrets
}

// nonces issues and checks the anti-replay nonces of RFC 8555 §6.5, good
// once on any node that shares the database.
//
// A nonce is self-authenticating, so that issuing one (with every
// response) writes nothing:
//
//	base64url(expiry || random || MAC)
//
// with the expiry in unix seconds (8 bytes, big-endian), 12 random bytes,
// and the first 16 bytes of HMAC-SHA256 of the first 20 under a cluster
// secret of the store. Using a nonce checks the MAC and the expiry, then
// records the nonce as used in the store (one INSERT that reports whether
// it was new): a second use, on any node, is a replay. Used nonces are
// forgotten after they expire (Server.Prune).
type nonces struct {
	st  NonceStore
	ttl time.Duration
	now func() time.Time
	log *slog.Logger
	// key is the MAC key, read from the store on first use.
	key   atomic.Pointer[[]byte]
	keyMu sync.Mutex
}

const (
	nonceKeyName = "acme-nonce-hmac"
	nonceRandom  = 12
	nonceMAC     = 16
	nonceSize    = 8 + nonceRandom + nonceMAC // 36 bytes: 48 base64url characters, no padding bits
	// nonceSkew is how long a used nonce is kept after its expiry: another
	// node whose clock is that much behind still accepts it as unexpired,
	// and must still find it used.
	nonceSkew = 5 * time.Minute
)

var nonceEncoding = base64.RawURLEncoding

func newNonces(st NonceStore, ttl time.Duration, now func() time.Time, log *slog.Logger) *nonces {
	return &nonces{st: st, ttl: ttl, now: now, log: log}
}

// macKey returns the MAC key, reading it from the store the first time (a
// failure is retried by the next call).
func (n *nonces) macKey(ctx context.Context) ([]byte, error) {
	if k := n.key.Load(); k != nil {
		return *k, nil
	}
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	if k := n.key.Load(); k != nil {
		return *k, nil
	}
	k, err := n.st.ClusterSecret(ctx, nonceKeyName)
	if err != nil {
		return nil, fmt.Errorf("loading the nonce key: %w", err)
	}
	n.key.Store(&k)
	return k, nil
}

func nonceMACOf(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)[:nonceMAC]
}

// make issues a nonce valid for the nonce lifetime.
func (n *nonces) make(ctx context.Context) (string, error) {
	key, err := n.macKey(ctx)
	if err != nil {
		return "", err
	}
	var b [nonceSize]byte
	binary.BigEndian.PutUint64(b[:8], uint64(n.now().Add(n.ttl).Unix()))
	_, _ = rand.Read(b[8 : 8+nonceRandom])
	copy(b[8+nonceRandom:], nonceMACOf(key, b[:8+nonceRandom]))
	return nonceEncoding.EncodeToString(b[:]), nil
}

// use consumes a nonce: false if it is malformed, forged, expired or used
// (on any node). An error means the store could not tell.
func (n *nonces) use(ctx context.Context, s string) (bool, error) {
	if len(s) != nonceEncoding.EncodedLen(nonceSize) {
		return false, nil
	}
	b, err := nonceEncoding.DecodeString(s)
	if err != nil || len(b) != nonceSize {
		return false, nil
	}
	key, err := n.macKey(ctx)
	if err != nil {
		return false, err
	}
	if !hmac.Equal(b[8+nonceRandom:], nonceMACOf(key, b[:8+nonceRandom])) {
		return false, nil
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	now := n.now()
	if !now.Before(exp) {
		return false, nil
	}
	// 48 characters that decode to 36 bytes are the only spelling of those
	// bytes (no padding bits, no line breaks, which the decoder skips), so
	// a nonce cannot be replayed spelled another way.
	fresh, err := n.st.UseNonce(ctx, s, exp)
	if err != nil {
		return false, fmt.Errorf("recording a used nonce: %w", err)
	}
	return fresh, nil
}
