package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// The fast path serves the hot request, an agent's tools/call on a
// session, without the SDK's second server and client: it reads only the
// request's envelope (decodeEnvelope), decides it exactly as the SDK's
// path does (same Authorizer request, same journal and audit, same
// redaction of the result), and relays the call as one JSON-RPC POST on
// the gateway's own upstream session over a kept-alive connection.
//
// It takes a request only when every condition below holds, and leaves
// anything else, byte for byte, to the SDK's path (which answers errors,
// unknown sessions, other methods, batches, streams and notifications as
// before):
//   - POST with Content-Type application/json and an Accept naming both
//     application/json and text/event-stream;
//   - the Mcp-Session-Id of a session the gateway's front server opened
//     (initialize went through the SDK's path), on the same endpoint, for
//     the same caller, of a revision before 2026-07-28, whose
//     Mcp-Protocol-Version header (when sent) is that revision, and which
//     went through the SDK's path within the last quarter of the session
//     timeout (so the SDK's idle timer never ends a busy session);
//   - a body decodeEnvelope takes;
//   - a tool the endpoint serves (known, not quarantined);
//   - an upstream over streamable HTTP, with the shared session (not
//     sessions: per_agent), live, of a revision before 2026-07-28.

// fastBody bounds the body the fast path reads; a larger one goes to the
// SDK's path.
const fastBody = 1 << 20

// maxFastAnswer bounds an upstream's answer to a fast-path call.
const maxFastAnswer = 64 << 20

// agentSession is an agent's session with a front server, as the fast
// path checks it.
type agentSession struct {
	key      string // the caller's (TokenInfo.UserID, as the SDK binds it)
	endpoint string // "" for /mcp, else the server's name
	rev      string // negotiated revision
	ss       *sdk.ServerSession
	sdkSeen  atomic.Int64 // unix nanoseconds of its last request on the SDK's path
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*agentSession
}

// add records the session ss opened by initialize; it is forgotten when
// the session ends.
func (s *sessions) add(a *agentSession, now time.Time) {
	a.sdkSeen.Store(now.UnixNano())
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]*agentSession{}
	}
	s.m[a.ss.ID()] = a
	s.mu.Unlock()
	go func() {
		a.ss.Wait()
		s.mu.Lock()
		if s.m[a.ss.ID()] == a {
			delete(s.m, a.ss.ID())
		}
		s.mu.Unlock()
	}()
}

func (s *sessions) get(id string) *agentSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

// touch records a request of session id on the SDK's path.
func (s *sessions) touch(id string, now time.Time) {
	if a := s.get(id); a != nil {
		a.sdkSeen.Store(now.UnixNano())
	}
}

// fast serves r on the fast path and reports true, or reports false
// having changed nothing of r (its body is restored) for the SDK's path.
func (g *Gateway) fast(w http.ResponseWriter, r *http.Request, caller Caller, endpoint string) bool {
	if g.cfg.NoFastPath || r.Method != http.MethodPost || !jsonType(r.Header.Get("Content-Type")) || !acceptsBoth(r.Header.Values("Accept")) {
		return false
	}
	// The SDK's handler refuses a Host that is not loopback on a loopback
	// listener (DNS rebinding): so does the fast path, by leaving it there.
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && la != nil && isLoopback(la.String()) && !isLoopback(r.Host) {
		return false
	}
	// Standard headers are the SDK's to check against the body (from
	// revision 2026-07-28; the fast path takes none of those).
	for k := range r.Header {
		if k == "Mcp-Method" || k == "Mcp-Name" || strings.HasPrefix(k, "Mcp-Param-") {
			return false
		}
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		return false
	}
	a := g.sessions.get(sid)
	if a == nil || a.key != caller.Key || a.endpoint != endpoint || a.rev >= statelessRevision || a.rev == "" {
		return false
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && v != a.rev {
		return false
	}
	now := g.cfg.Now()
	if now.Sub(time.Unix(0, a.sdkSeen.Load())) > g.cfg.SessionTimeout/4 {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, fastBody+1))
	rest := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), rest}
	if err != nil || len(body) > fastBody {
		return false
	}
	env, err := decodeEnvelope(body)
	if err != nil {
		return false
	}
	resolve := g.resolveAggregate
	if endpoint != "" {
		b := g.backend(endpoint)
		if b == nil {
			return false
		}
		resolve = func(name string) (*backend, string, bool) { return b, name, true }
	}
	b, name, ok := resolve(env.name)
	if !ok || b.srv.Stdio() || b.srv.Spec.Sessions == SessionsPerAgent {
		return false
	}
	b.mu.Lock()
	_, served := b.tools[name]
	b.mu.Unlock()
	if !served {
		return false
	}
	if v, known := g.verdict(r.Context(), b, name); !known || !v.Usable {
		return false
	}
	u, ok := b.up.fastSession()
	if !ok {
		return false
	}
	// Taken: from here on the fast path answers.
	g.fastServed.Add(1)
	var meta sdk.Meta
	if env.meta != nil {
		if err := json.Unmarshal(env.meta, &meta); err != nil {
			meta = nil
		}
	}
	args := env.args
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	ctx := r.Context()
	d, err := g.decide(ctx, caller, Request{Server: b.srv.Name, Method: "tools/call", Name: name, Arguments: args,
		Labels: b.srv.ToolLabels(name), Session: sid, Approval: approvalOf(meta)})
	if err != nil {
		writeAnswer(w, env.id, nil, err)
		return true
	}
	ans, err := g.fastCall(ctx, b, u, a, caller, name, env, meta)
	out, red := g.scan(ctx, b, &ans, err)
	if err == nil && out == nil && ans.raw == nil {
		err = withheld
	}
	if d.Finish != nil {
		res := Result{Err: err, Redactions: red}
		switch {
		case ans.raw != nil:
			res.Bytes, res.ToolError = int64(len(ans.raw)), ans.isError
		case out != nil:
			if b, jerr := json.Marshal(out); jerr == nil {
				res.Bytes = int64(len(b))
			}
			res.ToolError = out.IsError
		}
		d.Finish(res)
	}
	if ans.raw != nil {
		writeRaw(w, env.id, ans.raw)
	} else if out != nil {
		writeAnswer(w, env.id, out, err)
	} else {
		writeAnswer(w, env.id, nil, err)
	}
	return true
}

// scan redacts secrets from the upstream's answer as redact does for the
// SDK's path. A result passed through as sent (ans.raw) is scanned as it
// is and stays so when it holds none; one that holds secrets, or that was
// decoded, comes back decoded (ans.raw nil) with what was redacted.
func (g *Gateway) scan(ctx context.Context, b *backend, ans *upstreamAnswer, err error) (*sdk.CallToolResult, []string) {
	if err != nil {
		ans.raw, ans.res = nil, nil
		return nil, nil
	}
	if ans.raw == nil {
		if ans.res == nil {
			return nil, nil
		}
		out, red := g.redact(ctx, b, ans.res)
		res, _ := out.(*sdk.CallToolResult)
		return res, red
	}
	if g.cfg.Redactor == nil {
		return nil, nil
	}
	clean, fs, rerr := g.cfg.Redactor.RedactJSON(ans.raw)
	if rerr == nil && len(fs) == 0 {
		return nil, nil
	}
	ans.raw = nil
	if rerr == nil {
		red := make([]string, 0, len(fs))
		for _, f := range fs {
			red = append(red, f.RuleID+"@"+f.Pointer)
		}
		var res sdk.CallToolResult
		if rerr = json.Unmarshal(clean, &res); rerr == nil {
			g.cfg.Log.InfoContext(ctx, "secrets redacted from an MCP result", "server", b.srv.Name, "redactions", strings.Join(red, ","))
			return &res, red
		}
	}
	g.cfg.Log.ErrorContext(ctx, "MCP result withheld: it could not be scanned for secrets", "server", b.srv.Name, "error", rerr)
	return nil, []string{"withheld@"}
}

// isLoopback is the SDK's test of a loopback host (with or without a
// port): "localhost" or a loopback IP address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// fastCall relays the call of tool on the upstream session u and returns
// its result as the SDK's path would: a JSON-RPC error of the upstream
// passed on, anything else failing as unavailable; input requests in the
// answer decided by policy and, for these agents (revisions before
// 2026-07-28), asked of the agent over its session and the call retried
// once with its answers, as the SDK's server does.
func (g *Gateway) fastCall(ctx context.Context, b *backend, u fastUpstream, a *agentSession, caller Caller, tool string, env envelope, meta sdk.Meta) (upstreamAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, b.srv.Call)
	defer cancel()
	params := map[string]any{"name": tool}
	if len(env.args) > 0 {
		params["arguments"] = env.args
	} else {
		params["arguments"] = map[string]any{}
	}
	if m := upstreamMeta(meta); m != nil {
		params["_meta"] = m
	}
	ans, err := u.call(ctx, b, params)
	if err != nil {
		return ans, err
	}
	for retry := 0; ans.res != nil && ans.res.InputRequests != nil; retry++ {
		res := ans.res
		if err := g.decideInputs(ctx, caller, a.ss.ID(), b, tool, res.InputRequests); err != nil {
			return upstreamAnswer{}, err
		}
		if retry > 0 {
			break // the SDK's server retries once, then passes the answer on
		}
		if len(res.InputRequests) == 0 {
			return upstreamAnswer{}, errors.New("the server is busy, retry later")
		}
		answers, err := fulfill(ctx, a.ss, res.InputRequests)
		if err != nil {
			return upstreamAnswer{}, err
		}
		params["inputResponses"] = answers
		if res.RequestState != "" {
			params["requestState"] = res.RequestState
		}
		if ans, err = u.call(ctx, b, params); err != nil {
			return ans, err
		}
	}
	return ans, nil
}

// writeRaw writes the JSON-RPC response to request id with result, a
// JSON object, as a single JSON body.
func writeRaw(w http.ResponseWriter, id jsonrpc.ID, result json.RawMessage) {
	data, err := jsonrpc.EncodeMessage(&jsonrpc.Response{ID: id, Result: result})
	if err != nil {
		writeAnswer(w, id, nil, fmt.Errorf("encode the result: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data)
}

// writeAnswer writes the JSON-RPC response to request id as the SDK's
// server encodes it, as a single JSON body.
func writeAnswer(w http.ResponseWriter, id jsonrpc.ID, res sdk.Result, err error) {
	resp := &jsonrpc.Response{ID: id}
	if err != nil {
		var je *jsonrpc.Error
		if !errors.As(err, &je) {
			je = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
		}
		resp.Error = je
	} else {
		raw, merr := json.Marshal(res)
		if merr != nil {
			resp.Error = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "encode the result: " + merr.Error()}
		} else {
			resp.Result = raw
		}
	}
	data, _ := jsonrpc.EncodeMessage(resp)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data)
}

func jsonType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// acceptsBoth reports whether Accept names application/json and
// text/event-stream (what the SDK's handler requires of a POST).
func acceptsBoth(vals []string) bool {
	var j, s bool
	for _, v := range vals {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			switch strings.TrimSpace(mt) {
			case "application/json", "application/*", "*/*":
				j = true
			}
			switch strings.TrimSpace(mt) {
			case "text/event-stream", "text/*", "*/*":
				s = true
			}
		}
	}
	return j && s
}

// fastUpstream is the gateway's shared session with one upstream, as the
// fast path posts on it.
type fastUpstream struct {
	hc      *http.Client
	url     string
	session string
	rev     string
	cs      *sdk.ClientSession
}

var fastIDs atomic.Int64

// fastSession returns the live shared session when the fast path can use
// it: over streamable HTTP, of a revision before 2026-07-28.
func (u *upstream) fastSession() (fastUpstream, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cs == nil || u.hc == nil {
		return fastUpstream{}, false
	}
	ir := u.cs.InitializeResult()
	if ir == nil || ir.ProtocolVersion >= statelessRevision || u.cs.ID() == "" {
		return fastUpstream{}, false
	}
	return fastUpstream{hc: u.hc, url: u.srv.URL.String(), session: u.cs.ID(), rev: ir.ProtocolVersion, cs: u.cs}, true
}

// upstreamAnswer is the result of an upstream's answer to a fast-path
// call: as sent (raw) when it is text only (plainResult), else decoded by
// the SDK (res).
type upstreamAnswer struct {
	raw     json.RawMessage
	isError bool // raw's isError
	res     *sdk.CallToolResult
}

// call posts one tools/call on the session and reads its answer (a JSON
// body or an event stream).
func (f fastUpstream) call(ctx context.Context, b *backend, params map[string]any) (upstreamAnswer, error) {
	id := "writ-" + strconv.FormatInt(fastIDs.Add(1), 10)
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
	if err != nil {
		return upstreamAnswer{}, rpcError(jsonrpc.CodeInvalidParams, "the call cannot be encoded: "+err.Error(), nil)
	}
	// The request lives on a context of its own, cancelled with the
	// agent's until the answer is read: an event stream's end (the
	// terminating chunk) can follow the answer, and a body closed before
	// it costs the connection (the transport cannot reuse it), so it is
	// read after the agent has its answer (drainStream).
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		stop()
		cancel()
		return upstreamAnswer{}, upstreamError(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", f.session)
	req.Header.Set("Mcp-Protocol-Version", f.rev)
	resp, err := f.hc.Do(req)
	if err != nil {
		stop()
		cancel()
		return upstreamAnswer{}, upstreamError(err)
	}
	answered := false
	defer func() {
		// stop reports whether the agent's context had not ended (the
		// request was not cancelled): only then is the stream worth
		// reading on.
		if live := stop(); answered && live {
			go drainStream(resp.Body, cancel)
			return
		}
		resp.Body.Close()
		cancel()
	}()
	if resp.StatusCode == http.StatusNotFound {
		// The upstream forgot the session: end it, so the supervisor
		// opens another, as the SDK's client does.
		go f.cs.Close()
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return upstreamAnswer{}, upstreamError(fmt.Errorf("%s answered HTTP %d", b.srv.Target(), resp.StatusCode))
	}
	body2 := io.LimitReader(resp.Body, maxFastAnswer)
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		data, err := io.ReadAll(body2)
		if err != nil {
			return upstreamAnswer{}, upstreamError(err)
		}
		res, done, err := f.answer(ctx, b, data, id)
		if !done && err == nil {
			err = fmt.Errorf("%s answered another request", b.srv.Target())
		}
		return res, err
	case "text/event-stream":
		sc := bufio.NewScanner(body2)
		sc.Buffer(make([]byte, 0, 4096), maxFastAnswer)
		var data []byte
		for sc.Scan() {
			line := sc.Bytes()
			if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				data = append(data, bytes.TrimPrefix(v, []byte(" "))...)
				continue
			}
			if len(line) > 0 || len(data) == 0 {
				continue
			}
			res, done, err := f.answer(ctx, b, data, id)
			if done || err != nil {
				answered = done && err == nil
				return res, err
			}
			data = data[:0]
		}
		if err := sc.Err(); err != nil {
			return upstreamAnswer{}, upstreamError(err)
		}
		if len(data) > 0 {
			if res, done, err := f.answer(ctx, b, data, id); done || err != nil {
				return res, err
			}
		}
		return upstreamAnswer{}, upstreamError(fmt.Errorf("%s ended the stream without answering", b.srv.Target()))
	}
	return upstreamAnswer{}, upstreamError(fmt.Errorf("%s answered with content type %q", b.srv.Target(), ct))
}

// Bounds of reading an event stream's end after its answer: a server
// should end the stream once it has answered (the SDK's does at once); one
// that keeps it open, or keeps writing, loses the connection.
// (drainWait, in nanoseconds, is a variable for tests.)
var drainWait atomic.Int64

func init() { drainWait.Store(int64(time.Second)) }

const drainLimit = 64 << 10

// drained, when set (by tests), is called when drainStream is done.
var drained atomic.Pointer[func()]

// drainStream reads what is left of an answered event stream, so the
// connection goes back to the transport's idle pool, then closes it.
func drainStream(body io.ReadCloser, cancel context.CancelFunc) {
	t := time.AfterFunc(time.Duration(drainWait.Load()), cancel)
	io.Copy(io.Discard, io.LimitReader(body, drainLimit))
	t.Stop()
	body.Close()
	cancel()
	if f := drained.Load(); f != nil {
		(*f)()
	}
}

// answer handles one message of the upstream's answer: the response to
// id (done), a notification (a tools/list_changed triggers the re-check
// the SDK's client would), or a request of the server, which the shared
// session answers as the SDK's client does (it declares no capabilities).
// A response is read with the standard library (the SDK's decoder takes a
// 32 KiB buffer a message); anything else by the SDK.
func (f fastUpstream) answer(ctx context.Context, b *backend, data []byte, id string) (upstreamAnswer, bool, error) {
	if rid, result, rpcErr, ok := responseOf(data); ok {
		if rid != id {
			return upstreamAnswer{}, false, nil
		}
		if rpcErr != nil {
			return upstreamAnswer{}, true, upstreamError(rpcErr)
		}
		if isError, ok := plainResult(result); ok {
			return upstreamAnswer{raw: result, isError: isError}, true, nil
		}
		return decodeResult(b, result)
	}
	msg, err := jsonrpc.DecodeMessage(data)
	if err != nil {
		return upstreamAnswer{}, true, upstreamError(fmt.Errorf("%s sent an invalid message: %v", b.srv.Target(), err))
	}
	switch m := msg.(type) {
	case *jsonrpc.Response:
		// One responseOf does not read (a member twice, say): read as
		// the SDK's client reads it.
		if m.ID.Raw() != id {
			return upstreamAnswer{}, false, nil
		}
		if m.Error != nil {
			return upstreamAnswer{}, true, upstreamError(m.Error)
		}
		return decodeResult(b, m.Result)
	case *jsonrpc.Request:
		if !m.ID.IsValid() {
			if m.Method == "notifications/tools/list_changed" && b.up.onToolsChanged != nil {
				b.up.onToolsChanged(context.WithoutCancel(ctx))
			}
			return upstreamAnswer{}, false, nil
		}
		reply := &jsonrpc.Response{ID: m.ID}
		if m.Method == "ping" {
			reply.Result = json.RawMessage("{}")
		} else {
			reply.Error = &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found: " + m.Method}
		}
		go f.post(reply)
	}
	return upstreamAnswer{}, false, nil
}

// decodeResult decodes a tools/call result with the SDK, failing as the
// SDK's client does.
func decodeResult(b *backend, result json.RawMessage) (upstreamAnswer, bool, error) {
	var res sdk.CallToolResult
	if err := json.Unmarshal(result, &res); err != nil {
		return upstreamAnswer{}, true, upstreamError(fmt.Errorf("calling %q: %w", "tools/call", err))
	}
	return upstreamAnswer{res: &res}, true, nil
}

// responseOf reads data as a JSON-RPC 2.0 response with a string id:
// exactly the members jsonrpc, id, and one of result (an object) or error,
// each once, with nothing after the object. ok is false for anything
// else, which the caller leaves to the SDK's decoder.
func responseOf(data []byte) (id string, result json.RawMessage, rpcErr *jsonrpc.Error, ok bool) {
	var (
		version      string
		rawID, rawEr json.RawMessage
		seenV        bool
	)
	err := members(data, func(key string, val []byte) error {
		switch key {
		case "jsonrpc":
			seenV = true
			return json.Unmarshal(val, &version)
		case "id":
			rawID = val
		case "result":
			result = val
		case "error":
			rawEr = val
		default:
			return errNotFast
		}
		return nil
	})
	if err != nil || !seenV || version != "2.0" || len(rawID) == 0 || rawID[0] != '"' || (result == nil) == (rawEr == nil) {
		return "", nil, nil, false
	}
	if json.Unmarshal(rawID, &id) != nil {
		return "", nil, nil, false
	}
	if rawEr != nil {
		// Exactly code (an integer), message (a string) and optionally
		// data, each once: anything else the SDK reads its own way.
		rpcErr = new(jsonrpc.Error)
		var code, msg bool
		err := validMembers(rawEr, func(key string, val []byte) error {
			switch key {
			case "code":
				code = true
				return json.Unmarshal(val, &rpcErr.Code)
			case "message":
				if val[0] != '"' {
					return errNotFast
				}
				msg = true
				return json.Unmarshal(val, &rpcErr.Message)
			case "data":
				rpcErr.Data = val
				return nil
			}
			return errNotFast
		})
		if err != nil || !code || !msg {
			return "", nil, nil, false
		}
		return id, nil, rpcErr, true
	}
	if !isObject(result) {
		return "", nil, nil, false
	}
	return id, result, nil, true
}

// plainResult reports whether result is a tools/call result of text only
// (content an array of {"type":"text","text":STRING}, isError a boolean,
// no other member, none twice), which the SDK's path would pass on with
// the same meaning as sent, and its isError. Anything else (images,
// resources, structured content, _meta, unknown members) the SDK decodes
// and re-encodes, as on its own path. result must be valid JSON (the
// result responseOf took).
func plainResult(result json.RawMessage) (isError bool, ok bool) {
	var content bool
	err := validMembers(result, func(key string, val []byte) error {
		switch key {
		case "content":
			content = true
			return elements(val, func(it []byte) error {
				var typ, text bool
				err := validMembers(it, func(key string, v []byte) error {
					switch key {
					case "type":
						typ = string(v) == `"text"`
					case "text":
						text = v[0] == '"'
					default:
						return errNotFast
					}
					return nil
				})
				if err != nil || !typ || !text {
					return errNotFast
				}
				return nil
			})
		case "isError":
			if string(val) != "true" && string(val) != "false" {
				return errNotFast
			}
			isError = string(val) == "true"
			return nil
		}
		return errNotFast
	})
	return isError, err == nil && content
}

// post sends a message of the gateway's on the session (a reply to a
// request of the server).
func (f fastUpstream) post(msg jsonrpc.Message) {
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(data))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", f.session)
	req.Header.Set("Mcp-Protocol-Version", f.rev)
	if resp, err := f.hc.Do(req); err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
	}
}
