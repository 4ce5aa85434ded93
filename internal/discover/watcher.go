package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

// DefaultInterval is how often a [Watcher] scans unless told otherwise.
const DefaultInterval = 30 * time.Second

// WatcherConfig configures a [Watcher]. Scanner and Emitter are required.
type WatcherConfig struct {
	Scanner *Scanner
	// Emitter records the discovery.* events.
	Emitter audit.Emitter
	// Interval between scans; defaults to DefaultInterval.
	Interval time.Duration
	// Record receives every report (the inventory); optional. An error is
	// logged and the next scan tries again.
	Record func(ctx context.Context, r *Report) error
	// Log receives warnings; defaults to discarding.
	Log *slog.Logger
}

// Watcher scans on an interval and records what is new as audit events:
// [audit.DiscoveryAgentFound] for each agent or MCP server process not
// seen before (a process is its pid and start time),
// [audit.DiscoveryCredentialFound] for each credential id not seen before,
// and [audit.DiscoveryShadowAccess] for each shadow finding not seen
// before. What a Watcher has seen lives in memory: after a restart the
// first scan reports everything again, except the keys passed to Seen
// (writ serve passes those of the agents, MCP servers and credentials the
// inventory already holds).
type Watcher struct {
	c WatcherConfig

	mu   sync.Mutex // serialises steps
	seen map[string]bool
}

// NewWatcher returns a Watcher.
func NewWatcher(c WatcherConfig) (*Watcher, error) {
	if c.Scanner == nil || c.Emitter == nil {
		return nil, errors.New("create discovery watcher: Scanner and Emitter are required")
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{c: c, seen: map[string]bool{}}, nil
}

// Run scans now and then every Interval until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.c.Interval)
	defer t.Stop()
	for {
		if _, err := w.Step(ctx); err != nil && ctx.Err() == nil {
			w.c.Log.WarnContext(ctx, "discovery scan failed; trying again at the next interval", "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Step scans once, records the report, and emits an event for everything
// new. It returns the report.
func (w *Watcher) Step(ctx context.Context) (*Report, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rep, err := w.c.Scanner.Scan(ctx)
	if err != nil {
		return nil, err
	}
	if w.c.Record != nil {
		if err := w.c.Record(ctx, rep); err != nil {
			w.c.Log.WarnContext(ctx, "record discovery report", "error", err)
		}
	}
	var errs []error
	for _, e := range Events(rep) {
		key := e.Details["key"]
		if w.seen[key] {
			continue
		}
		if err := w.c.Emitter.Emit(ctx, e); err != nil {
			errs = append(errs, err)
			continue // not seen: emitted again next time
		}
		w.seen[key] = true
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("record discovery events: %w", errors.Join(errs...))
	}
	return rep, nil
}

// Seen marks keys (as [Events] puts in Details["key"]) as already
// reported.
func (w *Watcher) Seen(keys ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		w.seen[k] = true
	}
}

// ProcessKey names one process for its lifetime: host, pid and start time.
func ProcessKey(host string, p *Process) string {
	return "process/" + host + "/" + strconv.Itoa(p.PID) + "/" + strconv.FormatUint(p.StartTicks, 10)
}

// Events returns the events that report everything in rep, each with a
// stable Details["key"]. They hold names, ids and keyed fingerprints, never
// a secret value.
func Events(rep *Report) []audit.Event {
	var out []audit.Event
	for i := range rep.Processes {
		p := &rep.Processes[i]
		if !p.Interesting() {
			continue
		}
		out = append(out, audit.Event{Type: audit.DiscoveryAgentFound, SpiffeID: p.Identity, Node: rep.Host,
			Target: string(p.Kind) + "/" + p.Name,
			Details: map[string]string{
				"key": ProcessKey(rep.Host, p), "kind": string(p.Kind), "name": p.Name, "pid": strconv.Itoa(p.PID),
				"uid": strconv.Itoa(p.UID), "exe": p.Exe, "sha256": p.SHA256, "confidence": strconv.FormatFloat(p.Confidence, 'f', 2, 64),
				"evidence": strings.Join(p.Evidence, "; "), "identified": strconv.FormatBool(p.Identity != ""),
			}})
	}
	for _, c := range rep.Credentials {
		out = append(out, audit.Event{Type: audit.DiscoveryCredentialFound, Credential: c.ID, Node: rep.Host,
			Details: map[string]string{"key": "credential/" + rep.Host + "/" + c.ID, "kind": c.Kind, "source": c.Source, "name": c.Name,
				"path": c.Path, "fingerprint": c.Fingerprint, "uid": strconv.Itoa(c.UID)}})
	}
	for _, s := range rep.Shadows {
		key := "shadow/" + rep.Host + "/" + string(s.Kind) + "/" + strconv.Itoa(s.PID) + "/" + s.Process + "/" + s.Credential + "/" + s.Service
		if s.PID != 0 {
			for i := range rep.Processes {
				if rep.Processes[i].PID == s.PID {
					key += "/" + strconv.FormatUint(rep.Processes[i].StartTicks, 10)
				}
			}
		}
		target := s.Service
		if target != "" {
			target = "Service/" + target
		}
		out = append(out, audit.Event{Type: audit.DiscoveryShadowAccess, Node: rep.Host, Target: target, Credential: s.Credential,
			Source: s.Remote, Reason: s.Detail,
			Details: map[string]string{"key": key, "kind": string(s.Kind), "pid": strconv.Itoa(s.PID), "process": s.Process}})
	}
	return out
}
