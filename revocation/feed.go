package revocation

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zbca/zbca/store"
)

// Feed is the one way a status change (issued, revoked, superseded)
// reaches this node's OCSP table, CRL publisher and verification API.
//
// The store numbers every status-changing commit in commit order (the
// status feed, store/feed.go); the Feed applies the changes after the last
// number it applied, in order, to the OCSP table (which signs the changed
// responses), then tells the CRL publisher if any is a revocation, then
// records the number as applied. It reads when woken:
//
//   - by this process's own commits (store.FeedSignal), at once;
//   - on PostgreSQL, by LISTEN/NOTIFY from every node, at their commit;
//   - by its poll (Poll: 100 ms on SQLite, where other processes such as
//     `zbca cert revoke --offline` announce nothing; 500 ms on PostgreSQL),
//     the safety net for a lost notification.
//
// Nothing compares clocks. A reader further behind than the store keeps
// changes (store.FeedKeep), or a feed whose head went back (a restored
// database), reloads every status.
//
// The guarantee (README, "How status changes propagate"): a revocation or
// issuance acknowledged by this node is applied before it is acknowledged
// (Wait); one made by another node or process is applied within Poll
// plus a read, typically milliseconds with notifications. Verification
// answers from the table only while the feed is trusted — read within the
// trust window and, on PostgreSQL, with the notification connection up —
// and otherwise reads the store (Status).
type Feed struct {
	o       FeedOptions
	applied atomic.Int64
	// mark is the last change applied, found again at each read (only the
	// reading goroutine uses it).
	mark store.FeedMark
	// lastRead is when the feed was last read to its end (monotonic
	// nanoseconds since start); listening is false while the PostgreSQL
	// notification connection is down.
	lastRead  atomic.Int64
	listening atomic.Bool
	loaded    atomic.Bool
	start     time.Time
	wake      chan struct{}
	mu        sync.Mutex
	advanced  chan struct{} // closed and replaced when applied moves
	// Stats, read by metrics.
	Reloads, Changes atomic.Int64
}

// FeedSource is what the Feed reads (store.SQL).
type FeedSource interface {
	store.FeedSource
	LoadSource
	store.Watcher
}

// FeedOptions configures NewFeed.
type FeedOptions struct {
	Source FeedSource
	OCSP   *Responder
	// CRL, when set, is told of revocations and of CRLs other nodes
	// published.
	CRL *Publisher
	// Notified: the source delivers notifications from other processes
	// (PostgreSQL); the feed is then trusted only while they flow.
	Notified bool
	// Poll is the safety-net period (default 100 ms; 500 ms when
	// Notified).
	Poll time.Duration
	// TrustWindow: the table answers verification only when the feed was
	// read to its end within it (default 3 × Poll, at least 1 s).
	TrustWindow time.Duration
	// OnChange, when set, is called after each applied batch with the
	// number applied (tests, metrics).
	OnChange func(applied int64)
	Logger   *slog.Logger
}

// NewFeed returns a feed; call Load, then Run.
func NewFeed(o FeedOptions) (*Feed, error) {
	if o.Source == nil || o.OCSP == nil {
		return nil, fmt.Errorf("revocation: the feed needs a source and the OCSP table")
	}
	if o.Poll <= 0 {
		o.Poll = 100 * time.Millisecond
		if o.Notified {
			o.Poll = 500 * time.Millisecond
		}
	}
	if o.TrustWindow <= 0 {
		o.TrustWindow = max(3*o.Poll, time.Second)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Feed{o: o, start: time.Now(), wake: make(chan struct{}, 1), advanced: make(chan struct{})}
	f.listening.Store(!o.Notified)
	return f, nil
}

// Load fills the OCSP table from the store and sets the feed's position
// to the change the load is consistent with.
func (f *Feed) Load(ctx context.Context) error {
	readStart := time.Since(f.start)
	head, err := f.o.OCSP.Load(ctx, f.o.Source)
	if err != nil {
		return err
	}
	f.mark = head
	f.advance(head.Seq)
	f.lastRead.Store(int64(readStart))
	f.loaded.Store(true)
	f.o.Logger.Info("status feed: OCSP, CRLs and verification follow the status changes from memory",
		"applied", head.Seq, "poll", f.o.Poll, "notifications", f.o.Notified, "trust_window", f.o.TrustWindow)
	return nil
}

// Applied is the number of the last change applied.
func (f *Feed) Applied() int64 { return f.applied.Load() }

// Trusted reports whether the table is known to be current within the
// feed's latency: loaded, read to its end within the trust window and, on
// PostgreSQL, with notifications flowing.
func (f *Feed) Trusted() bool {
	if !f.loaded.Load() || !f.listening.Load() {
		return false
	}
	return time.Duration(int64(time.Since(f.start))-f.lastRead.Load()) < f.o.TrustWindow
}

// Status is verification's view of a certificate's revocation state
// (verify.Current): from the table while the feed is trusted; ok false
// means "read the store".
func (f *Feed) Status(_ context.Context, serial string) (store.Revocation, bool) {
	if !f.Trusted() {
		return store.Revocation{}, false
	}
	return f.o.OCSP.status(serial)
}

// waitLimit bounds how long Wait waits for the feed (a database that
// stopped answering).
const waitLimit = 5 * time.Second

// Wait returns once the change numbered seq (and every change before it)
// is applied: the status in the OCSP table (its answer signed, unless the
// read carried more than signInline changes: then signed by the refresh
// workers or on the first request), the CRL publisher told. It wakes the
// reader itself, so it does not depend on the commit signal. (A database
// restored under a running node hands numbers out again: Wait may then
// return before the feed's reload; README requires stopping the nodes
// first.)
func (f *Feed) Wait(ctx context.Context, seq int64) error {
	if seq <= 0 {
		return nil
	}
	t := time.NewTimer(waitLimit)
	defer t.Stop()
	for {
		f.mu.Lock()
		ch := f.advanced
		f.mu.Unlock()
		if f.applied.Load() >= seq {
			return nil
		}
		f.Wake()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("the status feed has not applied change %d within %s (applied: %d)", seq, waitLimit, f.applied.Load())
		}
	}
}

// Wake makes Run read the feed now. It never blocks.
func (f *Feed) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run follows the feed until ctx ends; it returns after its listener.
func (f *Feed) Run(ctx context.Context) {
	var listener sync.WaitGroup
	defer listener.Wait()
	listener.Add(1)
	go func() {
		defer listener.Done()
		f.o.Source.Listen(ctx, f.onChange)
	}()
	poll := time.NewTicker(f.o.Poll)
	defer poll.Stop()
	signal := f.o.Source.FeedSignal()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-signal:
		case <-f.wake:
		case <-poll.C:
		}
		err := f.catchUp(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			f.o.Logger.Error("status feed: cannot read the database; verification reads it directly until the feed is back", "err", err, "applied", f.applied.Load())
		case err == nil && failing:
			failing = false
			f.o.Logger.Info("status feed: reading again", "applied", f.applied.Load())
		}
	}
}

// onChange handles a notification from the store's listener.
func (f *Feed) onChange(c store.Change) {
	switch c.Kind {
	case store.ChangeFeed:
		f.Wake()
	case store.ChangeCRL:
		if f.o.CRL != nil {
			f.o.CRL.Changed()
		}
	case store.ChangeResync:
		// (Re)connected: whatever was missed meanwhile is in the feed.
		f.listening.Store(true)
		f.Wake()
		if f.o.CRL != nil {
			f.o.CRL.Changed()
		}
	case store.ChangeLost:
		f.listening.Store(false)
		f.o.Logger.Warn("status feed: notifications lost; verification reads the database until they are back")
	}
}

// feedPage is how many changes one read returns.
const feedPage = 1000

// catchUp applies every change after the last applied. Each read starts
// at the last change applied (its mark) and must find it again: a
// different row under its number (a database restored from a backup hands
// the numbers out again), none (the head went back, or the reader fell
// further behind than the store keeps) or a gap after it makes it reload
// every status instead.
func (f *Feed) catchUp(ctx context.Context) error {
	for {
		m := f.mark
		readStart := time.Since(f.start)
		var batch []store.CertStatus
		next, last := m.Seq, m
		var reason string
		found := m.Seq == 0 // the first row read must be the mark
		n, err := f.o.Source.ReadFeed(ctx, max(m.Seq-1, 0), feedPage, func(seq int64, c store.CertStatus) error {
			switch {
			case !found && seq != m.Seq:
				reason = fmt.Sprintf("change %d, the last applied, is no longer in the feed (the next is %d)", m.Seq, seq)
				return errGap
			case !found && c.Mark(seq) != m:
				reason = fmt.Sprintf("change %d is no longer the one applied (%s): the database went back (restored?)", seq, m.Serial)
				return errGap
			case !found:
				found = true
				return nil
			case seq != next+1:
				reason = fmt.Sprintf("changes %d to %d are no longer kept", next+1, seq-1)
				return errGap
			}
			next, last = seq, c.Mark(seq)
			batch = append(batch, c)
			return nil
		})
		if reason != "" {
			return f.reload(ctx, reason)
		}
		if err != nil {
			return err
		}
		if n == 0 && m.Seq > 0 {
			return f.reload(ctx, fmt.Sprintf("change %d, the last applied, is no longer in the feed: the database went back (restored?)", m.Seq))
		}
		if len(batch) > 0 {
			if revoked := f.o.OCSP.Apply(batch); len(revoked) > 0 {
				if f.o.CRL != nil {
					f.o.CRL.Trigger()
				}
				f.o.Logger.Info("status feed: applied revocations", "count", len(revoked), "serials", firstSerials(revoked, 5), "applied", next)
			}
			f.Changes.Add(int64(len(batch)))
			f.mark = last
			f.advance(next)
			if f.o.OnChange != nil {
				f.o.OnChange(next)
			}
		}
		if n < feedPage {
			// The table holds every change committed before this read
			// began.
			f.lastRead.Store(int64(readStart))
			return nil
		}
	}
}

// firstSerials is at most n of serials, for a log line.
func firstSerials(serials []string, n int) []string {
	if len(serials) > n {
		return append(serials[:n:n], "…")
	}
	return serials
}

var errGap = fmt.Errorf("gap in the status feed")

// reload reads every status again, after changes were missed.
func (f *Feed) reload(ctx context.Context, why string) error {
	f.o.Logger.Warn("status feed: reloading every status", "why", why)
	f.Reloads.Add(1)
	readStart := time.Since(f.start)
	head, err := f.o.OCSP.Load(ctx, f.o.Source)
	if err != nil {
		return err
	}
	f.o.OCSP.kick()
	if f.o.CRL != nil {
		f.o.CRL.Trigger()
	}
	f.mark = head
	f.mu.Lock()
	f.applied.Store(head.Seq)
	close(f.advanced)
	f.advanced = make(chan struct{})
	f.mu.Unlock()
	f.lastRead.Store(int64(readStart))
	return nil
}

// advance records seq as applied and wakes the waiters.
func (f *Feed) advance(seq int64) {
	f.mu.Lock()
	if seq > f.applied.Load() {
		f.applied.Store(seq)
	}
	close(f.advanced)
	f.advanced = make(chan struct{})
	f.mu.Unlock()
}

// FeedPruner is the store side of RunFeedPruner (store.SQL).
type FeedPruner interface {
	PruneFeed(ctx context.Context, keep int64) (int64, error)
	TryLockFeedPruner(ctx context.Context) (unlock func(), ok bool, err error)
}

// RunFeedPruner deletes, a minute after start and then every period until
// ctx ends, the feed's changes older than the newest store.FeedKeep, on
// one node at a time.
func RunFeedPruner(ctx context.Context, st FeedPruner, every time.Duration, log *slog.Logger) {
	wait := time.NewTimer(min(time.Minute, every))
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
			wait.Reset(every)
		}
		unlock, ok, err := st.TryLockFeedPruner(ctx)
		if err != nil || !ok {
			continue
		}
		n, err := st.PruneFeed(ctx, 0)
		unlock()
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pruning the status feed", "err", err)
		case n > 0:
			log.Info("pruned the status feed", "deleted", n, "kept", store.FeedKeep)
		}
	}
}
