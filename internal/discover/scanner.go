package discover

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/secrets"
	"github.com/writ-dev/writ/internal/store"
)

// Matcher matches attested selectors to registration entries;
// *registry.Registry is one.
type Matcher interface {
	Match(attested []store.Selector) []store.Entry
}

// Upstream is the address of a writ Service's upstream.
type Upstream struct {
	Service string
	Addr    netip.AddrPort
}

// Config configures a [Scanner]. Detector is required.
type Config struct {
	// Detector finds and fingerprints secrets. Required; use the
	// deployment's fingerprint key so that fingerprints compare with the
	// broker's.
	Detector *secrets.Detector
	// ProcRoot is where procfs is mounted. Defaults to "/proc".
	ProcRoot string
	// Host names this host in reports. Defaults to os.Hostname.
	Host string
	// Now returns the current time. Defaults to time.Now.
	Now func() time.Time
	// Log receives debug messages. Defaults to discarding.
	Log *slog.Logger
	// WritAddrs returns writ's listeners (access proxy, MCP gateway): a
	// connection to one is through writ. Optional.
	WritAddrs func() []netip.AddrPort
	// Upstreams returns the upstream addresses of writ's Services: a
	// direct connection to one is shadow access. Optional.
	Upstreams func(ctx context.Context) []Upstream
	// Matcher matches agents' selectors to registration entries; an agent
	// or MCP server without a match is shadow. Optional: without it no
	// process has an identity.
	Matcher Matcher
	// Home returns the home directory of a uid, for its credential files.
	// Defaults to the account database (os/user). A process's own HOME
	// variable, when writ may read its environment, is used as well.
	Home func(uid int) string
}

// Scanner scans the host. It is safe for concurrent use; scans are
// serialised.
type Scanner struct {
	c        Config
	bootTime time.Time

	mu      sync.Mutex
	digests map[fileKey]digest // exe digests by file identity, from the last two scans
	gen     int
	users   map[int]string // user names by uid, for one scan
	groups  map[int]string
}

type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

type digest struct {
	sum string
	gen int
}

// clockTicks is USER_HZ, which Linux fixes at 100 on every architecture
// for /proc/PID/stat.
const clockTicks = 100

// New returns a Scanner.
func New(c Config) (*Scanner, error) {
	if c.Detector == nil {
		return nil, errors.New("create scanner: Config.Detector is required")
	}
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.Home == nil {
		c.Home = accountHome
	}
	s := &Scanner{c: c, digests: map[fileKey]digest{}}
	if b, err := os.ReadFile(filepath.Join(c.ProcRoot, "stat")); err == nil {
		for line := range bytes.Lines(b) {
			if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
				if n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64); err == nil {
					s.bootTime = time.Unix(n, 0)
				}
			}
		}
	}
	return s, nil
}

func accountHome(uid int) string {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return ""
	}
	return u.HomeDir
}

// scanProc is what one scan learnt about one process before the report
// is assembled.
type scanProc struct {
	Process
	gid     int
	home    string
	env     []string
	sockets []uint64
	modules []string
	exeLink string // /proc/PID/exe, to hash if the process is kept
}

// Scan scans the host once.
func (s *Scanner) Scan(ctx context.Context) (*Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.users, s.groups = map[int]string{}, map[int]string{}
	rep := &Report{Time: s.c.Now().UTC(), Host: s.c.Host}

	pids, err := listPIDs(s.c.ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("scan processes: %w", err)
	}
	var unreadable int
	procs := make([]*scanProc, 0, len(pids))
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, full, err := s.readProc(pid)
		if err != nil {
			continue // exited, or a kernel thread
		}
		if !full {
			unreadable++
		}
		procs = append(procs, p)
	}
	if unreadable > 0 {
		rep.Limits = append(rep.Limits, fmt.Sprintf("%d processes of other users could not be read fully (executable, environment, open sockets): run writ as root to see them", unreadable))
	}

	socks, err := attest.TCPSockets(s.c.ProcRoot)
	if err != nil {
		rep.Limits = append(rep.Limits, "no TCP socket table: "+err.Error())
	}
	s.connections(ctx, procs, socks)

	creds := newCredSet()
	homes := map[string]int{} // home -> uid
	for _, p := range procs {
		v := Classify(Signals{Exe: p.Exe, Argv: p.Cmdline, EnvNames: envNames(p.env), Modules: p.modules})
		p.Kind, p.Name, p.Confidence, p.Evidence = v.Kind, v.Name, v.Confidence, v.Evidence
		p.Cmdline = RedactArgs(s.c.Detector, p.Cmdline)
		for _, c := range envCredentials(s.c.Detector, p.env, p.Interesting()) {
			c.UID = p.UID
			p.Credentials = append(p.Credentials, creds.add(c, p.PID))
		}
		p.env = nil
		if p.exeLink != "" && (p.Interesting() || len(p.Credentials) > 0 || hasService(p.Connections)) {
			// Only what the report and inventory keep is hashed: a
			// host's first scan would otherwise read every executable.
			p.SHA256 = s.exeDigest(p.exeLink)
		}
		if p.Interesting() {
			p.Selectors, p.Identity = s.identify(p)
			for _, h := range []string{p.home, s.c.Home(p.UID)} {
				if h != "" && filepath.IsAbs(h) {
					if _, ok := homes[h]; !ok {
						homes[h] = p.UID
					}
				}
			}
		}
	}
	homeList := make([]string, 0, len(homes))
	for h := range homes {
		homeList = append(homeList, h)
	}
	slices.Sort(homeList)
	for _, h := range homeList {
		ids, limits := s.scanHome(h, homes[h], creds, rep)
		rep.Limits = append(rep.Limits, limits...)
		for _, p := range procs {
			if p.Interesting() && (p.home == h || p.home == "" && s.c.Home(p.UID) == h) {
				p.Credentials = append(p.Credentials, ids...)
			}
		}
	}
	rep.Credentials = creds.list()
	for _, p := range procs {
		rep.Processes = append(rep.Processes, p.Process)
	}
	rep.Shadows = shadows(rep)
	for k := range s.digests {
		if s.digests[k].gen < s.gen-1 {
			delete(s.digests, k)
		}
	}
	return rep, nil
}

func hasService(cs []Connection) bool {
	for _, c := range cs {
		if c.Service != "" {
			return true
		}
	}
	return false
}

// listPIDs lists the numeric entries of procRoot, in order.
func listPIDs(procRoot string) ([]int, error) {
	f, err := os.Open(procRoot)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// readProc reads one process. full is false when writ may not read all of
// it (another user's process, without privilege). A kernel thread (no
// command line and no executable) is an error.
func (s *Scanner) readProc(pid int) (*scanProc, bool, error) {
	dir := filepath.Join(s.c.ProcRoot, strconv.Itoa(pid))
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil, false, err
	}
	st, err := parseStat(b)
	if err != nil {
		return nil, false, fmt.Errorf("parse %s/stat: %w", dir, err)
	}
	b, err = os.ReadFile(dir + "/status")
	if err != nil {
		return nil, false, err
	}
	uid, gid, err := parseStatusIDs(b)
	if err != nil {
		return nil, false, fmt.Errorf("parse %s/status: %w", dir, err)
	}
	b, _ = os.ReadFile(dir + "/cmdline")
	argv := splitNUL(b)
	p := &scanProc{Process: Process{PID: pid, PPID: st.ppid, UID: uid, StartTicks: st.startTicks, Cmdline: argv}, gid: gid}
	if !s.bootTime.IsZero() {
		p.Start = s.bootTime.Add(time.Duration(st.startTicks) * time.Second / clockTicks).UTC()
	}
	full := true
	exe, err := os.Readlink(dir + "/exe")
	switch {
	case err == nil:
		p.Exe = exe
		p.exeLink = dir + "/exe"
	case len(argv) == 0:
		return nil, false, errors.New("kernel thread")
	default:
		full = false
	}
	if b, err := os.ReadFile(dir + "/cgroup"); err == nil {
		p.Cgroup, p.Container = parseCgroup(b)
	}
	if b, err := os.ReadFile(dir + "/environ"); err == nil {
		p.env = splitNUL(b)
		for _, kv := range p.env {
			if h, ok := strings.CutPrefix(kv, "HOME="); ok {
				p.home = h
			}
		}
	} else {
		full = false
	}
	interp := isInterpreter(p.Exe, argv)
	if !s.readFDs(dir, p, interp) {
		full = false
	}
	if interp {
		p.modules = append(p.modules, readMaps(dir+"/maps")...)
	}
	p.User = s.userName(uid)
	return p, full, nil
}

func isInterpreter(exe string, argv []string) bool {
	if slices.Contains(interpreters, trimVersion(filepath.Base(exe))) {
		return true
	}
	return len(argv) > 0 && slices.Contains(interpreters, trimVersion(filepath.Base(argv[0])))
}

// readFDs collects the process's socket inodes and, for an interpreter,
// the paths of its open files. It reports whether the fd table was
// readable.
func (s *Scanner) readFDs(dir string, p *scanProc, files bool) bool {
	fdDir := dir + "/fd"
	f, err := os.Open(fdDir)
	if err != nil {
		return false
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return false
	}
	buf := make([]byte, 512)
	for _, n := range names {
		k, err := unix.Readlink(fdDir+"/"+n, buf)
		if err != nil {
			continue
		}
		link := buf[:k]
		if ino, ok := parseSocketLink(link); ok {
			p.sockets = append(p.sockets, ino)
		} else if files && len(link) > 0 && link[0] == '/' {
			p.modules = append(p.modules, string(link))
		}
	}
	return true
}

// readMaps returns the distinct file paths mapped in /proc/PID/maps.
func readMaps(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 8<<20))
	var out []string
	last := ""
	for line := range bytes.Lines(b) {
		i := bytes.IndexByte(line, '/')
		if i < 0 {
			continue
		}
		p := string(bytes.TrimRight(line[i:], "\n"))
		if p != last {
			out = append(out, p)
			last = p
		}
	}
	return out
}

// exeDigest returns the hex SHA-256 of the executable behind link,
// cached by the file's device, inode, size, mtime and ctime.
func (s *Scanner) exeDigest(link string) string {
	var st unix.Stat_t
	if err := unix.Stat(link, &st); err != nil {
		return ""
	}
	k := fileKey{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
	if d, ok := s.digests[k]; ok {
		s.digests[k] = digest{sum: d.sum, gen: s.gen}
		return d.sum
	}
	f, err := os.Open(link)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	sum := hex.EncodeToString(h.Sum(nil))
	s.digests[k] = digest{sum: sum, gen: s.gen}
	return sum
}

// userName returns the name of uid ("" if it has none), looked up once
// per scan.
func (s *Scanner) userName(uid int) string {
	name, ok := s.users[uid]
	if !ok {
		if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
			name = u.Username
		}
		s.users[uid] = name
	}
	return name
}

// groupName returns the name of gid ("" if it has none), looked up once
// per scan.
func (s *Scanner) groupName(gid int) string {
	name, ok := s.groups[gid]
	if !ok {
		if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
			name = g.Name
		}
		s.groups[gid] = name
	}
	return name
}

func envNames(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		n, _, _ := strings.Cut(kv, "=")
		out = append(out, n)
	}
	return out
}

// identify derives the process's unix selectors (uid, user, gid, group,
// path, sha256: the ones attestation derives, without supplementary
// groups) and the SPIFFE ID of the most specific entry they match.
func (s *Scanner) identify(p *scanProc) ([]string, string) {
	sel := []store.Selector{
		{Type: attest.SelectorType, Value: attest.KeyUID + ":" + strconv.Itoa(p.UID)},
		{Type: attest.SelectorType, Value: attest.KeyGID + ":" + strconv.Itoa(p.gid)},
	}
	if p.User != "" {
		sel = append(sel, store.Selector{Type: attest.SelectorType, Value: attest.KeyUser + ":" + p.User})
	}
	if g := s.groupName(p.gid); g != "" {
		sel = append(sel, store.Selector{Type: attest.SelectorType, Value: attest.KeyGroup + ":" + g})
	}
	if p.Exe != "" && !strings.HasSuffix(p.Exe, " (deleted)") {
		sel = append(sel, store.Selector{Type: attest.SelectorType, Value: attest.KeyPath + ":" + p.Exe})
	}
	if p.SHA256 != "" {
		sel = append(sel, store.Selector{Type: attest.SelectorType, Value: attest.KeySHA256 + ":" + p.SHA256})
	}
	strs := make([]string, len(sel))
	for i, x := range sel {
		strs[i] = x.String()
	}
	if s.c.Matcher == nil {
		return strs, ""
	}
	m := s.c.Matcher.Match(sel)
	if len(m) == 0 {
		return strs, ""
	}
	return strs, m[0].SpiffeID
}

// connections assigns each process its outbound TCP connections.
func (s *Scanner) connections(ctx context.Context, procs []*scanProc, socks []attest.TCPSocket) {
	listening := map[netip.AddrPort]bool{}
	wildPorts := map[uint16]bool{}
	byInode := make(map[uint64]attest.TCPSocket, len(socks))
	for _, so := range socks {
		if so.State == attest.TCPListen {
			listening[so.Local] = true
			if so.Local.Addr().IsUnspecified() {
				wildPorts[so.Local.Port()] = true
			}
			continue
		}
		if (so.State == attest.TCPEstablished || so.State == attest.TCPSynSent) && so.Inode != 0 {
			byInode[so.Inode] = so
		}
	}
	var writ []netip.AddrPort
	if s.c.WritAddrs != nil {
		writ = s.c.WritAddrs()
	}
	var ups []Upstream
	if s.c.Upstreams != nil {
		ups = s.c.Upstreams(ctx)
	}
	// writ's own listening sockets: the process holding one is writ, and
	// its connections to a Service's upstream are the proxy forwarding,
	// not access around it.
	writListen := map[uint64]bool{}
	for _, so := range socks {
		if so.State != attest.TCPListen || so.Inode == 0 {
			continue
		}
		for _, w := range writ {
			if so.Local == w || w.Addr().IsUnspecified() && w.Port() == so.Local.Port() {
				writListen[so.Inode] = true
			}
		}
	}
	for _, p := range procs {
		isWrit := false
		for _, ino := range p.sockets {
			isWrit = isWrit || writListen[ino]
		}
		for _, ino := range p.sockets {
			so, ok := byInode[ino]
			if !ok || listening[so.Local] || wildPorts[so.Local.Port()] {
				continue // not a connection, or the accepted end of one
			}
			c := Connection{Local: so.Local, Remote: so.Remote, Route: RouteDirect}
			for _, w := range writ {
				if so.Remote == w || w.Addr().IsUnspecified() && w.Port() == so.Remote.Port() && so.Remote.Addr().IsLoopback() {
					c.Route = RouteWrit
				}
			}
			if c.Route == RouteDirect && !isWrit {
				for _, u := range ups {
					if u.Addr == so.Remote {
						c.Service = u.Service
					}
				}
			}
			p.Connections = append(p.Connections, c)
		}
		p.sockets = nil
		slices.SortFunc(p.Connections, func(a, b Connection) int {
			if c := a.Remote.Compare(b.Remote); c != 0 {
				return c
			}
			return a.Local.Compare(b.Local)
		})
	}
}

// scanHome reads the credential files and MCP client configurations in
// one home directory. It returns the ids of the credentials found and
// what it could not read.
func (s *Scanner) scanHome(home string, uid int, creds *credSet, rep *Report) (ids, limits []string) {
	read := func(rel string) ([]byte, string, bool) {
		path := joinHome(home, rel)
		f, err := os.Open(path)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				limits = append(limits, fmt.Sprintf("cannot read %s: %v", path, errors.Unwrap(err)))
			}
			return nil, path, false
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			return nil, path, false
		}
		b, err := io.ReadAll(io.LimitReader(f, maxCredFile))
		return b, path, err == nil
	}
	for _, cf := range credentialFiles {
		b, path, ok := read(cf.rel)
		if !ok {
			continue
		}
		for _, c := range fileCredentials(s.c.Detector, path, cf.kind, b) {
			c.UID = uid
			ids = append(ids, creds.add(c, 0))
		}
	}
	for _, mc := range mcpClientConfigs {
		b, path, ok := read(mc.rel)
		if !ok {
			continue
		}
		decls, cs, err := ParseMCPConfig(s.c.Detector, mc.client, path, b)
		if err != nil {
			limits = append(limits, err.Error())
			continue
		}
		names := map[string]string{}
		for _, c := range cs {
			c.UID = uid
			id := creds.add(c, 0)
			names[c.Name] = id
			ids = append(ids, id)
		}
		for _, d := range decls {
			d.UID = uid
			for i, n := range d.Credentials {
				d.Credentials[i] = names[n]
			}
			rep.MCPConfigs = append(rep.MCPConfigs, d)
		}
	}
	return ids, limits
}

// credSet merges the credentials of one scan by id.
type credSet struct {
	byID  map[string]*Credential
	order []string
}

func newCredSet() *credSet { return &credSet{byID: map[string]*Credential{}} }

// add records c (held by pid, if not 0) and returns its id.
func (cs *credSet) add(c Credential, pid int) string {
	c.ID = credentialID(c)
	have, ok := cs.byID[c.ID]
	if !ok {
		have = &c
		have.PIDs = nil
		cs.byID[c.ID] = have
		cs.order = append(cs.order, c.ID)
	}
	if pid != 0 && !slices.Contains(have.PIDs, pid) {
		have.PIDs = append(have.PIDs, pid)
	}
	return c.ID
}

func (cs *credSet) list() []Credential {
	out := make([]Credential, 0, len(cs.order))
	for _, id := range cs.order {
		out = append(out, *cs.byID[id])
	}
	return out
}
