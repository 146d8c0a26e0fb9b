package lifecycle

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestStopReverseOrder: tasks end last-started first, each after the
// previous one has returned; a task started after Stop never runs.
func TestStopReverseOrder(t *testing.T) {
	g := New(context.Background(), nil)
	var mu sync.Mutex
	var order []string
	for _, name := range []string{"feed", "ocsp", "crl"} {
		g.Go(name, func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(5 * time.Millisecond) // a slow stop must still be waited for
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
		})
	}
	g.Stop(time.Second)
	if len(order) != 3 || order[0] != "crl" || order[1] != "ocsp" || order[2] != "feed" {
		t.Fatalf("stopped in order %v, want [crl ocsp feed]", order)
	}
	ran := make(chan struct{}, 1)
	g.Go("late", func(context.Context) { ran <- struct{}{} })
	select {
	case <-ran:
		t.Fatal("a task started after Stop ran")
	case <-time.After(20 * time.Millisecond):
	}
}

// TestParentEnds: the tasks see the parent's end; Stop then returns at once.
func TestParentEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := New(ctx, nil)
	done := make(chan struct{})
	g.Go("t", func(ctx context.Context) { <-ctx.Done(); close(done) })
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("the task did not see the parent's end")
	}
	start := time.Now()
	g.Stop(time.Second)
	if time.Since(start) > 500*time.Millisecond {
		t.Error("Stop waited for a task that had ended")
	}
}

// TestStopTimeout: a task that ignores its context does not hold Stop
// beyond the timeout.
func TestStopTimeout(t *testing.T) {
	g := New(context.Background(), nil)
	block := make(chan struct{})
	defer close(block)
	g.Go("stuck", func(context.Context) { <-block })
	start := time.Now()
	g.Stop(50 * time.Millisecond)
	if d := time.Since(start); d < 50*time.Millisecond || d > time.Second {
		t.Errorf("Stop took %v with a stuck task and a 50ms timeout", d)
	}
}
