package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	workloadpb "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/writ-dev/writ/internal/apitypes"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Environment of the handoff helper (the test binary re-executed).
const (
	handoffModeEnv   = "WRIT_HANDOFF_MODE"   // "parent" or "child"
	handoffSocketEnv = "WRIT_HANDOFF_SOCKET" // the Workload API socket
	handoffExecEnv   = "WRIT_HANDOFF_EXEC"   // the registered executable
	handoffShareEnv  = "WRIT_HANDOFF_SHARE"  // "1": the exec'd image keeps the socket too
)

// TestWorkloadHandoffHelper is not a test: it is the two processes of
// TestWorkloadAPISocketHandoff. The parent, which matches no entry,
// connects to the Workload API, starts the child with the connected socket
// as fd 3, and execs the registered executable; the child waits for that
// exec and then asks for a JWT-SVID over the inherited socket.
func TestWorkloadHandoffHelper(t *testing.T) {
	switch os.Getenv(handoffModeEnv) {
	case "parent":
		handoffParent()
	case "child":
		handoffChild()
	default:
		t.Skip("helper process for TestWorkloadAPISocketHandoff")
	}
}

func handoffFail(err error) {
	fmt.Println("HELPER", err)
	os.Exit(2)
}

func handoffParent() {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: os.Getenv(handoffSocketEnv), Net: "unix"})
	if err != nil {
		handoffFail(err)
	}
	f, err := c.File()
	if err != nil {
		handoffFail(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestWorkloadHandoffHelper$")
	child.Env = append(os.Environ(), handoffModeEnv+"=child")
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	child.ExtraFiles = []*os.File{f}
	if err := child.Start(); err != nil {
		handoffFail(err)
	}
	if os.Getenv(handoffShareEnv) == "1" {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil { // survive the exec
			handoffFail(err)
		}
	}
	exe := os.Getenv(handoffExecEnv)
	handoffFail(syscall.Exec(exe, []string{exe, "600"}, os.Environ()))
}

func handoffChild() {
	exe := os.Getenv(handoffExecEnv)
	link := fmt.Sprintf("/proc/%d/exe", os.Getppid())
	for i := 0; ; i++ {
		if got, _ := os.Readlink(link); got == exe {
			break
		}
		if i == 1000 {
			handoffFail(fmt.Errorf("the parent did not exec %s", exe))
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := net.FileConn(os.NewFile(3, "workload socket"))
	if err != nil {
		handoffFail(err)
	}
	cc, err := grpc.NewClient("passthrough:///workload",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return conn, nil }))
	if err != nil {
		handoffFail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
	resp, err := workloadpb.NewSpiffeWorkloadAPIClient(cc).FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"billing"}})
	if err != nil {
		st := status.Convert(err)
		fmt.Println("ERR", st.Code(), st.Message())
		os.Exit(0)
	}
	fmt.Println("SVID", resp.Svids[0].SpiffeId)
	os.Exit(0)
}

// A process that matches no entry connects to the Workload API, hands the
// socket to a child and execs a registered executable (sleep); the child
// asks over the socket. Peer credentials name the exec'd parent, which is
// registered, but the answer would go to the child: writ refuses, whether
// the child alone holds the socket or shares it with the exec'd parent.
func TestWorkloadAPISocketHandoff(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("sleep(1) is needed: %v", err)
	}
	if sleep, err = filepath.EvalSymlinks(sleep); err != nil {
		t.Fatal(err)
	}
	in := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := in.client.CreateEntry(ctx, apitypes.Entry{Name: "sleeper", SpiffeID: "spiffe://writ.local/agent/sleeper",
		Selectors: []string{"unix:path:" + sleep}}); err != nil {
		t.Fatal(err)
	}
	for _, share := range []string{"0", "1"} {
		t.Run("share="+share, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestWorkloadHandoffHelper$")
			cmd.Env = append(os.Environ(), handoffModeEnv+"=parent", handoffSocketEnv+"="+in.srv.SocketPath(),
				handoffExecEnv+"="+sleep, handoffShareEnv+"="+share)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatalf("read the child's answer: %v", err)
			}
			line = strings.TrimSpace(line)
			t.Log(line)
			if !strings.HasPrefix(line, "ERR PermissionDenied") || !strings.Contains(line, "the socket is held by a process other than the one that connected") {
				t.Fatalf("the child of an unregistered process got %q, want PermissionDenied because the socket was handed over", line)
			}
		})
	}
}
