package discover

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// procStat holds the fields of /proc/PID/stat a scan uses.
type procStat struct {
	pid        int
	comm       string
	ppid       int
	startTicks uint64
}

// parseStat parses /proc/PID/stat: "pid (comm) state ppid ... starttime ...".
// comm may hold spaces and parentheses, so the fields after it are found
// from the last ')'.
func parseStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return procStat{}, errors.New("no (comm) field")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil || pid <= 0 {
		return procStat{}, fmt.Errorf("bad pid %q", bytes.TrimSpace(b[:open]))
	}
	rest := bytes.Fields(b[end+1:])
	// rest[0] is field 3 (state); ppid is field 4, starttime field 22.
	if len(rest) < 20 {
		return procStat{}, fmt.Errorf("%d fields after comm, want at least 20", len(rest))
	}
	ppid, err := strconv.Atoi(string(rest[1]))
	if err != nil || ppid < 0 {
		return procStat{}, fmt.Errorf("bad ppid %q", rest[1])
	}
	start, err := strconv.ParseUint(string(rest[19]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("bad starttime %q", rest[19])
	}
	return procStat{pid: pid, comm: string(b[open+1 : end]), ppid: ppid, startTicks: start}, nil
}

// parseStatusIDs returns the effective uid and gid from /proc/PID/status.
func parseStatusIDs(b []byte) (uid, gid int, err error) {
	uid, gid = -1, -1
	for line := range bytes.Lines(b) {
		var dst *int
		var rest []byte
		if r, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
			dst, rest = &uid, r
		} else if r, ok := bytes.CutPrefix(line, []byte("Gid:")); ok {
			dst, rest = &gid, r
		} else {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 2 {
			return 0, 0, fmt.Errorf("line %q: want real and effective id", bytes.TrimSpace(line))
		}
		id, err := strconv.ParseUint(string(f[1]), 10, 31)
		if err != nil {
			return 0, 0, fmt.Errorf("line %q: bad effective id", bytes.TrimSpace(line))
		}
		*dst = int(id)
	}
	if uid < 0 || gid < 0 {
		return 0, 0, errors.New("no Uid or Gid line")
	}
	return uid, gid, nil
}

// splitNUL splits a NUL-separated, NUL-terminated list (cmdline, environ).
// A process that rewrote its argv may leave it without the final NUL, or
// with spaces instead: what is there is taken as it is.
func splitNUL(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// parseCgroup returns the cgroup v2 path from /proc/PID/cgroup ("0::/path"),
// or the first hierarchy's path on a v1 host, and the container id found in
// it: a 64-hex-digit path element, as docker, containerd, CRI-O and podman
// name their scopes ("docker-<id>.scope", "cri-containerd-<id>.scope",
// "libpod-<id>.scope", ".../<id>").
func parseCgroup(b []byte) (path, container string) {
	for line := range bytes.Lines(b) {
		line = bytes.TrimRight(line, "\n")
		_, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		_, p, ok := bytes.Cut(rest, []byte(":"))
		if !ok {
			continue
		}
		if path == "" || bytes.HasPrefix(line, []byte("0::")) {
			path = string(p)
		}
	}
	for _, el := range strings.Split(path, "/") {
		el = strings.TrimSuffix(el, ".scope")
		if i := strings.LastIndexAny(el, "-:"); i >= 0 {
			el = el[i+1:]
		}
		if len(el) == 64 && isHex(el) {
			container = el
		}
	}
	return path, container
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// parseSocketLink returns the inode of a "socket:[12345]" fd link.
func parseSocketLink(link []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(link, []byte("socket:["))
	if !ok || len(rest) < 2 || rest[len(rest)-1] != ']' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(rest[:len(rest)-1]), 10, 64)
	return n, err == nil
}
