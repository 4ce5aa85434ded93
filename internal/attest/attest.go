package attest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/sys/unix"

	"github.com/writ-dev/writ/internal/store"
)

// Config configures an [Attestor]. Only Instances is required.
type Config struct {
	// Instances records attested processes so that an instance ID
	// survives a writ restart. Required.
	Instances store.Instances
	// Log receives debug and warning messages. Defaults to discarding.
	Log *slog.Logger
	// Now returns the current time. Defaults to time.Now.
	Now func() time.Time
	// ProcRoot is where procfs is mounted. Defaults to "/proc".
	ProcRoot string
	// DigestCacheSize bounds how many executable digests are kept.
	// Defaults to 1024.
	DigestCacheSize int
	// InstanceCacheSize bounds how many process instances are kept in
	// memory. Defaults to 8192.
	InstanceCacheSize int
	// Recheck is how long a full attestation of a pinned process (one
	// whose pidfd writ holds, as on a Workload API connection) is reused.
	// Within it every call still checks that the process lives and runs
	// the same executable (an exec is seen at once); supplementary groups
	// and names are read again after it. Defaults to one second; a
	// negative value disables the reuse.
	Recheck time.Duration
	// InstanceRefresh is how often a cached instance is written through
	// to Instances again, which updates its last-seen time. Defaults to
	// five minutes.
	InstanceRefresh time.Duration
	// NoProcEvents makes every holder check scan /proc instead of keeping
	// its verdict while the kernel's process events show nothing that
	// could change it (see docs/identity.md). For comparisons and tests.
	NoProcEvents bool
	// NoSocketIndex makes the first request on a new TCP connection scan
	// every process's open files for the connection's process instead of
	// asking the socket index (an eBPF program that records each socket's
	// creator, see docs/identity.md). For comparisons and tests.
	NoSocketIndex bool
}

// Attestor attests local processes. It is safe for concurrent use.
type Attestor struct {
	instances store.Instances
	log       *slog.Logger
	now       func() time.Time
	procRoot  string
	bootID    string
	// sockDiag is whether procRoot is a live procfs, so that the kernel's
	// socket table, asked over netlink, is the one ProcRoot/net/tcp shows.
	sockDiag bool
	// sockDiagLogged is set once a sock_diag failure has been logged.
	sockDiagLogged atomic.Bool
	refresh        time.Duration
	recheck        time.Duration

	digests *digestCache
	names   *nameCache

	mu    sync.Mutex
	insts *lru[store.InstanceKey, instanceEntry]

	// events, subscribed to on first use, keep holder verdicts current.
	eventsOnce   sync.Once
	events       *procEvents
	noProcEvents bool
	// scans counts full holder scans (socketHolders), for tests.
	scans atomic.Int64
	// holderScans shares full holder scans between their callers.
	holderScans holderScans
	// sockIndex, when loaded, names the creator of each new socket;
	// sockIndexErr says why it is not. indexed counts the connections it
	// attributed without a scan.
	sockIndex    *socketIndex
	sockIndexErr error
	indexed      atomic.Int64

	// testHookBeforeRecheck, when set, runs after the process has been
	// inspected and before its start time is read again.
	testHookBeforeRecheck func()
}

type instanceEntry struct {
	inst    store.Instance
	written time.Time // when Instances last confirmed it
}

// Result is what attestation learnt about a process.
type Result struct {
	PID int
	UID int
	GID int
	// Exe is the executable path as /proc/PID/exe names it; it ends in
	// " (deleted)" when the file was removed or replaced after the
	// process started it.
	Exe string
	// SHA256 is the hex digest of the running executable.
	SHA256 string
	// StartTicks is the process start time in clock ticks after boot.
	StartTicks uint64
	// Selectors are the process's "unix" selectors, in a fixed order:
	// uid, user, gid, group, supplementary_gid and supplementary_group
	// for each supplementary group, path, sha256. user and group names
	// are left out when the id has no name; path is left out when the
	// file at Exe is no longer the running executable.
	Selectors []store.Selector
	// Instance is the process's instance, stable for its lifetime.
	Instance store.Instance

	exe fileKey // the executable attested, for WatchImage
}

// New returns an Attestor. It reads the kernel boot id once, from
// ProcRoot/sys/kernel/random/boot_id.
func New(c Config) (*Attestor, error) {
	if c.Instances == nil {
		return nil, errors.New("create attestor: Config.Instances is required (pass the store)")
	}
	a := &Attestor{
		instances: c.Instances,
		log:       c.Log,
		now:       c.Now,
		procRoot:  c.ProcRoot,
		refresh:   c.InstanceRefresh,
		recheck:   c.Recheck,

		noProcEvents: c.NoProcEvents,
	}
	if c.NoSocketIndex {
		a.sockIndexErr = errors.New("turned off (Config.NoSocketIndex)")
	}
	if a.recheck == 0 {
		a.recheck = time.Second
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.procRoot == "" {
		a.procRoot = "/proc"
	}
	if a.refresh <= 0 {
		a.refresh = 5 * time.Minute
	}
	digestSize := c.DigestCacheSize
	if digestSize <= 0 {
		digestSize = 1024
	}
	instSize := c.InstanceCacheSize
	if instSize <= 0 {
		instSize = 8192
	}
	a.digests = newDigestCache(digestSize)
	a.names = newNameCache(a.now, a.log)
	a.insts = newLRU[store.InstanceKey, instanceEntry](instSize)

	// Pids from the kernel (SO_PEERCRED, pidfds) are in writ's pid
	// namespace; a procfs of another namespace would name other processes.
	self, err := os.Readlink(filepath.Join(a.procRoot, "self"))
	if err != nil {
		return nil, fmt.Errorf("create attestor: check procfs at %s: %w (set ProcRoot to where procfs is mounted)", a.procRoot, err)
	}
	if self != strconv.Itoa(os.Getpid()) {
		return nil, fmt.Errorf("create attestor: procfs at %s belongs to another pid namespace (it names writ %q, not %d); mount the procfs of writ's own pid namespace", a.procRoot, self, os.Getpid())
	}
	var fs unix.Statfs_t
	a.sockDiag = unix.Statfs(a.procRoot, &fs) == nil && fs.Type == unix.PROC_SUPER_MAGIC
	if a.sockIndexErr == nil {
		switch {
		case !a.sockDiag:
			a.sockIndexErr = fmt.Errorf("socket index: %s is not a live procfs", a.procRoot)
		case a.noProcEvents:
			a.sockIndexErr = errors.New("socket index: needs the process events (Config.NoProcEvents is set)")
		default:
			a.sockIndex, a.sockIndexErr = loadSocketIndex()
		}
	} else {
		a.sockIndexErr = fmt.Errorf("socket index: %w", a.sockIndexErr)
	}
	bootPath := filepath.Join(a.procRoot, "sys/kernel/random/boot_id")
	d, err := os.ReadFile(bootPath)
	if err != nil {
		return nil, fmt.Errorf("create attestor: read boot id: %w", err)
	}
	a.bootID = strings.TrimSpace(string(d))
	if a.bootID == "" {
		return nil, fmt.Errorf("create attestor: boot id file %s is empty", bootPath)
	}
	return a, nil
}

// Attest inspects the process p names and returns its selectors and
// instance. It fails with [ErrProcessGone] if the process exited or its pid
// came to name another process before it finished, so that a result never
// mixes facts about two processes.
//
// UID and GID come from p (what the kernel reported at connect); the
// supplementary groups, executable and start time from /proc.
//
// For a peer of a unix connection ([PeerFromUnixConn], [PeerFromContext])
// it also requires that the process, and no other, holds the client end of
// the connection, and fails with [ErrSocketHandedOver] otherwise: a process
// that connected, handed the socket to another process and exec'd a
// registered executable must not give that executable's identity away.
func (a *Attestor) Attest(ctx context.Context, p Peer) (Result, error) {
	r, err := a.attest(ctx, p)
	if err == nil {
		err = a.checkSoleHolder(ctx, p, r.exe)
	}
	if err != nil {
		return Result{}, fmt.Errorf("attest pid %d: %w", p.PID, err)
	}
	return r, nil
}

func (a *Attestor) attest(ctx context.Context, p Peer) (Result, error) {
	if p.PID <= 0 || p.UID < 0 || p.GID < 0 {
		return Result{}, fmt.Errorf("invalid peer (pid %d, uid %d, gid %d)", p.PID, p.UID, p.GID)
	}
	d, err := openProc(a.procRoot, p.PID)
	if err != nil {
		return Result{}, err
	}
	defer d.close()
	if r, ok := a.reuse(p, d); ok {
		return r, nil
	}
	// The pidfd's process was alive after /proc/PID was opened, so the
	// directory is that process's: a pid is not reused while its process
	// lives.
	if err := p.checkAlive(); err != nil {
		return Result{}, err
	}
	statFile, err := d.open("stat")
	if err != nil {
		return Result{}, err
	}
	defer statFile.close()
	st, err := d.stat(statFile)
	if err != nil {
		return Result{}, err
	}
	exeKey, err := d.statExe()
	if err != nil {
		return Result{}, err
	}
	exe, err := d.readlink("exe")
	if err != nil {
		return Result{}, err
	}
	sum, err := a.digests.get(ctx, exeKey, func() (f *os.File, err error) {
		f, err = d.openExe()
		if err != nil {
			return nil, err
		}
		var fst unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
			f.Close()
			return nil, fmt.Errorf("stat %s: %w", f.Name(), err)
		}
		if keyOf(&fst) != exeKey {
			f.Close()
			return nil, errExeChanged
		}
		return f, nil
	})
	if err != nil {
		return Result{}, err
	}
	status, err := d.status()
	if err != nil {
		return Result{}, err
	}

	if a.testHookBeforeRecheck != nil {
		a.testHookBeforeRecheck()
	}
	// Look again: the same executable, the same process, still alive.
	// (The path needs no second look: it becomes a selector only if the
	// file there is the running executable, see pathIsExe.)
	exeKey2, err := d.statExe()
	if err != nil {
		return Result{}, err
	}
	if exeKey2 != exeKey {
		return Result{}, errExeChanged
	}
	st2, err := d.stat(statFile)
	if err != nil {
		return Result{}, err
	}
	if st2.startTicks != st.startTicks {
		return Result{}, fmt.Errorf("start time changed from %d to %d: %w", st.startTicks, st2.startTicks, ErrProcessGone)
	}
	if err := p.checkAlive(); err != nil {
		return Result{}, err
	}

	inst, err := a.instance(ctx, store.InstanceKey{BootID: a.bootID, PID: p.PID, StartTicks: st.startTicks}, p.UID, exe)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		PID:        p.PID,
		UID:        p.UID,
		GID:        p.GID,
		Exe:        exe,
		SHA256:     sum,
		StartTicks: st.startTicks,
		Selectors:  a.selectors(p, status.groups, exe, exeKey, sum),
		Instance:   inst,
		exe:        exeKey,
	}
	if p.pidfd != nil && a.recheck > 0 {
		p.pidfd.last.Store(&attestation{res: res, exe: exeKey, at: a.now()})
	}
	return cloneResult(res), nil
}

// reuse returns the last full attestation of a pinned peer when it is
// younger than the recheck interval and the process, still alive, runs the
// same executable file as then. The /proc/PID directory d was opened before
// the liveness check, so it is the pinned process's.
func (a *Attestor) reuse(p Peer, d *procDir) (Result, bool) {
	if p.pidfd == nil || a.recheck <= 0 {
		return Result{}, false
	}
	last := p.pidfd.last.Load()
	if last == nil || a.now().Sub(last.at) >= a.recheck {
		return Result{}, false
	}
	if p.checkAlive() != nil {
		return Result{}, false
	}
	exe, err := d.statExe()
	if err != nil || exe != last.exe {
		return Result{}, false // exec'd, or gone: do the full attestation
	}
	return cloneResult(last.res), true
}

// cloneResult copies r so that callers may keep or change it freely.
func cloneResult(r Result) Result {
	r.Selectors = slices.Clone(r.Selectors)
	return r
}

// selectors builds the selector list documented on [Result.Selectors].
// Any selector that [ValidateSelector] would reject (a name or path with
// bytes it does not accept) is left out, so that every selector produced
// can also be written by a user.
func (a *Attestor) selectors(p Peer, groups []int, exe string, exeKey fileKey, sum string) []store.Selector {
	out := make([]store.Selector, 0, 6+2*len(groups))
	add := func(s store.Selector) {
		if err := ValidateSelector(s); err != nil {
			a.log.Debug("leave out selector", "pid", p.PID, "error", err)
			return
		}
		out = append(out, s)
	}
	add(idSelector(KeyUID, p.UID))
	if name := a.names.user(p.UID); name != "" {
		add(strSelector(KeyUser, name))
	}
	add(idSelector(KeyGID, p.GID))
	if name := a.names.group(p.GID); name != "" {
		add(strSelector(KeyGroup, name))
	}
	for _, g := range groups {
		add(idSelector(KeySupplementaryGID, g))
		if name := a.names.group(g); name != "" {
			add(strSelector(KeySupplementaryGroup, name))
		}
	}
	if pathIsExe(exe, exeKey) {
		add(strSelector(KeyPath, exe))
	}
	add(strSelector(KeySHA256, sum))
	return out
}

// pathIsExe reports whether the file at path, as writ sees it, is the
// running executable. It is not when the file was deleted or replaced
// (the link then ends in " (deleted)", though a file may also be named so),
// or when the process runs in another mount namespace.
func pathIsExe(path string, exe fileKey) bool {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false
	}
	return uint64(st.Dev) == exe.dev && st.Ino == exe.ino
}

// instance returns the instance for key, from memory when it was written
// to the store less than a.refresh ago.
func (a *Attestor) instance(ctx context.Context, key store.InstanceKey, uid int, exe string) (store.Instance, error) {
	now := a.now()
	a.mu.Lock()
	e, ok := a.insts.get(key)
	a.mu.Unlock()
	if ok && now.Sub(e.written) < a.refresh && !now.Before(e.written) {
		return e.inst, nil
	}
	id, err := ulid.New(ulid.Timestamp(now), rand.Reader)
	if err != nil {
		return store.Instance{}, fmt.Errorf("make instance id: %w", err)
	}
	fresh := store.Instance{ID: InstancePrefix + id.String(), UID: uid, Exe: exe}
	inst, err := a.instances.InstanceFor(ctx, key, fresh)
	if err != nil {
		return store.Instance{}, fmt.Errorf("record instance: %w", err)
	}
	if inst.ID == fresh.ID {
		a.log.Debug("new instance", "instance", inst.ID, "pid", key.PID, "exe", exe)
	}
	a.mu.Lock()
	a.insts.add(key, instanceEntry{inst: inst, written: now})
	a.mu.Unlock()
	return inst, nil
}

// InstancePrefix starts every instance ID.
const InstancePrefix = "inst_"
