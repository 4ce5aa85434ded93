package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/journal"
)

// How a request gets into the audit log: an allowed request's decision is
// written to the journal before any byte of it reaches the upstream (one
// pwrite, and an fdatasync shared with concurrent requests when decisions
// are synced); once the request is finished, its one audit event, carrying
// the decision and the outcome (status, bytes, latency), is handed to the
// recorder, which appends the events of recordDelay at a time as one batch
// so that they share a commit, and then settles their journal records. A
// crash in between leaves the decision in the journal, and the next start
// records it (see recover). A refused request has nothing to journal: its
// access.denied event goes the same way after the answer.

// maxRecording bounds the finished requests waiting for the recorder;
// beyond it, finishing requests wait (backpressure) rather than queue
// without limit.
const maxRecording = 4096

// recordDelay is how long the recorder lets finished requests gather
// before appending their events in one batch.
const recordDelay = 5 * time.Millisecond

// maxRecordBatch caps one batch.
const maxRecordBatch = 512

// recordDecision writes the decision to allow x to the journal, as durably
// as Config.DecisionDurability asks, before the request is forwarded: if
// it cannot be written, or the audit log refuses events, the access does
// not happen (fail closed). The record is the request's audit event as it
// would be recorded if writ stopped before the outcome, with the event id
// its final event will carry.
func (p *Proxy) recordDecision(ctx context.Context, x *exchange) error {
	if p.c.AuditFailed != nil {
		if err := p.c.AuditFailed(); err != nil {
			return err
		}
	}
	id, err := audit.NewEventID(x.start)
	if err != nil {
		return err
	}
	x.eventID = id
	e := p.event(audit.AccessAllowed, x, false)
	e.ID, e.Time = id, x.start.UTC().Round(0)
	data, err := e.MarshalCanonical()
	if err != nil {
		return err
	}
	if x.ticket, err = p.journal.Begin(data); err != nil {
		return err
	}
	x.decided = true
	return nil
}

// failClosed answers an allowed request whose decision could not be
// recorded: nothing was forwarded.
func (p *Proxy) failClosed(w http.ResponseWriter, ctx context.Context, x *exchange, err error) {
	p.c.Log.ErrorContext(ctx, "record access decision; request not forwarded", "request_id", x.id, "error", err)
	writeJSON(w, http.StatusServiceUnavailable, errorBody{
		Error:     "the audit log could not record this access, so it was not made (writ fails closed); try again",
		Policy:    x.dec.Policy,
		Rule:      x.dec.Rule,
		RequestID: x.id,
	})
}

// record hands the finished request x to the recorder for its audit event
// (access.denied for a refusal, access.allowed with the outcome after an
// allowed request). The response is already complete. Shutdown and Flush
// wait for every event to be recorded.
func (p *Proxy) record(ctx context.Context, x *exchange) {
	x.latency = time.Since(x.start)
	p.recorded.Add(1)
	p.recMu.RLock()
	if !p.stopped {
		p.rec <- x
		p.recMu.RUnlock()
		return
	}
	p.recMu.RUnlock()
	p.recordBatch(context.WithoutCancel(ctx), []*exchange{x})
}

// recordLoop is the recorder goroutine. It stops when Close closes rec.
func (p *Proxy) recordLoop() {
	defer close(p.recDone)
	batch := make([]*exchange, 0, maxRecordBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for x := range p.rec {
		batch = append(batch[:0], x)
		timer.Reset(recordDelay)
	gather:
		for len(batch) < maxRecordBatch {
			select {
			case x, ok := <-p.rec:
				if !ok {
					break gather
				}
				batch = append(batch, x)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		p.recordBatch(context.Background(), batch)
		clear(batch)
	}
}

// recordBatch appends the events of batch and settles the journal records
// of those that had one. If the append fails the records stay in the
// journal, and the next start records those the log does not hold.
func (p *Proxy) recordBatch(ctx context.Context, batch []*exchange) {
	defer p.recorded.Add(-len(batch))
	events := make([]audit.Event, len(batch))
	for i, x := range batch {
		typ := audit.AccessDenied
		if x.effect == "allow" || x.decided {
			typ = audit.AccessAllowed
		}
		events[i] = p.event(typ, x, true)
		events[i].ID = x.eventID
	}
	if err := audit.EmitBatch(ctx, p.c.Emitter, events); err != nil {
		p.c.Log.ErrorContext(ctx, "record proxy requests; allowed ones stay in the decision journal until a restart records them",
			"requests", len(batch), "first_request_id", batch[0].id, "error", err)
		return
	}
	for _, x := range batch {
		if x.decided {
			p.journal.Done(x.ticket)
		}
	}
}

// recover records the decisions a crash left in the journal whose event
// the audit log does not hold, as access.allowed events whose outcome is
// unknown.
func (p *Proxy) recover(ctx context.Context) error {
	recs, damaged, err := journal.Recover(p.c.Journal)
	if err != nil {
		return fmt.Errorf("create access proxy: %w", err)
	}
	if damaged {
		p.c.Log.Warn("the decision journal ends in a torn record (a power loss during a write); the decisions before it are recovered", "journal", p.c.Journal)
	}
	var lost []audit.Event
	for i, rec := range recs {
		var e audit.Event
		if err := json.Unmarshal(rec, &e); err != nil || e.ID == "" || e.Type == "" {
			return fmt.Errorf("create access proxy: decision %d in journal %s is not an audit event (%v); move the file away to start without it", i+1, p.c.Journal, err)
		}
		if p.c.Recorded != nil {
			ok, err := p.c.Recorded(ctx, e.ID)
			if err != nil {
				return fmt.Errorf("create access proxy: look up recovered decision %s: %w", e.ID, err)
			}
			if ok {
				continue
			}
		}
		if e.Details == nil {
			e.Details = map[string]string{}
		}
		e.Details["outcome"] = "unknown"
		e.Reason = "writ stopped before this request's outcome was recorded; recovered from the proxy's decision journal"
		lost = append(lost, e)
	}
	if len(lost) == 0 {
		return nil
	}
	for b := range slices.Chunk(lost, maxRecordBatch) {
		if err := audit.EmitBatch(ctx, p.c.Emitter, b); err != nil {
			return fmt.Errorf("create access proxy: record %d decisions recovered from journal %s: %w", len(lost), p.c.Journal, err)
		}
	}
	p.c.Log.Warn("recorded accesses whose outcome a crash kept from the audit log", "events", len(lost), "journal", p.c.Journal)
	return nil
}

func (p *Proxy) event(typ audit.Type, x *exchange, done bool) audit.Event {
	e := audit.Event{
		Type: typ, Decision: x.effect, Policy: x.dec.Policy, Rule: x.dec.Rule, Reason: x.reason,
		Credential: x.cred, Source: x.source, Node: p.c.Node, RequestID: x.id, Task: x.task.ID, OnBehalfOf: x.task.OnBehalfOf,
		Action:  x.method + " " + x.path,
		Details: map[string]string{"method": x.method, "path": x.path},
	}
	if done {
		e.LatencyUS = x.latency.Microseconds()
		e.Details["status"] = strconv.Itoa(x.status)
		e.Details["bytes_in"] = strconv.FormatInt(x.in, 10)
		e.Details["bytes_out"] = strconv.FormatInt(x.out, 10)
	}
	if e.Decision == "" && typ == audit.AccessAllowed {
		e.Decision = "allow"
	}
	if x.svc != nil {
		e.Target = x.svc.Target()
		e.Details["service"] = x.svc.Name
	}
	if c := x.caller; c != nil {
		e.SpiffeID, e.Instance = c.SpiffeID, c.Instance
		e.Details["via"] = c.Via
		if c.PID > 0 {
			e.Details["pid"] = strconv.Itoa(c.PID)
		}
		if e.Task == "" {
			e.Task = c.Task
		}
	}
	if x.appr != "" {
		e.Details["approval"] = x.appr
	}
	if len(x.query) > 0 {
		e.Details["query"] = p.queryForAudit(x.query)
	}
	return e
}

// queryForAudit returns the query's parameter names, or the whole query
// when LogQueryValues is set.
func (p *Proxy) queryForAudit(q url.Values) string {
	if p.c.LogQueryValues {
		return q.Encode()
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, "&")
}
