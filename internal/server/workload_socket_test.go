package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/apitypes"
)

const otherUserAddrEnv = "WRIT_OTHER_USER_WORKLOAD_ADDR"

// TestOtherUserHelper is not a test: it is the workload of another user in
// TestWorkloadAPIOtherUser, asking for a JWT-SVID.
func TestOtherUserHelper(t *testing.T) {
	addr := os.Getenv(otherUserAddrEnv)
	if addr == "" {
		t.Skip("helper process for TestWorkloadAPIOtherUser")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "billing"}, workloadapi.WithAddr(addr))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(0)
	}
	fmt.Println("SVID", svid.ID)
	os.Exit(0)
}

// The socket's mode is explicit: 0600 in the data directory (which only
// writ's user can enter), 0666 elsewhere, in a directory writ creates
// 0755, whatever the umask (writ serve sets 077).
func TestWorkloadSocketModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	in := start(t, testConfig(t.TempDir()))
	if fi, err := os.Stat(in.srv.SocketPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket in the data directory: %v, %v; want mode 0600", fi.Mode(), err)
	}
	in.stop()

	run := filepath.Join(t.TempDir(), "run", "writ")
	cfg := testConfig(t.TempDir())
	cfg.Workload.Socket = filepath.Join(run, "workload.sock")
	cfg.Workload.SocketMode = ""
	cfg.Defaults()
	in = start(t, cfg)
	if fi, err := os.Stat(in.srv.SocketPath()); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket in %s: %v, %v; want mode 0666", run, fi.Mode(), err)
	}
	for _, dir := range []string{run, filepath.Dir(run)} {
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("socket directory %s: %v, %v; want mode 0755", dir, fi.Mode(), err)
		}
	}
}

// The documented setup for workloads of other users: writ runs as root,
// the socket is in a directory they can reach (here a stand-in for
// /run/writ), and an entry with unix:uid:1001 gives a process of uid 1001
// its identity.
func TestWorkloadAPIOtherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: writ attests other users' processes as root, and the test runs one as uid 1001")
	}
	old := syscall.Umask(0o077) // as writ serve sets it
	defer syscall.Umask(old)
	// A directory uid 1001 can reach, for the socket and a copy of the
	// test binary (t.TempDir's are 0700).
	pub, err := os.MkdirTemp("", "writ-other-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	if err := os.Chmod(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(pub, "workload.test")
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(exe, os.O_WRONLY|os.O_CREATE, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	src.Close()
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(exe, 0o755); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t.TempDir())
	cfg.Workload.Socket = filepath.Join(pub, "run", "writ", "workload.sock")
	cfg.Workload.SocketMode = ""
	cfg.Defaults()
	in := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := in.client.CreateEntry(ctx, apitypes.Entry{Name: "other", SpiffeID: "spiffe://writ.local/agent/other",
		Selectors: []string{"unix:uid:1001"}}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestOtherUserHelper$")
	cmd.Dir = pub
	cmd.Env = []string{otherUserAddrEnv + "=unix://" + in.srv.SocketPath(), "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1001, Gid: 1001}}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read the workload's answer: %v", err)
	}
	if got := strings.TrimSpace(line); got != "SVID spiffe://writ.local/agent/other" {
		t.Fatalf("a process of uid 1001 got %q, want the JWT-SVID of spiffe://writ.local/agent/other", got)
	}
}
