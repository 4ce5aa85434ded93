package attest

import (
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestReuseSeesExec: a pinned process that execs another program between
// two calls is attested afresh on the second call, even inside the recheck
// interval, so a trusted binary cannot hand its connection to another one.
func TestReuseSeesExec(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, _ := newTestAttestor(t, Config{Recheck: time.Hour, Now: func() time.Time { return now }})
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	cmd := exec.Command(sh, "-c", "read x; exec sleep 60")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ctx := context.Background()
	p, err := a.PeerFromPID(ctx, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	first, err := a.Attest(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.Attest(ctx, p)
	if err != nil || again.SHA256 != first.SHA256 || again.Instance.ID != first.Instance.ID {
		t.Fatalf("second attestation = %+v, %v", again, err)
	}
	// Mutating a returned result must not change what the next call sees.
	again.Selectors[0].Value = "uid:99999"
	io.WriteString(stdin, "go\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := a.Attest(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if r.Selectors[0].Value == "uid:99999" {
			t.Fatal("a caller's change to a result leaked into the remembered attestation")
		}
		if r.SHA256 != first.SHA256 {
			if !strings.HasSuffix(r.Exe, "sleep") {
				t.Errorf("after exec: exe %q, want sleep", r.Exe)
			}
			if r.Instance.ID != first.Instance.ID {
				t.Errorf("exec changed the instance id (%s -> %s); the process is the same", first.Instance.ID, r.Instance.ID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("exec into another program was not noticed within the recheck interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReuseExpires: after the recheck interval the full attestation runs
// again (here: the fake clock moves past it).
func TestReuseExpires(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, _ := newTestAttestor(t, Config{Recheck: time.Second, Now: func() time.Time { return now }})
	p := selfPeer(t)
	ctx := context.Background()
	if _, err := a.Attest(ctx, p); err != nil {
		t.Fatal(err)
	}
	last := p.pidfd.last.Load()
	if _, err := a.Attest(ctx, p); err != nil {
		t.Fatal(err)
	}
	if p.pidfd.last.Load() != last {
		t.Fatal("a call inside the interval re-attested fully")
	}
	now = now.Add(2 * time.Second)
	if _, err := a.Attest(ctx, p); err != nil {
		t.Fatal(err)
	}
	if p.pidfd.last.Load() == last {
		t.Fatal("a call after the interval reused the old attestation")
	}
}
