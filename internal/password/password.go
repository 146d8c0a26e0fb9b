// Package password hashes and verifies enterprise passwords.
//
// New hashes are argon2id in PHC string format
// ($argon2id$v=19$m=19456,t=2,p=1$salt$hash). Hashes imported from the
// reporting system are accepted as they are: argon2id PHC strings and bcrypt
// ($2a$, $2b$, $2y$). NeedsRehash tells the caller when to upgrade a hash
// after a successful login.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Params are argon2id cost parameters.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// Default is OWASP's minimum recommendation for argon2id: 19 MiB, t=2, p=1.
var Default = Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

// Limits that a stored hash may not exceed, so a hostile import cannot make
// a login allocate gigabytes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 64
	maxPassword  = 1024
)

// ErrMismatch is returned when a password does not match its hash.
var ErrMismatch = errors.New("password does not match")

// Hash returns an argon2id PHC string for pw.
func Hash(pw string, p Params) (string, error) {
	if len(pw) == 0 {
		return "", errors.New("empty password")
	}
	if len(pw) > maxPassword {
		return "", fmt.Errorf("password longer than %d bytes", maxPassword)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var b64 = base64.RawStdEncoding

type argonHash struct {
	p    Params
	salt []byte
	key  []byte
}

func parseArgon2id(s string) (argonHash, error) {
	var h argonHash
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return h, errors.New("not an argon2id PHC string")
	}
	if parts[2] != "v=19" {
		return h, fmt.Errorf("unsupported argon2 version %q", parts[2])
	}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return h, fmt.Errorf("bad argon2 parameter %q", kv)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return h, fmt.Errorf("bad argon2 parameter %q", kv)
		}
		switch k {
		case "m":
			h.p.MemoryKiB = uint32(n)
		case "t":
			h.p.Time = uint32(n)
		case "p":
			if n > 255 {
				return h, fmt.Errorf("bad argon2 parameter %q", kv)
			}
			h.p.Threads = uint8(n)
		default:
			return h, fmt.Errorf("unknown argon2 parameter %q", k)
		}
	}
	switch {
	case h.p.MemoryKiB < 8*uint32(max(h.p.Threads, 1)) || h.p.MemoryKiB > maxMemoryKiB:
		return h, fmt.Errorf("argon2 memory %d KiB out of range", h.p.MemoryKiB)
	case h.p.Time < 1 || h.p.Time > maxTime:
		return h, fmt.Errorf("argon2 time %d out of range", h.p.Time)
	case h.p.Threads < 1:
		return h, errors.New("argon2 parallelism must be at least 1")
	}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return h, errors.New("bad argon2 salt")
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return h, errors.New("bad argon2 hash")
	}
	return h, nil
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// CheckHash validates the format of a stored or imported hash without
// verifying any password. It accepts argon2id PHC strings and bcrypt.
func CheckHash(s string) error {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		_, err := parseArgon2id(s)
		return err
	case isBcrypt(s):
		if len(s) != 60 {
			return errors.New("bcrypt hash must be 60 characters")
		}
		for _, c := range s[7:] {
			if !(c == '.' || c == '/' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
				return errors.New("bcrypt hash contains characters outside its alphabet")
			}
		}
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil {
			return fmt.Errorf("bad bcrypt hash: %w", err)
		}
		if cost > 16 {
			return fmt.Errorf("bcrypt cost %d too high (at most 16)", cost)
		}
		return nil
	default:
		return errors.New("unsupported hash format (want argon2id PHC string or bcrypt)")
	}
}

// Verify reports whether pw matches the stored hash. It returns ErrMismatch
// for a wrong password and another error for an unusable hash.
func Verify(pw, stored string) error {
	if len(pw) > maxPassword {
		return ErrMismatch
	}
	switch {
	case strings.HasPrefix(stored, "$argon2id$"):
		h, err := parseArgon2id(stored)
		if err != nil {
			return err
		}
		key := argon2.IDKey([]byte(pw), h.salt, h.p.Time, h.p.MemoryKiB, h.p.Threads, uint32(len(h.key)))
		if subtle.ConstantTimeCompare(key, h.key) != 1 {
			return ErrMismatch
		}
		return nil
	case isBcrypt(stored):
		if err := CheckHash(stored); err != nil {
			return err
		}
		err := bcrypt.CompareHashAndPassword([]byte(stored), []byte(pw))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return ErrMismatch
		}
		return err
	default:
		return errors.New("unsupported hash format")
	}
}

// NeedsRehash reports whether stored should be replaced by a hash made with
// p: any bcrypt hash, and argon2id hashes with other parameters.
func NeedsRehash(stored string, p Params) bool {
	h, err := parseArgon2id(stored)
	if err != nil {
		return true
	}
	return h.p != p
}

// Scheme names the cost class of a stored hash: the algorithm and its
// cost parameters, without salt or digest ("argon2id m=19456,t=2,p=1",
// "bcrypt 10"). Two hashes of one scheme take the same time to verify.
// An unusable hash is "".
func Scheme(stored string) string {
	switch {
	case strings.HasPrefix(stored, "$argon2id$"):
		h, err := parseArgon2id(stored)
		if err != nil {
			return ""
		}
		return fmt.Sprintf("argon2id m=%d,t=%d,p=%d", h.p.MemoryKiB, h.p.Time, h.p.Threads)
	case isBcrypt(stored):
		if CheckHash(stored) != nil {
			return ""
		}
		cost, _ := bcrypt.Cost([]byte(stored))
		return "bcrypt " + strconv.Itoa(cost)
	}
	return ""
}

// Sample returns a hash of a random password in scheme (see Scheme), so
// that the time one verification of that scheme takes can be measured
// without any account's hash.
func Sample(scheme string) (string, error) {
	if c, ok := strings.CutPrefix(scheme, "bcrypt "); ok {
		cost, err := strconv.Atoi(c)
		if err != nil || cost < bcrypt.MinCost || cost > 16 {
			return "", fmt.Errorf("bad bcrypt scheme %q", scheme)
		}
		h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
		return string(h), err
	}
	if ps, ok := strings.CutPrefix(scheme, "argon2id "); ok {
		// Parsed the way a stored hash is, with its limits.
		h, err := parseArgon2id("$argon2id$v=19$" + ps + "$c2FsdHNhbHRzYWx0$" + b64.EncodeToString(make([]byte, 32)))
		if err != nil {
			return "", fmt.Errorf("bad argon2id scheme %q: %w", scheme, err)
		}
		return Hash(rand.Text(), h.p)
	}
	return "", fmt.Errorf("unknown hash scheme %q", scheme)
}
