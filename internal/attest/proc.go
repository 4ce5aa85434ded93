package attest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// procDir is an open /proc/PID directory. Files opened relative to it belong
// to the process that had PID when the directory was opened: once that
// process is reaped, reads through the directory fail instead of reaching a
// new process that reuses the pid.
type procDir struct {
	fd   int
	pid  int
	path string // for error messages only
}

// openProc opens root/pid.
func openProc(root string, pid int) (*procDir, error) {
	path := filepath.Join(root, strconv.Itoa(pid))
	fd, err := openRetry(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("open %s: %w", path, ErrProcessGone)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &procDir{fd: fd, pid: pid, path: path}, nil
}

func (d *procDir) close() { unix.Close(d.fd) }

// procErr turns an error from a file of a pinned /proc/PID directory into
// one that says what happened: the process is gone (ENOENT, ESRCH) or writ
// may not inspect it (EACCES, EPERM).
func (d *procDir) procErr(op, name string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ESRCH):
		return fmt.Errorf("%s %s/%s: %w", op, d.path, name, ErrProcessGone)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s %s/%s: %w (writ must run as root, or as the workload's user, or with CAP_SYS_PTRACE to inspect other users' processes)", op, d.path, name, err)
	}
	return fmt.Errorf("%s %s/%s: %w", op, d.path, name, err)
}

// maxProcFile bounds how much of a /proc text file is read; stat and
// status are a few kilobytes at most.
const maxProcFile = 64 << 10

// readFile returns the contents of a small file under the directory.
func (d *procDir) readFile(name string) ([]byte, error) {
	f, err := d.open(name)
	if err != nil {
		return nil, err
	}
	defer f.close()
	return f.read()
}

// open opens a file under the directory for reading.
func (d *procDir) open(name string) (procFile, error) {
	fd, err := openRetry(d.fd, name, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return procFile{}, d.procErr("open", name, err)
	}
	return procFile{fd: fd, dir: d, name: name}, nil
}

// procFile is an open file of a procDir. procfs renders a file afresh on
// every read from offset 0, so one open file can be read twice; that saves
// the path lookup, which is the costly part.
type procFile struct {
	fd   int
	dir  *procDir
	name string
}

func (f procFile) close() { unix.Close(f.fd) }

// read returns the whole file, read from offset 0.
func (f procFile) read() ([]byte, error) {
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= maxProcFile {
				return nil, fmt.Errorf("read %s/%s: larger than %d bytes", f.dir.path, f.name, maxProcFile)
			}
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := unix.Pread(f.fd, buf[len(buf):cap(buf)], int64(len(buf)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, f.dir.procErr("read", f.name, err)
		}
		if n == 0 {
			return buf, nil
		}
		short := n < cap(buf)-len(buf)
		buf = buf[:len(buf)+n]
		if short {
			// procfs renders stat and status whole on the first read,
			// so a short read is the end; this saves a syscall per file
			// on the attestation hot path.
			return buf, nil
		}
	}
}

// readlink returns the target of a link under the directory.
func (d *procDir) readlink(name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(d.fd, name, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", d.procErr("readlink", name, err)
		}
		if n < size || size >= unix.PathMax*2 {
			return string(buf[:n]), nil
		}
	}
}

// statExe returns the identity of the running executable, through the
// /proc/PID/exe link so that a deleted or replaced file is still the one
// the process runs.
func (d *procDir) statExe() (fileKey, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, "exe", &st, 0); err != nil {
		return fileKey{}, d.procErr("stat", "exe", err)
	}
	return keyOf(&st), nil
}

// openExe opens the running executable for reading.
func (d *procDir) openExe() (*os.File, error) {
	fd, err := openRetry(d.fd, "exe", unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, d.procErr("open", "exe", err)
	}
	return os.NewFile(uintptr(fd), d.path+"/exe"), nil
}

// stat parses /proc/PID/stat, read from f.
func (d *procDir) stat(f procFile) (procStat, error) {
	b, err := f.read()
	if err != nil {
		return procStat{}, err
	}
	st, err := parseStat(b)
	if err != nil {
		return procStat{}, fmt.Errorf("parse %s/stat: %w", d.path, err)
	}
	if st.pid != d.pid {
		return procStat{}, fmt.Errorf("parse %s/stat: names pid %d: %w", d.path, st.pid, ErrProcessGone)
	}
	return st, nil
}

// status reads and parses /proc/PID/status.
func (d *procDir) status() (procStatus, error) {
	b, err := d.readFile("status")
	if err != nil {
		return procStatus{}, err
	}
	st, err := parseStatus(b)
	if err != nil {
		return procStatus{}, fmt.Errorf("parse %s/status: %w", d.path, err)
	}
	return st, nil
}

func openRetry(dirfd int, path string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, path, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fileKey identifies the contents of a file for the digest cache. ctime is
// included as well as mtime because only the kernel can set it: a file
// rewritten with its old mtime restored still gets a new ctime.
type fileKey struct {
	dev, ino   uint64
	size       int64
	mtimeNanos int64
	ctimeNanos int64
}

func keyOf(st *unix.Stat_t) fileKey {
	return fileKey{
		dev:        uint64(st.Dev),
		ino:        st.Ino,
		size:       st.Size,
		mtimeNanos: st.Mtim.Nano(),
		ctimeNanos: st.Ctim.Nano(),
	}
}

// procStat holds the fields of /proc/PID/stat that attestation uses.
type procStat struct {
	pid        int
	ppid       int // field 4: the parent's pid (its thread group id)
	comm       string
	startTicks uint64 // field 22: start time in clock ticks after boot
}

// parseStat parses /proc/PID/stat. The second field is the command name in
// parentheses, which the process chooses itself and which may contain
// spaces and parentheses; it ends at the last ')' in the line, and the
// fields after it are plain numbers and one state letter.
func parseStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return procStat{}, errors.New("no (comm) field")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil || pid <= 0 {
		return procStat{}, fmt.Errorf("bad pid field %q", b[:open])
	}
	// Fields after comm start at field 3 (state); start time is field 22.
	rest := bytes.Fields(b[closing+1:])
	const startField = 22 - 3
	if len(rest) <= startField {
		return procStat{}, fmt.Errorf("has %d fields, want at least 22", len(rest)+2)
	}
	ticks, err := strconv.ParseUint(string(rest[startField]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("bad start time field %q", rest[startField])
	}
	ppid, err := strconv.Atoi(string(rest[4-3]))
	if err != nil || ppid < 0 {
		return procStat{}, fmt.Errorf("bad parent pid field %q", rest[4-3])
	}
	return procStat{pid: pid, ppid: ppid, comm: string(b[open+1 : closing]), startTicks: ticks}, nil
}

// procStatus holds the fields of /proc/PID/status that attestation uses.
type procStatus struct {
	uid, gid int   // effective ids, as SO_PEERCRED reports them
	groups   []int // supplementary group ids
}

// parseStatus parses the Uid, Gid and Groups lines of /proc/PID/status.
func parseStatus(b []byte) (procStatus, error) {
	st := procStatus{uid: -1, gid: -1}
	var sawGroups bool
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		switch string(key) {
		case "Uid", "Gid":
			// real, effective, saved set, filesystem
			f := bytes.Fields(val)
			if len(f) < 2 {
				return procStatus{}, fmt.Errorf("bad %s line %q", key, line)
			}
			id, err := parseID(string(f[1]))
			if err != nil {
				return procStatus{}, fmt.Errorf("bad %s line %q", key, line)
			}
			if string(key) == "Uid" {
				st.uid = id
			} else {
				st.gid = id
			}
		case "Groups":
			sawGroups = true
			for _, g := range bytes.Fields(val) {
				id, err := parseID(string(g))
				if err != nil {
					return procStatus{}, fmt.Errorf("bad Groups line %q", line)
				}
				st.groups = append(st.groups, id)
			}
		}
	}
	if st.uid < 0 || st.gid < 0 || !sawGroups {
		return procStatus{}, errors.New("missing Uid, Gid or Groups line")
	}
	return st, nil
}

// parseID parses a uid or gid: a decimal number below 2^32-1 (which is -1,
// "no id", to the kernel).
func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, fmt.Errorf("bad id %q", s)
	}
	return int(n), nil
}
