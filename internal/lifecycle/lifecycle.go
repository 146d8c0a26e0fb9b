// Package lifecycle owns a node's background goroutines: each is started
// with a name, and Stop ends them in the reverse order of their start,
// waiting for each, so that a task never outlives one it depends on (the
// feed stops after what reads from it, the store closes after all).
package lifecycle

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Group is a set of named tasks. The zero value is not usable: use New.
type Group struct {
	parent context.Context
	log    *slog.Logger
	mu     sync.Mutex
	tasks  []*task
	closed bool
}

type task struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a group whose tasks also end when parent does.
func New(parent context.Context, log *slog.Logger) *Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Group{parent: parent, log: log}
}

// Go starts fn in its own goroutine with a context that ends at Stop (or
// when the parent's does). A task started after Stop is not run.
func (g *Group) Go(name string, fn func(ctx context.Context)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	ctx, cancel := context.WithCancel(g.parent)
	t := &task{name: name, cancel: cancel, done: make(chan struct{})}
	g.tasks = append(g.tasks, t)
	go func() {
		defer close(t.done)
		fn(ctx)
	}()
}

// Stop ends the tasks, the last started first, waiting up to timeout for
// each; a task that does not end in time is logged and left behind.
func (g *Group) Stop(timeout time.Duration) {
	g.mu.Lock()
	g.closed = true
	tasks := g.tasks
	g.tasks = nil
	g.mu.Unlock()
	for i := len(tasks) - 1; i >= 0; i-- {
		t := tasks[i]
		t.cancel()
		select {
		case <-t.done:
		case <-time.After(timeout):
			g.log.Warn("a background task did not stop in time", "task", t.name, "waited", timeout)
		}
	}
}
