package verify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// APIKeyPrefix starts every API key, so that a leaked key is recognisable
// (and secret scanners can find it).
const APIKeyPrefix = "zbca_"

// apiKeyLen is the length of a key: the prefix and 32 random bytes in
// unpadded base64url.
var apiKeyLen = len(APIKeyPrefix) + base64.RawURLEncoding.EncodedLen(32)

// KeyCacheTTL is how long an API key lookup is remembered: a revoked key
// stops working within this time.
const KeyCacheTTL = 5 * time.Second

// NewAPIKey makes a key for a submission site: "zbca_" and 32 random bytes
// in base64url. It returns the key, to be shown once, and what is stored.
func NewAPIKey(name string) (string, *store.APIKey, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	key := APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return key, &store.APIKey{Name: name, Hash: HashAPIKey(key), Prefix: key[:len(APIKeyPrefix)+6]}, nil
}

// HashAPIKey is the stored form of a key. A single SHA-256 is right for 256
// random bits: there is no dictionary to slow down, and the hot path
// stays cheap (unlike argon2, which is for passwords).
func HashAPIKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// KeyStore reads API keys.
type KeyStore interface {
	// APIKeyByHash returns zerr.NotFound for an unknown hash.
	APIKeyByHash(ctx context.Context, hash string) (*store.APIKey, error)
}

// keyCache remembers API key lookups, good and bad, for KeyCacheTTL.
type keyCache struct {
	mu      sync.Mutex
	entries map[[32]byte]keyEntry // by SHA-256 of the key
}

type keyEntry struct {
	name string // "" when the key is unknown or revoked
	at   time.Time
}

// maxKeyEntries bounds the cache: random wrong keys cannot grow it.
const maxKeyEntries = 4096

var errBadKey = zerr.New(zerr.Unauthorized, "missing, unknown or revoked API key")

// Authenticate checks a submission site's API key and returns the key's
// name; zerr.Unauthorized for a missing, malformed, unknown or revoked key.
func (s *Service) Authenticate(ctx context.Context, key string) (string, error) {
	if len(key) != apiKeyLen || !strings.HasPrefix(key, APIKeyPrefix) {
		return "", errBadKey
	}
	sum := sha256.Sum256([]byte(key))
	now := s.now()
	s.keys.mu.Lock()
	e, ok := s.keys.entries[sum]
	s.keys.mu.Unlock()
	if !ok || now.Sub(e.at) >= KeyCacheTTL || now.Before(e.at) {
		hash := hex.EncodeToString(sum[:]) // as HashAPIKey
		k, err := s.keyStore.APIKeyByHash(ctx, hash)
		switch {
		case errors.Is(err, zerr.NotFound):
			e = keyEntry{at: now}
		case err != nil:
			return "", err
		// The lookup was by hash; comparing again in constant time keeps a
		// store that matched loosely (a prefix, a collation) from letting
		// a wrong key in.
		case subtle.ConstantTimeCompare([]byte(k.Hash), []byte(hash)) == 1 && k.Status == store.APIKeyActive:
			e = keyEntry{name: k.Name, at: now}
		default:
			e = keyEntry{at: now}
		}
		s.keys.mu.Lock()
		if len(s.keys.entries) >= maxKeyEntries {
			clear(s.keys.entries)
		}
		s.keys.entries[sum] = e
		s.keys.mu.Unlock()
	}
	if e.name == "" {
		return "", errBadKey
	}
	return e.name, nil
}

// CheckKeyName checks the name of a submission site's key: 1–64 letters,
// digits, '.', '_' or '-'.
func CheckKeyName(name string) error {
	if name == "" || len(name) > 64 {
		return zerr.New(zerr.BadRequest, "API key name must have 1 to 64 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return zerr.New(zerr.BadRequest, "API key name %q: use letters, digits, '.', '_' or '-'", name)
		}
	}
	return nil
}
