package enroll

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// LocalStore is what the local authenticator needs from persistence.
type LocalStore interface {
	EnterpriseGetter
	store.PasswordUpgrader
}

// LocalOptions configures NewLocal.
type LocalOptions struct {
	Store LocalStore
	// Params are the argon2id parameters of new hashes: at least 19 MiB,
	// t=2, p=1 (config.MinArgon2MemoryKiB, config.MinArgon2Time). Stored
	// hashes with other parameters, and bcrypt hashes, are upgraded to them
	// on a successful login.
	Params password.Params
	// MaxConcurrentHashes bounds the hashes computed at once; 0: 2 ×
	// GOMAXPROCS. Each argon2id hash allocates Params.MemoryKiB, so this
	// bounds the memory a login storm can take.
	MaxConcurrentHashes int
	Logger              *slog.Logger

	// weakParams lets tests use cheap argon2 parameters.
	weakParams bool
}

// LocalAuthenticator checks passwords against the hashes in the database:
// argon2id, and the bcrypt and argon2id hashes imported from the reporting
// system as they are.
//
// An unknown username costs the same work as a known one: its password is
// verified against a dummy hash made with the configured parameters. An
// account still holding an imported hash with other costs (bcrypt, or
// argon2id with other parameters) takes that hash's time until its first
// successful login upgrades it; so every refusal is held until a floor
// that covers the slowest hash scheme in use (see timingFloor), and the
// answer's timing does not tell whether the account exists or what kind
// of hash it holds.
type LocalAuthenticator struct {
	store  LocalStore
	params password.Params
	dummy  string
	sem    chan struct{}
	log    *slog.Logger
	floor  *timingFloor

	// scanMu serialises calibrations; scannedID is the highest account id
	// the last one read; nextScan (unix ns) when a login may start another.
	scanMu    sync.Mutex
	scannedID int64
	nextScan  atomic.Int64

	// Replaced by tests to count and instrument the hashing work.
	verifyFn func(pw, hash string) error
	hashFn   func(pw string, p password.Params) (string, error)
}

var _ Authenticator = (*LocalAuthenticator)(nil)

// NewLocal returns the local authenticator. It computes one hash (the
// dummy) before it returns.
func NewLocal(o LocalOptions) (*LocalAuthenticator, error) {
	return newLocal(o, password.Verify, password.Hash)
}

func newLocal(o LocalOptions, verify func(string, string) error, hash func(string, password.Params) (string, error)) (*LocalAuthenticator, error) {
	if o.Store == nil {
		return nil, errors.New("enroll: local authenticator without a store")
	}
	p := o.Params
	if p.Threads < 1 || (!o.weakParams && (p.MemoryKiB < config.MinArgon2MemoryKiB || p.Time < config.MinArgon2Time)) {
		return nil, fmt.Errorf("enroll: argon2id parameters m=%d KiB, t=%d, p=%d are below the minimum (m=%d KiB, t=%d, p=1)",
			p.MemoryKiB, p.Time, p.Threads, config.MinArgon2MemoryKiB, config.MinArgon2Time)
	}
	n := o.MaxConcurrentHashes
	if n < 0 {
		return nil, fmt.Errorf("enroll: max concurrent hashes %d is negative", n)
	}
	if n == 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := &LocalAuthenticator{store: o.Store, params: p, sem: make(chan struct{}, n), log: o.Logger, floor: newTimingFloor(), verifyFn: verify, hashFn: hash}
	var err error
	start := time.Now()
	if l.dummy, err = l.hashFn(rand.Text(), p); err != nil {
		return nil, fmt.Errorf("enroll: making the dummy hash: %w", err)
	}
	l.floor.calibrated(password.Scheme(l.dummy), time.Since(start))
	if err := password.CheckHash(l.dummy); err != nil {
		return nil, fmt.Errorf("enroll: argon2id parameters m=%d KiB, t=%d, p=%d: %w", p.MemoryKiB, p.Time, p.Threads, err)
	}
	l.calibrate()
	l.nextScan.Store(time.Now().Add(rescanEvery).UnixNano())
	return l, nil
}

// HashSchemeLister is the optional capability of a LocalStore that lists
// the cost classes of the stored hashes of the accounts above an id, and
// the highest id (store.SQL has it).
type HashSchemeLister interface {
	PasswordHashSchemesSince(ctx context.Context, skipPrefix string, afterID int64) ([]string, int64, error)
}

// rescanEvery is how often, at most, a login starts a look for accounts
// added since the last look (an import by another process) whose hash
// scheme the floor does not cover yet. The look reads only the new rows.
const rescanEvery = 30 * time.Second

// calibrateTimeout bounds the start-up scan of stored hash schemes.
const calibrateTimeout = time.Minute

// calibrate measures the cost of every hash scheme the store holds besides
// the configured one, so that the first failed login on an imported
// account is already covered by the floor. A failure is logged: the floor
// then learns the scheme at its first login.
func (l *LocalAuthenticator) calibrate() {
	lister, ok := l.store.(HashSchemeLister)
	if !ok {
		return
	}
	l.scanMu.Lock()
	defer l.scanMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), calibrateTimeout)
	defer cancel()
	own := password.Scheme(l.dummy)
	// The head of the dummy up to its salt: the hashes already upgraded.
	skip := l.dummy[:strings.LastIndexByte(l.dummy[:strings.LastIndexByte(l.dummy, '$')], '$')+1]
	schemes, top, err := lister.PasswordHashSchemesSince(ctx, skip, l.scannedID)
	if err != nil {
		l.log.Warn("listing stored password hash schemes; failed logins are timed by what is learned at login", "err", err)
		return
	}
	l.scannedID = top
	for _, sc := range schemes {
		if sc == own || l.floor.covers(sc) {
			continue
		}
		start := time.Now()
		if _, err := password.Sample(sc); err != nil {
			l.log.Warn("measuring a stored password hash scheme", "scheme", sc, "err", err)
			continue
		}
		d := time.Since(start)
		l.floor.calibrated(sc, d)
		l.log.Info("stored password hashes awaiting upgrade", "scheme", sc, "verify", d.Round(time.Millisecond))
	}
	if f := l.floor.floor(); f > time.Second {
		l.log.Warn("a stored password hash scheme is slow: every failed login is held this long until those accounts log in once", "floor", f.Round(time.Millisecond))
	}
}

// maybeRescan starts, at most every rescanEvery and in the background, a
// calibration over the accounts added since the last one: an import by
// another process while this server runs is covered within that time,
// not only after a restart or the first login of an imported account.
func (l *LocalAuthenticator) maybeRescan(now time.Time) {
	next := l.nextScan.Load()
	if now.UnixNano() < next || !l.nextScan.CompareAndSwap(next, now.Add(rescanEvery).UnixNano()) {
		return
	}
	go l.calibrate()
}

// FailureFloor is how long a refused attempt's password check takes at
// least: the Guard holds the refusals it decides without one (a locked
// username) as long.
func (l *LocalAuthenticator) FailureFloor() time.Duration { return l.floor.floor() }

// Authenticate implements Authenticator.
func (l *LocalAuthenticator) Authenticate(ctx context.Context, a Attempt) (*store.Enterprise, error) {
	if err := checkAttempt(a); err != nil {
		return nil, err
	}
	l.maybeRescan(time.Now())
	e, err := l.store.GetEnterprise(ctx, a.Username)
	known := err == nil
	if err != nil && !errors.Is(err, zerr.NotFound) {
		return nil, zerr.Wrap(zerr.Internal, err, "reading enterprise")
	}
	hash := l.dummy
	if known {
		hash = e.PasswordHash
	}
	// The same work whether or not the account exists, and whatever its
	// status: the decision comes after it.
	var verr error
	var began time.Time
	if err := l.hashing(ctx, func() {
		began = time.Now()
		verr = l.verifyFn(a.Password, hash)
		l.floor.observe(password.Scheme(hash), time.Since(began))
	}); err != nil {
		return nil, err
	}
	var reason string
	switch {
	case !known:
		reason = reasonUnknown
	case errors.Is(verr, password.ErrMismatch):
		reason = reasonPassword
	case verr != nil:
		l.log.Error("unusable password hash", "username", a.Username, "err", verr)
		reason = reasonBadHash
	case e.Status != store.StatusActive:
		reason = reasonDisabled
	}
	if reason != "" {
		// Outside the hashing slot: the wait costs no CPU and holds no
		// slot.
		holdUntil(ctx, began.Add(l.floor.floor()))
		return nil, refuse(reason)
	}
	l.upgrade(ctx, e, a.Password)
	return e, nil
}

// hashing runs fn, a password hash or verification, in one of the bounded
// slots; waiting for a slot ends with ctx.
func (l *LocalAuthenticator) hashing(ctx context.Context, fn func()) error {
	if err := ctx.Err(); err != nil {
		return zerr.Wrap(zerr.Internal, err, "login abandoned")
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return zerr.Wrap(zerr.Internal, ctx.Err(), "login abandoned while waiting to check the password")
	}
	defer func() { <-l.sem }()
	fn()
	return nil
}

// upgrade replaces a hash made with other parameters (or bcrypt) by one
// with the configured parameters, now that the password is known to be
// right. A failure is logged and does not fail the login: the next login
// tries again.
func (l *LocalAuthenticator) upgrade(ctx context.Context, e *store.Enterprise, pw string) {
	if !password.NeedsRehash(e.PasswordHash, l.params) {
		return
	}
	var h string
	var herr error
	if err := l.hashing(ctx, func() { h, herr = l.hashFn(pw, l.params) }); err != nil {
		return
	}
	if herr != nil {
		l.log.Warn("upgrading password hash", "username", e.Username, "err", herr)
		return
	}
	ok, err := l.store.UpgradePasswordHash(ctx, e.Username, e.PasswordHash, h, store.AuditEvent{
		Actor: "system", Action: "enterprise.password.upgrade", Subject: e.Username,
		Details: map[string]any{"from": hashScheme(e.PasswordHash), "to": hashScheme(h)},
	})
	switch {
	case err != nil:
		l.log.Warn("upgrading password hash", "username", e.Username, "err", err)
	case !ok:
		l.log.Info("password hash changed during login; not upgraded", "username", e.Username)
	default:
		l.log.Info("upgraded password hash", "username", e.Username, "from", hashScheme(e.PasswordHash), "to", hashScheme(h))
		e.PasswordHash = h
	}
}

// hashScheme names a hash's algorithm and costs, without salt or digest.
func hashScheme(h string) string {
	if p := strings.Split(h, "$"); len(p) == 6 && p[1] == "argon2id" {
		return "argon2id " + p[3]
	}
	if len(h) >= 7 && strings.HasPrefix(h, "$2") && h[3] == '$' && h[6] == '$' {
		return "bcrypt " + h[1:3] + " cost " + h[4:6]
	}
	return "unknown"
}
