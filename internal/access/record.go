package access

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/journal"
)

// How an access gets into the audit log: an allowed access's decision is
// written to the journal before Enforce returns, so before any byte of it
// reaches the upstream (one pwrite, and an fdatasync shared with
// concurrent accesses when decisions are synced); once the access is
// finished, its one audit event, carrying the decision and the outcome
// (status, bytes, latency), is handed to the recorder, which appends the
// events of recordDelay at a time as one batch so that they share a
// commit, and then settles their journal records. A crash in between
// leaves the decision in the journal, and the next start records it (see
// recover). A refused access's access.denied event, complete, is written to
// the journal (without waiting for a sync) before the refusal is answered,
// and goes the same way.

// maxRecording bounds the finished accesses waiting for the recorder;
// beyond it, Record waits (backpressure) rather than queue without limit.
const maxRecording = 4096

// recordDelay is how long the recorder lets finished accesses gather
// before appending their events in one batch. Each batch costs a commit,
// an fdatasync and a search-index write whatever its size, so at a
// moderate rate (1,000 requests/s) a longer wait is less CPU per request
// (5 ms -> 25 ms: about 15% less, bench/README "Proxy"); the events are
// already safe in the journal, so the wait only delays when they can be
// read.
const recordDelay = 25 * time.Millisecond

// maxRecordBatch caps one batch.
const maxRecordBatch = 512

// finished is an access handed to the recorder.
type finished struct {
	req     *Request
	out     *Outcome
	res     Result
	latency time.Duration
}

// journalDecision writes the decision to allow req to the journal, as
// durably as Config.DecisionDurability asks: if it cannot be written, or
// the audit log refuses events, the access must not happen (fail closed).
// The record is the access's audit event as it would be recorded if writ
// stopped before the outcome, with the event id its final event will
// carry.
func (e *Enforcer) journalDecision(req *Request, out *Outcome) error {
	if e.c.AuditFailed != nil {
		if err := e.c.AuditFailed(); err != nil {
			return err
		}
	}
	id, err := audit.NewEventID(req.Start)
	if err != nil {
		return err
	}
	out.EventID = id
	ev := e.event(audit.AccessAllowed, req, out, nil, 0)
	ev.ID, ev.Time = id, req.Start.UTC().Round(0)
	buf := journalBufs.Get().(*[]byte)
	defer journalBufs.Put(buf)
	data, err := ev.AppendCanonical((*buf)[:0])
	if err != nil {
		return err
	}
	*buf = data
	if out.ticket, err = e.journal.Begin(data); err != nil {
		return err
	}
	out.decided = true
	return nil
}

// journalBufs holds buffers for decisions' encodings, which the journal
// copies: one allocation fewer per access.
var journalBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Record hands a finished access to the recorder for its one audit event:
// access.allowed with the result when out allowed it (or it was
// journaled), access.denied otherwise. A refusal's event is first written
// to the journal (one write, no sync), so that a crash before the recorder
// appends it does not lose it: call Record before answering a refusal. An
// Unavailable outcome is not recorded: the audit log is what failed. req
// and out must not change afterwards. [Enforcer.Flush] and
// [Enforcer.Close] wait for the event.
func (e *Enforcer) Record(ctx context.Context, req *Request, out *Outcome, res Result) {
	if out.Class == Unavailable {
		return
	}
	f := finished{req: req, out: out, res: res, latency: time.Since(req.Start)}
	if out.Effect == Deny && !out.decided {
		e.journalRefusal(ctx, &f)
	}
	e.recorded.Add(1)
	e.recMu.RLock()
	if !e.stopped {
		e.rec <- f
		e.recMu.RUnlock()
		return
	}
	e.recMu.RUnlock()
	e.recordBatch(context.WithoutCancel(ctx), []finished{f})
}

// journalRefusal writes the event of a refused access to the journal
// under the id it is recorded with. If it cannot be written the event
// still goes to the recorder: the refusal happens either way.
func (e *Enforcer) journalRefusal(ctx context.Context, f *finished) {
	id, err := audit.NewEventID(f.req.Start)
	if err != nil {
		e.c.Log.ErrorContext(ctx, "journal a refused access", "request_id", f.req.ID, "error", err)
		return
	}
	f.out.EventID = id
	ev := e.event(audit.AccessDenied, f.req, f.out, &f.res, f.latency)
	ev.ID, ev.Time = id, e.c.Now().UTC().Round(0)
	data, err := ev.MarshalCanonical()
	if err == nil {
		f.out.ticket, err = e.journal.BeginWritten(data)
	}
	if err != nil {
		e.c.Log.ErrorContext(ctx, "journal a refused access; its event is lost if writ stops before it is recorded", "request_id", f.req.ID, "error", err)
		return
	}
	f.out.journaled = true
}

// recordLoop is the recorder goroutine. It stops when Close closes rec.
func (e *Enforcer) recordLoop() {
	defer close(e.recDone)
	batch := make([]finished, 0, maxRecordBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for f := range e.rec {
		batch = append(batch[:0], f)
		timer.Reset(recordDelay)
	gather:
		for len(batch) < maxRecordBatch {
			select {
			case f, ok := <-e.rec:
				if !ok {
					break gather
				}
				batch = append(batch, f)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		e.recordBatch(context.Background(), batch)
		clear(batch)
	}
}

// recordBatch appends the events of batch and settles the journal records
// of those that had one. If the append fails the records stay in the
// journal, and the next start records those the log does not hold.
func (e *Enforcer) recordBatch(ctx context.Context, batch []finished) {
	defer e.recorded.Add(-len(batch))
	events := make([]audit.Event, len(batch))
	for i, f := range batch {
		typ := audit.AccessDenied
		if f.out.Effect == Allow || f.out.decided {
			typ = audit.AccessAllowed
		}
		events[i] = e.event(typ, f.req, f.out, &f.res, f.latency)
		events[i].ID = f.out.EventID
	}
	if err := audit.EmitBatch(ctx, e.c.Emitter, events); err != nil {
		e.c.Log.ErrorContext(ctx, "record accesses; allowed ones stay in the decision journal until a restart records them",
			"requests", len(batch), "first_request_id", batch[0].req.ID, "error", err)
		return
	}
	for _, f := range batch {
		if f.out.decided || f.out.journaled {
			e.journal.Done(f.out.ticket)
		}
	}
}

// recover records the decisions a crash left in the journal whose event
// the audit log does not hold: access.allowed events whose outcome is
// unknown, and refusals' access.denied events as they were journaled.
func (e *Enforcer) recover(ctx context.Context) error {
	path := e.c.Journal
	recs, damaged, err := journal.Recover(path)
	if err != nil {
		return fmt.Errorf("create access enforcer: %w", err)
	}
	if damaged {
		e.c.Log.Warn("the decision journal ends in a torn record (a power loss during a write); the decisions before it are recovered", "journal", path)
	}
	var lost []audit.Event
	for i, rec := range recs {
		var ev audit.Event
		if err := json.Unmarshal(rec, &ev); err != nil || ev.ID == "" || ev.Type == "" {
			return fmt.Errorf("create access enforcer: decision %d in journal %s is not an audit event (%v); move the file away to start without it", i+1, path, err)
		}
		if e.c.Recorded != nil {
			ok, err := e.c.Recorded(ctx, ev.ID)
			if err != nil {
				return fmt.Errorf("create access enforcer: look up recovered decision %s: %w", ev.ID, err)
			}
			if ok {
				continue
			}
		}
		if ev.Type == audit.AccessDenied {
			lost = append(lost, ev) // a refusal: its event is complete
			continue
		}
		if ev.Details == nil {
			ev.Details = map[string]string{}
		}
		ev.Details["outcome"] = "unknown"
		ev.Reason = "writ stopped before this request's outcome was recorded; recovered from the proxy's decision journal"
		lost = append(lost, ev)
	}
	if len(lost) == 0 {
		return nil
	}
	for b := range slices.Chunk(lost, maxRecordBatch) {
		if err := audit.EmitBatch(ctx, e.c.Emitter, b); err != nil {
			return fmt.Errorf("create access enforcer: record %d decisions recovered from journal %s: %w", len(lost), path, err)
		}
	}
	e.c.Log.Warn("recorded accesses whose outcome a crash kept from the audit log", "events", len(lost), "journal", path)
	return nil
}

// event is the audit event of an access; res is nil for the decision
// journaled before the outcome is known.
func (e *Enforcer) event(typ audit.Type, req *Request, out *Outcome, res *Result, latency time.Duration) audit.Event {
	ev := audit.Event{
		Type: typ, Policy: out.Policy, Rule: out.Rule,
		Credential: out.Credential.Name, Source: req.Source, Node: e.c.Node, RequestID: req.ID, Task: out.Task.ID, OnBehalfOf: out.Task.OnBehalfOf,
		Action:  req.Method + " " + req.object(),
		Details: map[string]string{"method": req.Method},
	}
	switch {
	case req.Tool != "":
		ev.Details["tool"] = req.Tool
	case req.Resource != "":
		ev.Details["resource"] = req.Resource
	case req.Prompt != "":
		ev.Details["prompt"] = req.Prompt
	default:
		ev.Details["path"] = req.Path
	}
	if res != nil {
		ev.Decision = out.Effect.String()
		ev.Reason = res.Reason
		if ev.Reason == "" {
			ev.Reason = out.Reason
		}
		if ev.Reason == "" && out.Effect == Deny {
			ev.Reason = out.Message
		}
		ev.LatencyUS = latency.Microseconds()
		ev.Details["status"] = strconv.Itoa(res.Status)
		ev.Details["bytes_in"] = strconv.FormatInt(res.In, 10)
		ev.Details["bytes_out"] = strconv.FormatInt(res.Out, 10)
	}
	if ev.Decision == "" && typ == audit.AccessAllowed {
		ev.Decision = "allow"
	}
	if t := req.Target; t != nil {
		ev.Target = t.Ref
		ev.Details["service"] = t.Name
	}
	if c := req.Caller; c != nil {
		ev.SpiffeID, ev.Instance = c.SpiffeID, c.Instance
		ev.Details["via"] = c.Via
		if c.PID > 0 {
			ev.Details["pid"] = strconv.Itoa(c.PID)
		}
		if ev.Task == "" {
			ev.Task = c.Task
		}
	}
	if out.Approval != "" {
		ev.Details["approval"] = out.Approval
	}
	if o := out.Observed; o != nil {
		// Observe mode (#16): what the observed policies would have done.
		ev.Details["observe"] = string(o.Effect)
		ev.Details["observe_policy"] = o.Observing
		if o.Rule != "" {
			ev.Details["observe_rule"] = o.Policy + "/" + o.Rule
		}
		if len(o.Reasons) > 0 {
			ev.Details["observe_reason"] = o.Reasons[0]
		}
	}
	// What the decision saw beyond the call itself, so that `writ policy
	// replay` can decide it again (#16): labels are names, not secrets.
	if q := &req.question; q.Subject.SpiffeID != "" {
		if len(q.Subject.Labels) > 0 {
			ev.Details["subject_labels"] = audit.EncodeLabels(q.Subject.Labels)
		}
		if len(q.TargetLabels) > 0 {
			ev.Details["target_labels"] = strings.Join(q.TargetLabels, ",")
		}
		if q.Task.ID != "" {
			ev.Details["task_purpose"] = q.Task.Purpose
			ev.Details["task_calls"] = strconv.FormatInt(q.Task.Calls, 10)
		}
	}
	for k, v := range req.Details {
		if _, set := ev.Details[k]; !set {
			ev.Details[k] = v
		}
	}
	if len(req.Query) > 0 {
		ev.Details["query"] = e.queryForAudit(req.Query)
	}
	return ev
}

// queryForAudit returns the query's parameter names, or the whole query
// when LogQueryValues is set.
func (e *Enforcer) queryForAudit(q url.Values) string {
	if e.c.LogQueryValues {
		return q.Encode()
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, "&")
}
