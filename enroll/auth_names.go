package enroll

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"

	"github.com/zbca/zbca/internal/account"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// An unknown username is often a password typed into the wrong field. The
// audit log keeps its entries for ever and the server log is read by more
// people than passwords should be: an attempt whose username names no
// account is recorded as "unknown:" and a keyed hash of the name
// (HMAC-SHA-256, the first 96 bits in hex). The same name gives the same
// record, on every node (the key is a cluster secret in the store), so
// that a spray or a clerk's repeated typo can be followed, but the record
// cannot be read back without the key, and trying guesses needs the key
// too. Known usernames stay readable. ':' is not allowed in a username,
// so a record cannot be mistaken for one.

// usernameKeyName names the HMAC key among the store's cluster secrets.
const usernameKeyName = "audit-unknown-username"

const unknownPrefix = "unknown:"

// nameRecorder turns the usernames of login attempts into what the audit
// log and the server log may keep.
type nameRecorder struct {
	secrets store.ClusterSecrets
	known   EnterpriseGetter

	mu  sync.Mutex
	key []byte
}

// record is what the logs keep of username: the name when known says it
// names an account, its keyed hash otherwise. known is nil when the
// caller does not know: then the store is asked.
func (r *nameRecorder) record(ctx context.Context, username string, known *bool) string {
	k := false
	switch {
	case known != nil:
		k = *known
	case account.ValidateUsername(username) == nil:
		_, err := r.known.GetEnterprise(ctx, username)
		k = err == nil
		if err != nil && !errors.Is(err, zerr.NotFound) {
			// Undecided: hashed, the safe side.
			k = false
		}
	}
	if k {
		return auditSubject(username)
	}
	return r.hashed(ctx, username)
}

func (r *nameRecorder) hashed(ctx context.Context, username string) string {
	key, err := r.keyOf(ctx)
	if err != nil {
		// Never the name itself; the attempt is still recorded.
		return unknownPrefix + "unkeyed"
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(username))
	return unknownPrefix + hex.EncodeToString(m.Sum(nil)[:12])
}

func (r *nameRecorder) keyOf(ctx context.Context) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.key != nil {
		return r.key, nil
	}
	k, err := r.secrets.ClusterSecret(ctx, usernameKeyName)
	if err != nil {
		return nil, err
	}
	r.key = k
	return k, nil
}

func known(b bool) *bool { return &b }

// lockKey is the key of username's lockout count in the logins table: the
// same keyed hash for every name, known or not, so that the table (kept
// for a day, and in every backup) holds no typed password and does not
// tell which names exist. Only the Guard reads it.
func (r *nameRecorder) lockKey(ctx context.Context, username string) (string, error) {
	key, err := r.keyOf(ctx)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("lockout\x00"))
	m.Write([]byte(username))
	return "h:" + hex.EncodeToString(m.Sum(nil)[:16]), nil
}
