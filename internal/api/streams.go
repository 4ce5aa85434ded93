package api

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
)

// streams tracks the long-lived answers (the audit tail, a task's wait for
// approval), so that a shutting-down server can end them at once instead
// of waiting out its drain timeout for clients that would never leave.
type streams struct {
	open     atomic.Int64
	stopOnce sync.Once
	stop     chan struct{}
}

func newStreams() *streams { return &streams{stop: make(chan struct{})} }

// begin returns the context a long-lived answer to r runs under: it ends
// with the request or when [streams.close] is called. end must be called
// when the answer is done.
func (s *streams) begin(r *http.Request) (ctx context.Context, end func()) {
	ctx, cancel := context.WithCancel(r.Context())
	s.open.Add(1)
	done := make(chan struct{})
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-done:
		}
	}()
	return ctx, func() {
		close(done)
		cancel()
		s.open.Add(-1)
	}
}

func (s *streams) close() { s.stopOnce.Do(func() { close(s.stop) }) }

// EndStreams ends every long-lived answer now and every one begun later
// (audit tails, waits for an approval): call it when the server starts to
// shut down, before draining requests.
func (a *API) EndStreams() { a.streams.close() }

// OpenStreams is the number of long-lived answers in progress.
func (a *API) OpenStreams() int64 { return a.streams.open.Load() }
