package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writ-dev/writ/internal/access"
)

// A relay carries one allowed request to its upstream and the answer back,
// in place of httputil.ReverseProxy and with its semantics (hop-by-hop
// headers removed both ways, 1xx answers passed on, trailers, immediate
// flushing of streamed answers, protocol upgrades), but without cloning
// the request and its header: the outbound request shares the inbound
// header's values, and bodies stream through a pooled buffer. It records
// what the audit event needs: the status answered and the bytes each way.
type relay struct {
	p       *Proxy
	w       http.ResponseWriter
	body    relayBody // the request body, counted
	upgrade string    // the protocol the client asks to switch to

	status int   // status answered (0 before the answer)
	out    int64 // response bytes written to the client
	in     int64 // bytes sent upstream after a protocol switch

	// mu guards w's header against 1xx answers arriving while RoundTrip
	// returns; done is set once it has.
	mu    sync.Mutex
	done  bool
	trace httptrace.ClientTrace
}

// outbound returns the request to send upstream for r: target as its URL,
// the header of [outboundHeader], the service credential injected and r's
// body (nil if it has none, so that the transport may retry on a fresh
// connection), bounded by limit when limit > 0.
func (rl *relay) outbound(r *http.Request, target *url.URL, cred access.Credential, limit int64) (*http.Request, error) {
	h, up := outboundHeader(r.Header, rl.p.isWritToken)
	if !isPrint(up) {
		return nil, fmt.Errorf("client tried to switch to invalid protocol %q", up)
	}
	rl.upgrade = up
	inject(cred, h, target)
	rl.trace.Got1xxResponse = rl.got1xx
	out := r.WithContext(httptrace.WithClientTrace(r.Context(), &rl.trace))
	out.URL, out.Host, out.Header, out.RequestURI, out.Close = target, "", h, "", false
	out.GetBody, out.Form, out.PostForm, out.MultipartForm = nil, nil, nil, nil
	out.Body = nil
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		rl.body.r = r.Body
		if limit > 0 {
			rl.body.r = http.MaxBytesReader(rl.w, r.Body, limit)
		}
		out.Body = &rl.body
	}
	return out, nil
}

// got1xx passes an informational answer (100 Continue, 103 Early Hints) on
// to the client while the final answer is awaited.
func (rl *relay) got1xx(code int, header textproto.MIMEHeader) error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.done {
		return nil
	}
	h := rl.w.Header()
	for k, v := range header {
		h[k] = v
	}
	rl.w.WriteHeader(code)
	clear(h) // WriteHeader does not clear them for 1xx
	return nil
}

// roundTrip sends out with rt and streams the answer to the client. err is
// a failure before any answer was written (the caller answers with an
// error); broken reports an answer that broke off midway, after which the
// caller must abort the client connection (panic(http.ErrAbortHandler))
// so that the client does not take it for complete.
func (rl *relay) roundTrip(rt http.RoundTripper, out *http.Request) (broken, err error) {
	defer rl.body.Close()
	res, err := rt.RoundTrip(out)
	rl.mu.Lock()
	rl.done = true
	rl.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		return nil, rl.switchProtocols(res)
	}
	removeHopByHop(res.Header)
	h := rl.w.Header()
	for k, v := range res.Header {
		h[k] = v
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	rl.w.WriteHeader(res.StatusCode)
	rl.status = res.StatusCode
	// Answers of unknown length and event streams are passed on as they
	// come (a client may be waiting for each part), the header at once.
	var flush func() error
	if res.ContentLength == -1 || isEventStream(res.Header.Get("Content-Type")) {
		flush = http.NewResponseController(rl.w).Flush
		flush()
	}
	if err := rl.copy(res.Body, flush); err != nil {
		res.Body.Close()
		return err, nil
	}
	res.Body.Close() // now, so that res.Trailer is complete
	if len(res.Trailer) > 0 {
		// Force chunking, which carries the trailer, even for a short body.
		http.NewResponseController(rl.w).Flush()
	}
	if len(res.Trailer) == announced {
		for k, v := range res.Trailer {
			h[k] = v
		}
		return nil, nil
	}
	for k, vv := range res.Trailer {
		for _, v := range vv {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
	return nil, nil
}

// copy streams src to the client, flushing after each write when flush is
// set.
func (rl *relay) copy(src io.Reader, flush func() error) error {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := rl.w.Write(buf[:n])
			rl.out += int64(w)
			if werr != nil {
				return werr
			}
			if flush != nil {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// relayBody is the outbound request body: it counts the bytes read and
// does not close the inbound body (the server does, and the transport may
// close its request's body before the client has sent it, which would hang
// a 100-continue request); reads after Close fail, since the transport may
// still read when the handler has returned.
type relayBody struct {
	r      io.Reader
	n      atomic.Int64
	closed atomic.Bool
}

func (b *relayBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errors.New("read of a request body after its request ended")
	}
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *relayBody) Close() error {
	b.closed.Store(true)
	return nil
}

// outboundHeader is the header sent upstream for an inbound header in: in
// without hop-by-hop fields (RFC 9110 §7.6.1: those the Connection field
// names and the classic list), writ credentials and caller choices,
// forwarding fields a client could forge, and any value, in any field, for
// which isWritToken reports a writ access token (a Cookie or custom header
// carrying the caller's token). A protocol upgrade the client
// asks for (Connection: Upgrade) is kept, and returned. The values are
// shared with in, which must not change afterwards; Set replaces a value,
// so neither side sees the other's changes.
func outboundHeader(in http.Header, isWritToken func(string) bool) (out http.Header, upgrade string) {
	out = make(http.Header, len(in))
	for k, v := range in {
		if !hopByHop(k) && !neverForwarded(k) {
			out[k] = v
			if isWritToken != nil && slices.ContainsFunc(v, isWritToken) {
				if v = slices.DeleteFunc(slices.Clone(v), isWritToken); len(v) > 0 {
					out[k] = v
				} else {
					delete(out, k)
				}
			}
		}
	}
	for _, f := range in["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				out.Del(name)
			}
		}
	}
	// Tell the upstream that trailers are understood if the client said so.
	if listHas(in["Te"], "trailers") {
		out["Te"] = []string{"trailers"}
	}
	if listHas(in["Connection"], "upgrade") {
		upgrade = in.Get("Upgrade")
		out["Connection"] = []string{"Upgrade"}
		out["Upgrade"] = []string{upgrade}
	}
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = nil // send none rather than Go's
	}
	return out, upgrade
}

// removeHopByHop removes the hop-by-hop fields of a response header.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for k := range h {
		if hopByHop(k) {
			delete(h, k)
		}
	}
}

// hopByHop reports a header field that belongs to one connection, not to
// the request (canonical names).
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// neverForwarded reports a request header field that never reaches an
// upstream: writ credentials and caller choices (no token passthrough;
// the upstream credential is injected instead) and forwarding fields,
// which a client could forge.
func neverForwarded(k string) bool {
	switch k {
	case "Authorization", "Dpop", HeaderIdentity, HeaderTask,
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return false
}

// listHas reports whether a comma-separated list field (Connection, TE)
// contains token, in any case.
func listHas(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			t, _, _ = strings.Cut(t, ";")
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// isEventStream reports a text/event-stream content type.
func isEventStream(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

func isPrint(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// switchProtocols completes a protocol switch the client asked for (e.g.
// websocket): the upstream's 101 answer goes to the client, and the two
// connections are spliced until either ends. err is a failure before the
// client connection was taken over.
func (rl *relay) switchProtocols(res *http.Response) (err error) {
	want, got := rl.upgrade, ""
	if listHas(res.Header["Connection"], "upgrade") {
		got = res.Header.Get("Upgrade")
	}
	back, ok := res.Body.(io.ReadWriteCloser)
	switch {
	case !isPrint(got):
		err = fmt.Errorf("the upstream tried to switch to invalid protocol %q", got)
	case !strings.EqualFold(want, got):
		err = fmt.Errorf("the upstream switched to protocol %q when %q was asked for", got, want)
	case !ok:
		err = errors.New("the upstream's protocol switch cannot carry data")
	}
	if err != nil {
		res.Body.Close()
		return err
	}
	client, brw, err := http.NewResponseController(rl.w).Hijack()
	if err != nil {
		back.Close()
		return fmt.Errorf("switch protocols: %v", err)
	}
	defer connFrom(res.Request.Context()).Close()
	rl.status = res.StatusCode
	if !rl.p.track(client) {
		back.Close()
		return nil
	}
	defer rl.p.untrack(client)
	client.SetDeadline(time.Time{}) // the connection outlives the request
	res.Body = nil                  // Write sends the status line and header only
	if err := res.Write(brw); err != nil || brw.Flush() != nil {
		client.Close()
		back.Close()
		return nil
	}
	rl.in, rl.out = splice(client, brw.Reader, back)
	return nil
}
