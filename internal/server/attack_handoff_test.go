package server_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	workloadpb "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/writ-dev/writ/internal/apitypes"
)

// Attacks on identity handoff, through the real Workload API and proxy of
// a running server, each by real processes (this test binary re-executed
// in the roles below). Every one must be refused. They are the outside
// attack run of #12 against the holder verdicts kept by process events
// (internal/attest/procevents.go): each attack first makes the server
// reach a verdict on the connection, then hands the socket on.
//
// Roles, chosen by attackRoleEnv:
//
//	parent: connects (Workload API or proxy, attackTargetEnv), makes a
//	        first call or request, then does attackHowEnv:
//	          fork      starts a child (attackChildEnv) with the socket, keeps its copy, waits
//	          forkdrop  starts a child with the socket, closes its copy, waits
//	          exit      starts a child with the socket and exits
//	          pass      passes the socket over SCM_RIGHTS to a process started
//	                    before it connected, then execs attackExecEnv
//	          forkexec  starts a child with the socket, then execs attackExecEnv
//	          self      makes the second call itself (the control: the
//	                    technique of the second call works)
//	child:  takes the socket (fd 3, or received on fd 3), waits until the
//	        parent has done its part, and calls or requests once more.
//
// Output lines: "first RESULT" from the parent, "second RESULT" from the
// child; RESULT is an HTTP status, "SVID spiffe-id" or "ERR why".
const (
	attackRoleEnv   = "WRIT_ATTACK_ROLE"
	attackTargetEnv = "WRIT_ATTACK_TARGET" // "wl:SOCKET" or "px:ADDR"
	attackHowEnv    = "WRIT_ATTACK_HOW"
	attackChildEnv  = "WRIT_ATTACK_CHILD" // executable of the child
	attackExecEnv   = "WRIT_ATTACK_EXEC"  // what the parent execs into
	attackPPIDEnv   = "WRIT_ATTACK_PPID"  // the child's parent
)

func TestAttackHandoffHelper(t *testing.T) {
	switch os.Getenv(attackRoleEnv) {
	case "parent":
		attackParent()
	case "child":
		attackChild()
	default:
		t.Skip("helper process for TestAttackHandoff")
	}
}

func attackFail(what string, err error) {
	fmt.Printf("HELPER %s: %v\n", what, err)
	os.Exit(2)
}

// attackSocket connects to the target with a socket that survives exec.
func attackSocket(target string) (*os.File, error) {
	kind, addr, _ := strings.Cut(target, ":")
	var fd int
	var err error
	if kind == "wl" {
		fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err == nil {
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: addr})
		}
	} else {
		ap, perr := net.ResolveTCPAddr("tcp", addr)
		if perr != nil {
			return nil, perr
		}
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err == nil {
			err = unix.Connect(fd, &unix.SockaddrInet4{Port: ap.Port, Addr: [4]byte(ap.IP.To4())})
		}
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "attack socket"), nil
}

// attackCall makes one Workload API call (on HTTP/2 stream 2n-1, so that
// the child's call continues the parent's session) or proxy request on f,
// which it leaves open, and returns its result.
func attackCall(target string, f *os.File, n int) string {
	nf, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return "ERR dup " + err.Error()
	}
	c, err := net.FileConn(os.NewFile(uintptr(nf), "dup"))
	if err != nil {
		return "ERR " + err.Error()
	}
	// c is left open: closing it shuts nothing down while f holds the
	// socket, and the next call goes on the same connection.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if strings.HasPrefix(target, "px:") {
		fmt.Fprintf(c, "GET /svc/attack/item/%d HTTP/1.1\r\nHost: x\r\n\r\n", n)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "ERR " + err.Error()
		}
		io.Copy(io.Discard, resp.Body)
		return strconv.Itoa(resp.StatusCode)
	}
	return workloadCall(c, uint32(2*n-1))
}

// workloadCall sends FetchJWTSVID on stream of a gRPC (HTTP/2) session on
// c, opening the session first when stream is 1. The answer is read as
// frames, not decoded: an SVID can only come in a DATA frame of the
// stream, which then holds its SPIFFE ID in the clear; a refusal is a
// HEADERS frame that ends the stream without one.
func workloadCall(c net.Conn, stream uint32) string {
	fr := http2.NewFramer(c, c)
	if stream == 1 {
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			return "ERR " + err.Error()
		}
		if err := fr.WriteSettings(); err != nil {
			return "ERR " + err.Error()
		}
	}
	// A fresh encoder writes every field as a literal, which the server
	// decodes whatever its table holds from earlier streams.
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, h := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/SpiffeWorkloadAPI/FetchJWTSVID"},
		{":authority", "workload"}, {"content-type", "application/grpc"}, {"te", "trailers"}, {"workload.spiffe.io", "true"}} {
		enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
		return "ERR " + err.Error()
	}
	msg, err := proto.Marshal(&workloadpb.JWTSVIDRequest{Audience: []string{"billing"}})
	if err != nil {
		return "ERR " + err.Error()
	}
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	if err := fr.WriteData(stream, true, append(body, msg...)); err != nil {
		return "ERR " + err.Error()
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return "ERR " + err.Error()
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.DataFrame:
			if f.StreamID == stream {
				if i := bytes.Index(f.Data(), []byte("spiffe://")); i >= 0 {
					id := f.Data()[i:]
					if end := bytes.IndexFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }); end >= 0 {
						id = id[:end] // the spiffe_id field ends where the next field's tag and length start
					}
					return "SVID " + string(id)
				}
			}
		case *http2.HeadersFrame:
			if f.StreamID == stream && f.StreamEnded() {
				return "ERR refused"
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == stream {
				return "ERR reset " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			return "ERR goaway " + f.ErrCode.String()
		}
	}
}

func attackParent() {
	target, how := os.Getenv(attackTargetEnv), os.Getenv(attackHowEnv)
	child := exec.Command(os.Getenv(attackChildEnv), "-test.run=^TestAttackHandoffHelper$", "-test.count=1")
	child.Env = append(slicesDelete(os.Environ(), attackRoleEnv), attackRoleEnv+"=child", attackPPIDEnv+"="+strconv.Itoa(os.Getpid()))
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	var pair [2]int
	if how == "pass" {
		// The receiver exists before the connection: it gets the socket
		// by SCM_RIGHTS only, not by inheriting it.
		var err error
		if pair, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			attackFail("socketpair", err)
		}
		child.ExtraFiles = []*os.File{os.NewFile(uintptr(pair[1]), "pair")}
		if err := child.Start(); err != nil {
			attackFail("start receiver", err)
		}
	}
	f, err := attackSocket(target)
	if err != nil {
		attackFail("connect", err)
	}
	fmt.Printf("first %s\n", attackCall(target, f, 1))
	os.Stdout.Sync()
	into := os.Getenv(attackExecEnv)
	switch how {
	case "pass":
		if err := unix.Sendmsg(pair[0], []byte{'x'}, unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
			attackFail("pass the socket", err)
		}
		attackFail("exec", syscall.Exec(into, []string{into, "600"}, os.Environ()))
	case "self":
		fmt.Printf("second %s\n", attackCall(target, f, 2))
	case "fork", "forkdrop", "exit", "forkexec":
		child.ExtraFiles = []*os.File{f}
		if err := child.Start(); err != nil {
			attackFail("start child", err)
		}
		switch how {
		case "exit":
			os.Exit(0)
		case "forkexec":
			attackFail("exec", syscall.Exec(into, []string{into, "600"}, os.Environ()))
		case "forkdrop":
			f.Close()
		}
		child.Wait()
	default:
		attackFail("mode", fmt.Errorf("unknown %q", how))
	}
}

func attackChild() {
	target, how := os.Getenv(attackTargetEnv), os.Getenv(attackHowEnv)
	f := os.NewFile(3, "fd 3")
	if how == "pass" {
		buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := unix.Recvmsg(3, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			attackFail("receive", err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			attackFail("receive", fmt.Errorf("control messages %v: %v", msgs, err))
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			attackFail("receive", fmt.Errorf("fds %v: %v", fds, err))
		}
		f = os.NewFile(uintptr(fds[0]), "passed socket")
	}
	ppid, _ := strconv.Atoi(os.Getenv(attackPPIDEnv))
	into := os.Getenv(attackExecEnv)
	for i := 0; ; i++ {
		done := true
		switch how {
		case "pass", "forkexec":
			got, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", ppid))
			done = got == into
		case "exit":
			done = os.Getppid() != ppid
		}
		if done {
			break
		}
		if i == 2000 {
			attackFail("wait for the parent", fmt.Errorf("%s did not happen", how))
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("second %s\n", attackCall(target, f, 2))
}

// TestAttackHandoff runs each attack against a server whose Workload API
// names sleep(1) an identity and whose proxy serves one registered copy of
// this test binary. Each must be refused; in the proxy attacks the
// upstream must see the first request only.
func TestAttackHandoff(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("sleep(1) is needed: %v", err)
	}
	if sleep, err = filepath.EvalSymlinks(sleep); err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	in := start(t, testConfig(t.TempDir()))
	dir := t.TempDir()
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	registered, other := filepath.Join(dir, "registered"), filepath.Join(dir, "unregistered")
	for _, p := range []string{registered, other} {
		if err := os.WriteFile(p, self, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	for name, sel := range map[string]string{"attack": registered, "sleeper": sleep} {
		if _, err := in.client.CreateEntry(ctx, apitypes.Entry{Name: name, SpiffeID: "spiffe://writ.local/agent/" + name,
			Selectors: []string{"unix:path:" + sel}}); err != nil {
			t.Fatal(err)
		}
	}
	apply(t, in.client, "attack.yaml", fmt.Sprintf(`apiVersion: writ.dev/v1
kind: Service
metadata: {name: attack}
spec:
  upstream: %s
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: attack}
spec:
  subjects: [spiffe://writ.local/agent/attack, spiffe://writ.local/agent/sleeper]
  rules:
    - {name: get, effect: allow, targets: [{http: {service: attack, methods: [GET]}}]}
`, up.URL))

	for _, tc := range []struct {
		name      string
		target    string
		how       string
		parent    string // the parent's executable
		wantFirst string // prefix
	}{
		// The control: a registered process's second call on its own
		// connection, made as the attacks make theirs, is served.
		{"control/workload", "wl:" + in.srv.SocketPath(), "self", registered, "SVID spiffe://writ.local/agent/attack"},
		{"control/proxy", "px:" + in.srv.ProxyAddr(), "self", registered, "200"},
		// Workload API: the parent matches no entry; its first call is
		// refused but leaves a verdict on the connection.
		{"workload/fork after a call, then exec", "wl:" + in.srv.SocketPath(), "forkexec", os.Args[0], "ERR refused"},
		{"workload/fd passing after a call, then exec", "wl:" + in.srv.SocketPath(), "pass", os.Args[0], "ERR refused"},
		// A registered parent hands the connection to a child running an
		// unregistered copy and exits: the pid that connected is gone.
		{"workload/caller exits, child asks", "wl:" + in.srv.SocketPath(), "exit", registered, "SVID spiffe://writ.local/agent/attack"},
		// Proxy: the parent is registered and served; then the
		// connection goes to a process running an unregistered copy.
		{"proxy/fork after identify", "px:" + in.srv.ProxyAddr(), "fork", registered, "200"},
		{"proxy/fork after identify, parent drops its copy", "px:" + in.srv.ProxyAddr(), "forkdrop", registered, "200"},
		{"proxy/identified process exits, its pid's connection lives on", "px:" + in.srv.ProxyAddr(), "exit", registered, "200"},
		{"proxy/fd passing, then exec", "px:" + in.srv.ProxyAddr(), "pass", registered, "200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			cmd := exec.Command(tc.parent, "-test.run=^TestAttackHandoffHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), attackRoleEnv+"=parent", attackTargetEnv+"="+tc.target, attackHowEnv+"="+tc.how,
				attackChildEnv+"="+other, attackExecEnv+"="+sleep)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			var first, second string
			sc := bufio.NewScanner(out)
			for second == "" && sc.Scan() {
				line := sc.Text()
				t.Log(line)
				if strings.HasPrefix(line, "HELPER") {
					t.Fatal(line)
				}
				if v, ok := strings.CutPrefix(line, "first "); ok {
					first = v
				}
				if v, ok := strings.CutPrefix(line, "second "); ok {
					second = v
				}
			}
			if !strings.HasPrefix(first, tc.wantFirst) {
				t.Fatalf("first call: %q, want %s", first, tc.wantFirst)
			}
			switch {
			case second == "":
				t.Fatalf("no second call: %v", sc.Err())
			case tc.how == "self":
				if second != first {
					t.Fatalf("the control's second call: %q, want %q", second, first)
				}
			case strings.HasPrefix(tc.target, "wl:"):
				if second != "ERR refused" {
					t.Fatalf("the socket's new holder got %q, want a refusal", second)
				}
			default:
				if second == "200" {
					t.Fatalf("the connection's new holder was served (%s)", second)
				}
				if n := hits.Load() - before; n != 1 {
					t.Fatalf("the upstream got %d requests, want 1 (the registered process's)", n)
				}
			}
		})
	}
}
