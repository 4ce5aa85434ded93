package attest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// TCP states (include/net/tcp_states.h) that callers of [TCPSockets] test.
const (
	TCPEstablished uint8 = 1
	TCPSynSent     uint8 = 2
	TCPListen      uint8 = 10
)

// TCPSocket is one socket of the kernel's TCP table.
type TCPSocket struct {
	Local, Remote netip.AddrPort // unmapped
	State         uint8          // TCPEstablished, TCPListen, ...
	UID           uint32         // the socket's owner
	Inode         uint64         // 0 for a socket no process holds (TIME_WAIT)
}

// TCPSockets returns every IPv4 and IPv6 TCP socket of writ's network
// namespace: from the kernel over sock_diag (one dump per family, binary,
// no text to format and parse) when procRoot is the live "/proc", and from
// procRoot/net/tcp and tcp6 otherwise or when sock_diag fails. The runtime
// sensor (internal/discover) uses it to find each process's connections.
func TCPSockets(procRoot string) ([]TCPSocket, error) {
	if procRoot == "/proc" {
		out, err := dumpTCP(nil)
		if err == nil {
			return out, nil
		}
	}
	return tcpTables(procRoot)
}

// tcpTables reads procRoot/net/tcp and tcp6.
func tcpTables(procRoot string) ([]TCPSocket, error) {
	var out []TCPSocket
	for _, name := range []string{"tcp", "tcp6"} {
		path := filepath.Join(procRoot, "net", name)
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // IPv6 disabled
		}
		if err != nil {
			return nil, fmt.Errorf("read socket table: %w", err)
		}
		out, err = ParseTCPTable(f, out)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read socket table %s: %w", path, err)
		}
	}
	return out, nil
}

// ParseTCPTable appends the sockets of a /proc/net/tcp or tcp6 table read
// from r to out.
func ParseTCPTable(r io.Reader, out []TCPSocket) ([]TCPSocket, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 64<<10)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		e, err := parseTCPLine(sc.Bytes())
		if err != nil {
			return out, err
		}
		out = append(out, TCPSocket{Local: e.local, Remote: e.remote, State: e.state, UID: e.uid, Inode: e.inode})
	}
	return out, sc.Err()
}

// dumpTCP asks the kernel for every TCP socket of both families.
func dumpTCP(out []TCPSocket) ([]TCPSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 64<<10)
	for _, family := range []byte{unix.AF_INET, unix.AF_INET6} {
		if out, err = dumpFamily(fd, family, buf, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func dumpFamily(fd int, family byte, buf []byte, out []TCPSocket) ([]TCPSocket, error) {
	b := make([]byte, unix.NLMSG_HDRLEN+sizeofInetDiagReqV2)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], sockDiagSeq)
	req := b[unix.NLMSG_HDRLEN:]
	req[0] = family
	req[1] = unix.IPPROTO_TCP
	ne.PutUint32(req[4:], ^uint32(0)) // every state
	ne.PutUint32(req[8+40:], inetDiagNoCookie)
	ne.PutUint32(req[8+44:], inetDiagNoCookie)
	kernel := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	var err error
	for {
		if err = unix.Sendto(fd, b, 0, kernel); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("send sock_diag dump request: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receive sock_diag dump: %w", err)
		}
		var done bool
		out, done, err = ParseSockDiagDump(buf[:n], out)
		if err != nil || done {
			return out, err
		}
	}
}

// ParseSockDiagDump appends the sockets of one datagram of a sock_diag
// dump answer to out, and reports whether it ended the dump.
func ParseSockDiagDump(b []byte, out []TCPSocket) ([]TCPSocket, bool, error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		typ, _, body, rest, err := splitNetlink(b, "sock_diag dump")
		if err != nil {
			return out, false, err
		}
		b = rest
		switch typ {
		case unix.NLMSG_DONE:
			return out, true, nil
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return out, false, fmt.Errorf("parse sock_diag dump: error message of %d bytes", len(body))
			}
			errno := -int32(ne.Uint32(body))
			if errno == 0 {
				continue
			}
			return out, false, fmt.Errorf("sock_diag dump: %w", unix.Errno(errno))
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(body) < sizeofInetDiagMsg {
				return out, false, fmt.Errorf("parse sock_diag dump: socket message of %d bytes, want at least %d", len(body), sizeofInetDiagMsg)
			}
			local, remote, ok := diagAddrs(body[0], body[4:4+sizeofInetDiagSockID])
			if !ok {
				continue
			}
			out = append(out, TCPSocket{Local: local, Remote: remote, State: body[1],
				UID: ne.Uint32(body[64:]), Inode: uint64(ne.Uint32(body[68:]))})
		}
	}
	return out, false, nil
}
