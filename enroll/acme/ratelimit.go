package acme

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/internal/addrkey"
)

// limiter is a token bucket per client address (addrkey) over every
// request to /acme/*, kept in this node's memory: an unauthenticated
// request must not cause a durable write, and the limit's job (keeping
// one address from taking a node's CPU and database) is per node anyway.
// At most max buckets are kept; when full, buckets that are full again
// (idle) are dropped, and if none is, the oldest half. Safe for concurrent
// use.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last refilled
}

func newLimiter(rate float64, burst, max int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), max: max, buckets: make(map[string]*bucket)}
}

// take takes a token from addr's bucket; when there is none it returns
// how long until there is.
func (l *limiter) take(addr string, now time.Time) (ok bool, wait time.Duration) {
	k := addrkey.Of(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[k] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// evict makes room: idle buckets first (a full bucket is the same as
// none), else the half refilled longest ago.
func (l *limiter) evict(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.at) >= full {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.max {
		return
	}
	var ages []time.Time
	for _, b := range l.buckets {
		ages = append(ages, b.at)
	}
	// The median time: drop everything refilled before it.
	cut := quickMedian(ages)
	for k, b := range l.buckets {
		if !b.at.After(cut) {
			delete(l.buckets, k)
		}
	}
}

func quickMedian(ts []time.Time) time.Time {
	// Sorting 100,000 times happens once per 50,000 new addresses: cheap
	// enough, and simple.
	slices.SortFunc(ts, time.Time.Compare)
	return ts[len(ts)/2]
}

// rateLimit is the middleware: a refused request gets a rateLimited problem
// (RFC 8555 §6.7) with Retry-After, before anything is parsed or read.
func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.limit == nil {
			return next(c)
		}
		ok, wait := s.limit.take(c.RealIP(), s.o.Now())
		if ok {
			return next(c)
		}
		secs := int(math.Ceil(wait.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		return &Problem{Type: ns + "rateLimited", Status: http.StatusTooManyRequests,
			Detail: "请求过于频繁，请稍后再试。 / Too many requests from this address: try again in " + strconv.Itoa(max(secs, 1)) + " s."}
	}
}
