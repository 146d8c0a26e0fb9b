package enroll

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/zbca/zbca/internal/account"
	"github.com/zbca/zbca/internal/addrkey"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// GuardStore is what the Guard needs from persistence: the shared lockout
// records, the shared per-address token buckets and the audit log.
type GuardStore interface {
	LoginState(ctx context.Context, username string) (store.LoginState, error)
	BeginLogin(ctx context.Context, username string, now time.Time, p store.LockoutPolicy) (store.LoginAttempt, error)
	FinishLogin(ctx context.Context, a store.LoginAttempt, o store.LoginOutcome, ev store.AuditEvent) error
	PruneLogins(ctx context.Context, before time.Time) (int64, error)
	AppendAudit(ctx context.Context, ev store.AuditEvent) error
	store.RateStore
	// ClusterSecret keys the hash an unknown username is recorded as;
	// GetEnterprise tells known usernames from unknown ones where the
	// attempt does not (see nameRecorder).
	store.ClusterSecrets
	EnterpriseGetter
}

// Login counts whose last failure (and lock) is older than
// loginForgetAfter are deleted, at most once an hour per node: a row is
// made for every username tried, known or not, so a spray of random
// names would otherwise grow the table for ever. A username's failures
// are consecutive failures within a day.
const (
	loginForgetAfter = 24 * time.Hour
	loginPruneEvery  = time.Hour
)

// GuardOptions configures NewGuard. Zero values take the defaults of
// config.Default().Enroll.
type GuardOptions struct {
	Store GuardStore
	// Name of the inner authenticator ("local", "http"), recorded with
	// every attempt.
	Name string
	// Lockout: default 5 failures, 1m, doubling up to 1h.
	Lockout store.LockoutPolicy
	// PerIPRate is the attempts per second allowed from one address (IPv6:
	// one /64), with bursts up to PerIPBurst; defaults 10 and 20. The
	// buckets are kept in the store, shared by every node.
	PerIPRate  float64
	PerIPBurst int
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Observe, when set, hears each attempt's outcome (metrics): one of
	// the Login* outcomes below; LoginLockout in addition to LoginFailed
	// for the failure that locks the account.
	Observe func(outcome string)
}

// Login outcomes reported to GuardOptions.Observe.
const (
	LoginOK          = "ok"
	LoginFailed      = "failed"       // wrong password, unknown or malformed username
	LoginLocked      = "locked"       // refused unchecked: the account is locked
	LoginLockout     = "lockout"      // this failure locked the account
	LoginRateLimited = "rate_limited" // the client address is over its rate
	LoginError       = "error"        // undecided: the authenticator or the store failed
)

// Guard applies the login limits around an Authenticator, in this order:
//
//  1. the per-IP token bucket (in the store, shared by every node);
//  2. malformed usernames are refused at once (nothing to count);
//  3. a username locked by the progressive lockout is refused without its
//     password being checked (LockedLoginError);
//  4. the attempt is counted as a failure before the password is checked
//     (store.Logins.BeginLogin), so that concurrent attempts cannot exceed
//     the threshold, on one node or many;
//  5. the inner authenticator decides; a success clears the count, a
//     refusal keeps it, an undecided attempt (zerr.Internal) gives it back.
//
// Every attempt is audited, without the password, with the username as
// subject (an unknown username as a keyed hash, see nameRecorder) and the
// address and authenticator in the details: login.success,
// login.failure (with the reason, for operators only), login.locked,
// login.error (undecided), and login.ratelimited (once per run of refused
// attempts from an address, so that a flood cannot flood the audit log).
// A success whose audit event cannot be written is refused.
type Guard struct {
	inner   Authenticator
	store   GuardStore
	name    string
	lockout store.LockoutPolicy
	ips     *ipLimiter
	now     func() time.Time
	log     *slog.Logger
	observe func(string)
	names   *nameRecorder
	// nextPrune is when the login counts are pruned next (unix ns).
	nextPrune atomic.Int64
}

var _ Authenticator = (*Guard)(nil)

// NewGuard wraps inner with the limits of opts.
func NewGuard(inner Authenticator, o GuardOptions) (*Guard, error) {
	switch {
	case inner == nil:
		return nil, errors.New("enroll: guard without an authenticator")
	case o.Store == nil:
		return nil, errors.New("enroll: guard without a store")
	case o.Name == "":
		return nil, errors.New("enroll: guard without the authenticator's name")
	case o.PerIPRate < 0 || o.PerIPBurst < 0 || o.Lockout.Threshold < 0 || o.Lockout.Base < 0 || o.Lockout.Max < 0:
		return nil, errors.New("enroll: negative guard limit")
	}
	if o.Lockout.Threshold == 0 {
		o.Lockout.Threshold = 5
	}
	if o.Lockout.Base == 0 {
		o.Lockout.Base = time.Minute
	}
	if o.Lockout.Max == 0 {
		o.Lockout.Max = max(time.Hour, o.Lockout.Base)
	}
	if o.Lockout.Max < o.Lockout.Base {
		return nil, errors.New("enroll: lockout maximum below its base")
	}
	if o.PerIPRate == 0 {
		o.PerIPRate = 10
	}
	if o.PerIPBurst == 0 {
		o.PerIPBurst = 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observe == nil {
		o.Observe = func(string) {}
	}
	return &Guard{
		inner: inner, store: o.Store, name: o.Name, lockout: o.Lockout,
		ips: newIPLimiter(o.Store, o.PerIPRate, o.PerIPBurst, o.Logger),
		now: o.Now, log: o.Logger, observe: o.Observe,
		names: &nameRecorder{secrets: o.Store, known: o.Store},
	}, nil
}

// Authenticate implements Authenticator.
func (g *Guard) Authenticate(ctx context.Context, a Attempt) (*store.Enterprise, error) {
	began := time.Now() // the real clock: the refusal's timing is real
	now := g.now()
	details := map[string]any{"ip": a.IP, "authenticator": g.name}
	// Audit writes outlive a caller that has gone: the attempt happened.
	actx := context.WithoutCancel(ctx)

	// 1. The per-IP token bucket.
	ok, first, err := g.ips.allow(ctx, a.IP, now)
	if err != nil {
		return nil, zerr.Wrap(zerr.Internal, err, "checking the login rate limit")
	}
	if !ok {
		if first {
			g.audit(actx, now, "login.ratelimited", g.names.record(actx, a.Username, nil), details)
		}
		g.observe(LoginRateLimited)
		return nil, zerr.New(zerr.Unauthorized, RateLimitedError)
	}
	g.pruneLogins(actx, now)
	// 2. No such username can exist: refuse, count nothing.
	if checkAttempt(a) != nil || account.ValidateUsername(a.Username) != nil {
		details["reason"] = reasonMalformed
		g.audit(actx, now, "login.failure", g.names.record(actx, a.Username, known(false)), details)
		g.observe(LoginFailed)
		return nil, refuse(reasonMalformed)
	}
	// 3. Locked: refused before any password work (a read, off the writer).
	// The count is kept under a keyed hash of the name (lockKey).
	lk, err := g.names.lockKey(ctx, a.Username)
	if err != nil {
		return nil, zerr.Wrap(zerr.Internal, err, "reading the lockout key")
	}
	st, err := g.store.LoginState(ctx, lk)
	if err != nil {
		return nil, zerr.Wrap(zerr.Internal, err, "reading login state")
	}
	if st.Locked(now) {
		return nil, g.locked(ctx, actx, began, now, g.names.record(actx, a.Username, nil), details, st)
	}
	// 4. Count the attempt first; the lock check is repeated in the same
	// transaction.
	att, err := g.store.BeginLogin(ctx, lk, now, g.lockout)
	if err != nil {
		return nil, zerr.Wrap(zerr.Internal, err, "counting login attempt")
	}
	if !att.Allowed {
		return nil, g.locked(ctx, actx, began, now, g.names.record(actx, a.Username, nil), details, att.Before)
	}
	// 5. Decide and settle.
	e, err := g.inner.Authenticate(ctx, a)
	switch {
	case err == nil:
		subject := g.names.record(actx, a.Username, known(true))
		if ferr := g.store.FinishLogin(actx, att, store.LoginSucceeded, g.event(now, "login.success", subject, details)); ferr != nil {
			g.log.Error("recording login", "username", subject, "err", ferr)
			g.observe(LoginError)
			return nil, zerr.Wrap(zerr.Internal, ferr, "recording login")
		}
		g.observe(LoginOK)
		return e, nil
	case zerr.KindOf(err) == zerr.Unauthorized:
		reason := refusalReason(err)
		if reason == "" {
			reason = "refused"
		}
		details["reason"] = reason
		details["failures"] = att.After.Failures
		var subject string
		switch {
		case reason == reasonPassword || reason == reasonDisabled || reason == reasonBadHash:
			subject = g.names.record(actx, a.Username, known(true))
		case reason == reasonUnknown || reason == reasonMalformed:
			subject = g.names.record(actx, a.Username, known(false))
		default:
			subject = g.names.record(actx, a.Username, nil)
		}
		if att.After.Locked(now) {
			details["locked_until"] = att.After.LockedUntil.Format(time.RFC3339)
		}
		if ferr := g.store.FinishLogin(actx, att, store.LoginFailed, g.event(now, "login.failure", subject, details)); ferr != nil {
			g.log.Error("recording failed login", "username", subject, "err", ferr)
		}
		g.observe(LoginFailed)
		if att.After.Locked(now) {
			g.observe(LoginLockout)
		}
		// Whatever the inner authenticator said, the client reads only the
		// generic text.
		return nil, refuse(reason)
	default:
		details["error"] = zerr.KindOf(err).Error()
		subject := g.names.record(actx, a.Username, nil)
		if ferr := g.store.FinishLogin(actx, att, store.LoginAborted, g.event(now, "login.error", subject, details)); ferr != nil {
			g.log.Error("recording undecided login", "username", subject, "err", ferr)
		}
		g.observe(LoginError)
		return nil, err
	}
}

// pruneLogins forgets old login counts when it is due; a failure only
// delays it.
func (g *Guard) pruneLogins(ctx context.Context, now time.Time) {
	next := g.nextPrune.Load()
	if now.UnixNano() < next || !g.nextPrune.CompareAndSwap(next, now.Add(loginPruneEvery).UnixNano()) {
		return
	}
	if n, err := g.store.PruneLogins(ctx, now.Add(-loginForgetAfter)); err != nil {
		g.log.Warn("pruning old login counts", "err", err)
	} else if n > 0 {
		g.log.Info("forgot login counts older than a day", "usernames", n)
	}
}

// locked refuses a locked username without checking its password, held
// as long as a checked refusal would be (see timingFloor): the lock itself
// tells nothing (unknown usernames are locked alike), and its answer comes
// no sooner than a password check's.
func (g *Guard) locked(ctx, actx context.Context, began, now time.Time, subject string, details map[string]any, st store.LoginState) error {
	details["locked_until"] = st.LockedUntil.Format(time.RFC3339)
	details["failures"] = st.Failures
	g.audit(actx, now, "login.locked", subject, details)
	g.observe(LoginLocked)
	if f, ok := g.inner.(interface{ FailureFloor() time.Duration }); ok {
		holdUntil(ctx, began.Add(f.FailureFloor()))
	}
	return zerr.New(zerr.Unauthorized, LockedLoginError)
}

func (g *Guard) event(now time.Time, action, subject string, details map[string]any) store.AuditEvent {
	return store.AuditEvent{At: now, Actor: "login", Action: action, Subject: subject, Details: details}
}

// audit appends an event that changes nothing else; a failure is logged,
// and the refusal it accompanies stands.
func (g *Guard) audit(ctx context.Context, now time.Time, action, subject string, details map[string]any) {
	if err := g.store.AppendAudit(ctx, g.event(now, action, subject, details)); err != nil {
		g.log.Error("audit of login attempt", "action", action, "username", subject, "err", err)
	}
}

// auditSubject bounds what a client can write into the audit log as a
// username: valid UTF-8, at most 64 characters (longer ones are cut and
// marked).
func auditSubject(u string) string {
	u = strings.ToValidUTF8(u, "\uFFFD")
	if utf8.RuneCountInString(u) <= account.MaxUsername {
		return u
	}
	return string([]rune(u)[:account.MaxUsername]) + "…"
}

// ipLimiter is a token bucket per client address (addrkey.Of), kept in the
// store so that every node draws on the same bucket. Buckets idle long
// enough to be full again are deleted, at most once a minute per node and
// a bounded number at a time.
type ipLimiter struct {
	st    store.RateStore
	rate  float64 // tokens per second
	burst int
	// full is how long an untouched bucket takes to be full again; a
	// bucket idle that long is the same as no bucket.
	full      time.Duration
	nextPrune atomic.Int64 // unix nanoseconds
	log       *slog.Logger
}

const (
	rateBucketPruneEvery = time.Minute
	rateBucketPruneLimit = 5000
)

func newIPLimiter(st store.RateStore, rate float64, burst int, log *slog.Logger) *ipLimiter {
	full := min(float64(burst)/rate, 365*24*3600) // seconds; bounded against overflow
	return &ipLimiter{st: st, rate: rate, burst: burst, full: time.Duration(full * float64(time.Second)), log: log}
}

// allow takes a token from ip's bucket. When it refuses, first reports
// whether this is the first refusal since the address's last allowed
// attempt, on any node.
func (l *ipLimiter) allow(ctx context.Context, ip string, now time.Time) (ok, first bool, err error) {
	ok, first, err = l.st.TakeToken(ctx, addrkey.Of(ip), now, l.rate, l.burst)
	if err != nil {
		return false, false, err
	}
	l.prune(ctx, now)
	return ok, first, nil
}

// prune deletes idle buckets when it is due; a failure only delays it.
func (l *ipLimiter) prune(ctx context.Context, now time.Time) {
	next := l.nextPrune.Load()
	if now.UnixNano() < next || !l.nextPrune.CompareAndSwap(next, now.Add(rateBucketPruneEvery).UnixNano()) {
		return
	}
	if _, err := l.st.PruneRateBuckets(ctx, now.Add(-l.full), rateBucketPruneLimit); err != nil {
		l.log.Warn("pruning login rate buckets", "err", err)
	}
}
