package attest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/sys/unix"

	"github.com/writ-dev/writ/internal/store"
)

func hasSelector(sels []store.Selector, value string) bool {
	return slices.Contains(sels, store.Selector{Type: SelectorType, Value: value})
}

func selectorValue(sels []store.Selector, key string) (string, bool) {
	for _, s := range sels {
		if k, v, _ := strings.Cut(s.Value, ":"); k == key {
			return v, true
		}
	}
	return "", false
}

func TestAttestSelfOverUnixSocket(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	p := selfPeer(t)
	if p.PID != os.Getpid() || p.UID != os.Geteuid() || p.GID != os.Getegid() {
		t.Fatalf("peer = pid %d uid %d gid %d, want %d %d %d", p.PID, p.UID, p.GID, os.Getpid(), os.Geteuid(), os.Getegid())
	}
	if !p.Pinned() {
		t.Fatal("peer of a unix socket is not pinned by a pidfd")
	}
	r, err := a.Attest(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	exe := selfExe(t)
	sum := fileSHA256(t, exe)
	if r.PID != os.Getpid() || r.Exe != exe || r.SHA256 != sum {
		t.Errorf("result = pid %d exe %q sha256 %s, want %d %q %s", r.PID, r.Exe, r.SHA256, os.Getpid(), exe, sum)
	}
	want := []string{
		"uid:" + strconv.Itoa(os.Geteuid()),
		"gid:" + strconv.Itoa(os.Getegid()),
		"path:" + exe,
		"sha256:" + sum,
	}
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil {
		want = append(want, "user:"+u.Username)
	}
	if g, err := user.LookupGroupId(strconv.Itoa(os.Getegid())); err == nil {
		want = append(want, "group:"+g.Name)
	}
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		want = append(want, "supplementary_gid:"+strconv.Itoa(g))
	}
	for _, w := range want {
		if !hasSelector(r.Selectors, w) {
			t.Errorf("selectors %v lack unix:%s", r.Selectors, w)
		}
	}
	for _, s := range r.Selectors {
		if err := ValidateSelector(s); err != nil {
			t.Errorf("produced selector %v does not validate: %v", s, err)
		}
	}
	if st := readStartTicks(t, os.Getpid()); r.StartTicks != st {
		t.Errorf("start ticks = %d, want %d", r.StartTicks, st)
	}
	id, ok := strings.CutPrefix(r.Instance.ID, InstancePrefix)
	if !ok {
		t.Fatalf("instance id %q lacks prefix %q", r.Instance.ID, InstancePrefix)
	}
	if _, err := ulid.ParseStrict(id); err != nil {
		t.Errorf("instance id %q: %v", r.Instance.ID, err)
	}
	if r.Instance.PID != os.Getpid() || r.Instance.StartTick != r.StartTicks || r.Instance.Exe != exe {
		t.Errorf("instance = %+v", r.Instance)
	}
}

func readStartTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	return st.startTicks
}

func TestDigestCachedAcrossCalls(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	p := selfPeer(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := a.Attest(ctx, p); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := a.Attest(ctx, p); err != nil {
		t.Fatal(err)
	}
	if n := a.digests.hashes.Load(); n != 1 {
		t.Errorf("test binary hashed %d times over 9 attestations, want 1", n)
	}
}

func TestDigestFollowsFileChanges(t *testing.T) {
	fp := newFakeProc(t)
	dir := t.TempDir()
	exeA, exeB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(exeA, []byte("program a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exeB, []byte("program b"), 0o755); err != nil {
		t.Fatal(err)
	}
	fp.addProcess(100, 5000, exeA)
	fp.addProcess(200, 6000, exeB)
	a, _ := newTestAttestor(t, Config{ProcRoot: fp.root, DigestCacheSize: 1})
	ctx := context.Background()
	attest := func(pid int) Result {
		t.Helper()
		r, err := a.Attest(ctx, Peer{PID: pid, UID: 1000, GID: 100})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	steps := []struct {
		name   string
		before func()
		pid    int
		exe    string
		hashes int64
	}{
		{name: "first look", pid: 100, exe: exeA, hashes: 1},
		{name: "cached", pid: 100, exe: exeA, hashes: 1},
		{name: "other file evicts", pid: 200, exe: exeB, hashes: 2},
		{name: "evicted file hashed again", pid: 100, exe: exeA, hashes: 3},
		{name: "rewritten file", pid: 100, exe: exeA, hashes: 4, before: func() {
			if err := os.WriteFile(exeA, []byte("program A, changed"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "rewritten file cached", pid: 100, exe: exeA, hashes: 4},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		r := attest(s.pid)
		if want := fileSHA256(t, s.exe); r.SHA256 != want {
			t.Errorf("%s: sha256 %s, want %s", s.name, r.SHA256, want)
		}
		if n := a.digests.hashes.Load(); n != s.hashes {
			t.Errorf("%s: %d hashes so far, want %d", s.name, n, s.hashes)
		}
	}
}

func TestAttestFakeProcSelectors(t *testing.T) {
	fp := newFakeProc(t)
	exe := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(exe, []byte("agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	fp.addProcess(321, 777, exe)
	a, _ := newTestAttestor(t, Config{ProcRoot: fp.root})
	r, err := a.Attest(context.Background(), Peer{PID: 321, UID: 4000000, GID: 4000001})
	if err != nil {
		t.Fatal(err)
	}
	sum := fileSHA256(t, exe)
	var got []string
	for _, s := range r.Selectors {
		if k, _, _ := strings.Cut(s.Value, ":"); k == KeySupplementaryGroup {
			continue // names depend on the host's group database
		}
		got = append(got, s.String())
	}
	// uid and gid come from the peer (what the kernel reported at
	// connect), supplementary groups from status; ids without names get
	// no user or group selector.
	want := []string{"unix:uid:4000000", "unix:gid:4000001", "unix:supplementary_gid:4", "unix:supplementary_gid:27", "unix:path:" + exe, "unix:sha256:" + sum}
	if !slices.Equal(got, want) {
		t.Errorf("selectors\n got %v\nwant %v", got, want)
	}
	if r.StartTicks != 777 || r.Instance.StartTick != 777 || r.Instance.BootID != "3f1c0e9a-8d55-4d0b-9a43-7d2f3e0c1b2a" {
		t.Errorf("result = %+v", r)
	}
}

func TestDeletedExecutableHasNoPath(t *testing.T) {
	fp := newFakeProc(t)
	dir := t.TempDir()
	exe := filepath.Join(dir, "agent")
	if err := os.WriteFile(exe, []byte("old agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	fp.addProcess(55, 1, exe)
	// Replace the file: the fake exe link still resolves to the new file,
	// so point it at a hard link of the old one and remove the path, as
	// the kernel's link keeps reaching the old inode.
	keep := filepath.Join(dir, ".old")
	if err := os.Link(exe, keep); err != nil {
		t.Fatal(err)
	}
	fp.link("55/exe", keep)
	if err := os.WriteFile(exe+".new", []byte("new agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(exe+".new", exe); err != nil {
		t.Fatal(err)
	}
	a, _ := newTestAttestor(t, Config{ProcRoot: fp.root})
	r, err := a.Attest(context.Background(), Peer{PID: 55, UID: 1, GID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !hasSelector(r.Selectors, "path:"+keep) {
		t.Errorf("selectors %v lack the link's own path", r.Selectors)
	}
	if hasSelector(r.Selectors, "path:"+exe) {
		t.Errorf("selectors %v name %s, which is no longer the running file", r.Selectors, exe)
	}
	if !pathIsExe(keep, mustKey(t, keep)) || pathIsExe(exe, mustKey(t, keep)) {
		t.Error("pathIsExe does not compare the file at the path with the running one")
	}
}

func mustKey(t *testing.T, path string) fileKey {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return keyOf(&st)
}

func TestDeletedExecutableOfRealProcess(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "agent.test")
	copyFile(t, selfExe(t), exe)
	h := startHelper(t, exe, "hold")
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	a, _ := newTestAttestor(t, Config{})
	p, err := a.PeerFromPID(context.Background(), h.pid())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := a.Attest(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Exe != exe+" (deleted)" {
		t.Errorf("exe = %q, want %q", r.Exe, exe+" (deleted)")
	}
	if _, ok := selectorValue(r.Selectors, KeyPath); ok {
		t.Errorf("selectors %v name a path for a deleted executable", r.Selectors)
	}
	if want := fileSHA256(t, selfExe(t)); r.SHA256 != want {
		t.Errorf("sha256 of the deleted running binary = %s, want %s", r.SHA256, want)
	}
}

func TestProcessReplacedDuringAttestation(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "agent")
	other := filepath.Join(t.TempDir(), "other")
	for _, f := range []string{exe, other} {
		if err := os.WriteFile(f, []byte(f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		change func(fp *fakeProc)
		want   error
	}{
		{"start time changed (pid reused)", func(fp *fakeProc) { fp.setStart(42, 1001) }, ErrProcessGone},
		{"process vanished", func(fp *fakeProc) { os.RemoveAll(filepath.Join(fp.root, "42")) }, ErrProcessGone},
		{"stat names another pid", func(fp *fakeProc) { fp.write("42/stat", fakeStat(43, "x", 1000)) }, ErrProcessGone},
		{"executed a new program", func(fp *fakeProc) { fp.link("42/exe", other) }, errExeChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := newFakeProc(t)
			fp.addProcess(42, 1000, exe)
			a, _ := newTestAttestor(t, Config{ProcRoot: fp.root})
			a.testHookBeforeRecheck = func() { tt.change(fp) }
			_, err := a.Attest(context.Background(), Peer{PID: 42, UID: 1, GID: 1})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Attest = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), "pid 42") {
				t.Errorf("error %q does not name the pid", err)
			}
		})
	}
}

func TestAttestExitedProcess(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ctx := context.Background()
	t.Run("reaped", func(t *testing.T) {
		cmd := startSleep(t)
		p, err := a.PeerFromPID(ctx, cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if _, err := a.Attest(ctx, p); !errors.Is(err, ErrProcessGone) {
			t.Fatalf("Attest of a reaped process = %v, want ErrProcessGone", err)
		}
	})
	t.Run("pid reused by another process", func(t *testing.T) {
		cmd := startSleep(t)
		p, err := a.PeerFromPID(ctx, cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		cmd.Process.Kill()
		cmd.Wait()
		// Pretend the kernel gave the dead child's pid to a live
		// process (this one): /proc/PID is fine, only the pidfd knows.
		p.PID = os.Getpid()
		if _, err := a.Attest(ctx, p); !errors.Is(err, ErrProcessGone) {
			t.Fatalf("Attest of a reused pid = %v, want ErrProcessGone", err)
		}
	})
	t.Run("zombie", func(t *testing.T) {
		cmd := startSleep(t)
		p, err := a.PeerFromPID(ctx, cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		cmd.Process.Kill()
		// Wait for the exit without reaping: the pid still exists.
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Attest(ctx, p); !errors.Is(err, ErrProcessGone) {
			t.Fatalf("Attest of an exited, unreaped process = %v, want ErrProcessGone", err)
		}
	})
	t.Run("closed peer", func(t *testing.T) {
		p := selfPeer(t)
		p.Close()
		if _, err := a.Attest(ctx, p); !errors.Is(err, ErrPeerClosed) {
			t.Fatalf("Attest with a closed pidfd = %v, want ErrPeerClosed", err)
		}
	})
	t.Run("no such pid", func(t *testing.T) {
		if _, err := a.PeerFromPID(ctx, 1<<22+1); !errors.Is(err, ErrProcessGone) {
			t.Fatalf("PeerFromPID of an unused pid = %v, want ErrProcessGone", err)
		}
		if _, err := a.Attest(ctx, Peer{PID: 1<<22 + 1}); !errors.Is(err, ErrProcessGone) {
			t.Fatalf("Attest of an unused pid = %v, want ErrProcessGone", err)
		}
	})
	t.Run("invalid peer", func(t *testing.T) {
		for _, p := range []Peer{{}, {PID: -1}, {PID: 1, UID: -1}} {
			if _, err := a.Attest(ctx, p); err == nil || errors.Is(err, ErrProcessGone) {
				t.Errorf("Attest(%+v) = %v, want an invalid peer error", p, err)
			}
		}
	})
}

func TestAttestChildOverUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.sock")
	ln, err := netListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := startHelper(t, selfExe(t), "unix:"+path)
	conn, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p, err := PeerFromUnixConn(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PID != h.pid() {
		t.Fatalf("peer pid %d, want child %d", p.PID, h.pid())
	}
	a, _ := newTestAttestor(t, Config{})
	ctx := context.Background()
	child, err := a.Attest(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	self, err := a.Attest(ctx, selfPeer(t))
	if err != nil {
		t.Fatal(err)
	}
	if child.Instance.ID == self.Instance.ID {
		t.Errorf("child and parent share instance %s", child.Instance.ID)
	}
	if child.SHA256 != self.SHA256 || child.Exe != self.Exe {
		t.Errorf("child runs the same binary but got exe %q sha256 %s, parent %q %s", child.Exe, child.SHA256, self.Exe, self.SHA256)
	}
	h.stop()
	if _, err := a.Attest(ctx, p); !errors.Is(err, ErrProcessGone) {
		t.Fatalf("Attest after the child exited = %v, want ErrProcessGone", err)
	}
}

func TestChildWithOtherExecutable(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ctx := context.Background()
	self, err := a.Attest(ctx, selfPeer(t))
	if err != nil {
		t.Fatal(err)
	}
	attestPID := func(pid int) Result {
		t.Helper()
		p, err := a.PeerFromPID(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		r, err := a.Attest(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	t.Run("sleep", func(t *testing.T) {
		cmd := startSleep(t)
		r := attestPID(cmd.Process.Pid)
		exe, err := filepath.EvalSymlinks(cmd.Path)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := selectorValue(r.Selectors, KeyPath); got != exe {
			t.Errorf("path selector %q, want %q", got, exe)
		}
		if got, _ := selectorValue(r.Selectors, KeySHA256); got != fileSHA256(t, exe) || got == self.SHA256 {
			t.Errorf("sha256 selector %q, want digest of %s (and not the test binary's)", got, exe)
		}
		if r.Instance.ID == self.Instance.ID {
			t.Errorf("sleep shares the test process's instance %s", r.Instance.ID)
		}
	})
	t.Run("copied binary", func(t *testing.T) {
		exe := filepath.Join(t.TempDir(), "copy.test")
		copyFile(t, selfExe(t), exe)
		h := startHelper(t, exe, "hold")
		r := attestPID(h.pid())
		if got, _ := selectorValue(r.Selectors, KeyPath); got != exe {
			t.Errorf("path selector %q, want %q", got, exe)
		}
		if r.SHA256 != self.SHA256 {
			t.Errorf("copy of the test binary has sha256 %s, want %s", r.SHA256, self.SHA256)
		}
	})
}

func TestInstanceStable(t *testing.T) {
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "writ.db")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	counting := &countingInstances{Instances: openStore(t, dbPath)}
	a, err := New(Config{Instances: counting, Now: clock, InstanceRefresh: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p := selfPeer(t)
	first, err := a.Attest(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		r, err := a.Attest(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if r.Instance.ID != first.Instance.ID {
			t.Fatalf("instance changed from %s to %s", first.Instance.ID, r.Instance.ID)
		}
	}
	if n := counting.calls.Load(); n != 1 {
		t.Errorf("11 attestations of one process wrote the store %d times, want 1", n)
	}

	// After the refresh interval the instance is written through again,
	// which moves its last-seen time; the ID stays.
	now = now.Add(2 * time.Minute)
	r, err := a.Attest(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if n := counting.calls.Load(); n != 2 || r.Instance.ID != first.Instance.ID {
		t.Errorf("after refresh: %d store writes, instance %s; want 2 and %s", n, r.Instance.ID, first.Instance.ID)
	}

	// A new attestor over the same store file (a writ restart) keeps it.
	a2, err := New(Config{Instances: openStore(t, dbPath)})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a2.Attest(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Instance.ID != first.Instance.ID {
		t.Errorf("instance after restart = %s, want %s", r2.Instance.ID, first.Instance.ID)
	}

	// Another process gets another instance.
	cmd := startSleep(t)
	cp, err := a2.PeerFromPID(ctx, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	rc, err := a2.Attest(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Instance.ID == first.Instance.ID || !strings.HasPrefix(rc.Instance.ID, InstancePrefix) {
		t.Errorf("child instance %s, parent %s", rc.Instance.ID, first.Instance.ID)
	}
}

func TestInstanceCacheBounded(t *testing.T) {
	fp := newFakeProc(t)
	exe := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(exe, []byte("agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	for pid := 1; pid <= 3; pid++ {
		fp.addProcess(pid, uint64(pid*10), exe)
	}
	a, counting := newTestAttestor(t, Config{ProcRoot: fp.root, InstanceCacheSize: 2})
	ctx := context.Background()
	ids := map[int]string{}
	for _, pid := range []int{1, 2, 3, 1} {
		r, err := a.Attest(ctx, Peer{PID: pid, UID: 1, GID: 1})
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := ids[pid]; ok && prev != r.Instance.ID {
			t.Errorf("pid %d: instance %s after eviction, want %s from the store", pid, r.Instance.ID, prev)
		}
		ids[pid] = r.Instance.ID
	}
	if n := counting.calls.Load(); n != 4 {
		t.Errorf("store writes = %d, want 4 (pid 1 was evicted by pid 3)", n)
	}
	if a.insts.len() != 2 {
		t.Errorf("instance cache holds %d entries, want at most 2", a.insts.len())
	}
}

func TestNewErrors(t *testing.T) {
	db := openStore(t, filepath.Join(t.TempDir(), "writ.db"))
	otherNS := t.TempDir()
	os.Symlink("1", filepath.Join(otherNS, "self"))
	noBoot := newFakeProc(t)
	os.Remove(filepath.Join(noBoot.root, "sys/kernel/random/boot_id"))
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"no store", Config{}, "Instances is required"},
		{"no procfs", Config{Instances: db, ProcRoot: t.TempDir()}, "set ProcRoot"},
		{"other pid namespace", Config{Instances: db, ProcRoot: otherNS}, "another pid namespace"},
		{"no boot id", Config{Instances: db, ProcRoot: noBoot.root}, "boot id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestPeerFromPID(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	p, err := a.PeerFromPID(context.Background(), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.Pinned() || p.PID != os.Getpid() || p.UID != os.Geteuid() || p.GID != os.Getegid() {
		t.Errorf("PeerFromPID(self) = %+v", p)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := a.PeerFromPID(context.Background(), 0); err == nil {
		t.Error("PeerFromPID(0) succeeded")
	}
}

func BenchmarkAttestCached(b *testing.B) {
	a, _ := newTestAttestor(b, Config{})
	p := selfPeer(b)
	ctx := context.Background()
	if _, err := a.Attest(ctx, p); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Attest(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}
