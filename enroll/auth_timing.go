package enroll

import (
	"context"
	"sync"
	"time"
)

// A failed login must take as long whichever account was tried: an unknown
// username, an account with the configured argon2id hash, one still holding
// the bcrypt hash it was imported with. Spending the slowest kind's work on
// every attempt would double the CPU of every login at the reporting
// deadline; instead each refusal is held, after its own hash work, until a
// floor that covers the slowest hash scheme in use. The wait is a timer,
// not CPU, and it is taken outside the bounded hashing slots.
//
// The floor is margin × load × the slowest scheme's idle cost. A scheme's
// idle cost is the fastest verification seen (calibrated at start-up for
// the configured parameters and for every scheme found in the store, then
// learned from each login). load follows how much slower than idle the
// verifications run now, whatever their scheme, so that the floor still
// covers a slow scheme when the CPU is busy with fast ones.
type timingFloor struct {
	mu   sync.Mutex
	base map[string]time.Duration
	load float64
}

const (
	// floorMargin covers the jitter of one verification around its
	// scheme's cost.
	floorMargin = 1.3
	// floorLoadWeight is the weight of one verification in load.
	floorLoadWeight = 0.1
	// maxFloor bounds the floor against a clock that jumped during a
	// measurement.
	maxFloor = 30 * time.Second
)

func newTimingFloor() *timingFloor {
	return &timingFloor{base: map[string]time.Duration{}, load: 1}
}

// observe records that one verification of scheme took d.
func (f *timingFloor) observe(scheme string, d time.Duration) {
	if scheme == "" || d <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.base[scheme]
	if !ok || d < b {
		f.base[scheme] = d
		b = d
	}
	f.load = (1-floorLoadWeight)*f.load + floorLoadWeight*float64(d)/float64(b)
}

// calibrated records a scheme's idle cost measured at start-up, without
// touching load.
func (f *timingFloor) calibrated(scheme string, d time.Duration) {
	if scheme == "" || d <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.base[scheme]; !ok || d < b {
		f.base[scheme] = d
	}
}

// covers reports whether scheme's cost is known.
func (f *timingFloor) covers(scheme string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.base[scheme]
	return ok
}

// floor is how long a refused attempt's hash step takes at least.
func (f *timingFloor) floor() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var slowest time.Duration
	for _, b := range f.base {
		slowest = max(slowest, b)
	}
	return min(time.Duration(floorMargin*max(f.load, 1)*float64(slowest)), maxFloor)
}

// holdUntil waits until t, or until ctx ends.
func holdUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}
