package attest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The socket of one TCP connection, asked of the kernel over
// NETLINK_SOCK_DIAG (sock_diag(7)) with an exact-match request: the
// kernel looks the 4-tuple up in its connection hash and answers with that
// one socket, where /proc/net/tcp renders every socket of the namespace as
// text.
//
// The messages are fixed kernel ABI (linux/inet_diag.h). Ports and
// addresses are in network byte order, every other field in host order:
//
//	struct inet_diag_sockid  { be16 sport, dport; be32 src[4], dst[4]; u32 if; u32 cookie[2]; }  // 48 bytes
//	struct inet_diag_req_v2  { u8 family, protocol, ext, pad; u32 states; inet_diag_sockid id; } // 56 bytes
//	struct inet_diag_msg     { u8 family, state, timer, retrans; inet_diag_sockid id;
//	                           u32 expires, rqueue, wqueue, uid, inode; }                         // 72 bytes
//
// golang.org/x/sys/unix has the netlink header and constants but not these
// structs; github.com/vishvananda/netlink's SocketGet sends a dump filtered
// by port only and returns the first answer without checking its
// addresses, which is both slower and not exact enough to attribute a
// connection, so writ builds the 56-byte request itself.
const (
	sizeofInetDiagSockID = 48
	sizeofInetDiagReqV2  = 8 + sizeofInetDiagSockID
	sizeofInetDiagMsg    = 4 + sizeofInetDiagSockID + 20

	inetDiagNoCookie = ^uint32(0)
	sockDiagSeq      = 1
)

// errSockDiagMiss reports that the kernel answered a sock_diag request
// with ENOENT: no socket has the 4-tuple, or the kernel has no tcp_diag
// support. The two cannot be told apart, so the caller asks /proc/net/tcp.
var errSockDiagMiss = errors.New("sock_diag found no socket")

// sockDiagInode returns the inode of the TCP socket whose local address is
// client and whose peer is server, from the kernel's socket table in writ's
// network namespace. The inode is 0 for a connection in TIME_WAIT, which no
// process holds. Both addresses must be unmapped.
//
// An IPv4 request also finds an IPv6 socket connected with v4-mapped
// addresses: the kernel keeps both in one hash, keyed by the IPv4 address.
func sockDiagInode(server, client netip.AddrPort) (uint64, error) {
	s, err := sockDiagSocket(server, client)
	return s.inode, err
}

// kernelSocket is what sock_diag says of one socket.
type kernelSocket struct {
	inode  uint64 // 0 in TIME_WAIT
	cookie uint64 // the kernel's id of the socket (see sockindex.go)
}

// sockDiagSocket is sockDiagInode with the socket's cookie.
func sockDiagSocket(server, client netip.AddrPort) (kernelSocket, error) {
	if server.Addr().Is4() != client.Addr().Is4() {
		return kernelSocket{}, errSockDiagMiss // no socket joins an IPv4 and an IPv6 address
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return kernelSocket{}, fmt.Errorf("open sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	kernel := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	for {
		err = unix.Sendto(fd, sockDiagRequest(server, client), 0, kernel)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return kernelSocket{}, fmt.Errorf("send sock_diag request: %w", err)
	}
	// The kernel handles a request to one of its netlink sockets inside
	// sendto, so the answer is queued by now: do not wait for one.
	buf := make([]byte, 4096)
	for {
		n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return kernelSocket{}, fmt.Errorf("receive sock_diag answer: %w", err)
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue // not from the kernel
		}
		return parseSockDiagSocket(buf[:n], server, client)
	}
}

// sockDiagRequest returns a netlink message asking for the TCP socket
// whose local address is client and whose peer is server.
func sockDiagRequest(server, client netip.AddrPort) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+sizeofInetDiagReqV2)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], sockDiagSeq)
	req := b[unix.NLMSG_HDRLEN:]
	req[0] = unix.AF_INET6
	if client.Addr().Is4() {
		req[0] = unix.AF_INET
	}
	req[1] = unix.IPPROTO_TCP
	ne.PutUint32(req[4:], ^uint32(0)) // every state
	id := req[8:]
	binary.BigEndian.PutUint16(id[0:], client.Port())
	binary.BigEndian.PutUint16(id[2:], server.Port())
	putDiagAddr(id[4:20], client.Addr())
	putDiagAddr(id[20:36], server.Addr())
	ne.PutUint32(id[40:], inetDiagNoCookie)
	ne.PutUint32(id[44:], inetDiagNoCookie)
	return b
}

func putDiagAddr(b []byte, a netip.Addr) {
	if a.Is4() {
		v4 := a.As4()
		copy(b, v4[:])
		return
	}
	v6 := a.As16()
	copy(b, v6[:])
}

// parseSockDiagReply returns the inode from the kernel's answer to
// sockDiagRequest(server, client). An answer for any other socket (the
// kernel's lookup falls back to a listener on the client's port when no
// connection matches) is a miss, as is ENOENT; other errors from the kernel
// are returned as they are.
func parseSockDiagReply(b []byte, server, client netip.AddrPort) (uint64, error) {
	s, err := parseSockDiagSocket(b, server, client)
	return s.inode, err
}

// parseSockDiagSocket is parseSockDiagReply with the socket's cookie.
func parseSockDiagSocket(b []byte, server, client netip.AddrPort) (kernelSocket, error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		typ, seq, body, rest, err := splitNetlink(b, "sock_diag answer")
		if err != nil {
			return kernelSocket{}, err
		}
		b = rest
		if seq != sockDiagSeq {
			continue
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return kernelSocket{}, fmt.Errorf("parse sock_diag answer: error message of %d bytes", len(body))
			}
			errno := -int32(ne.Uint32(body))
			switch {
			case errno == 0:
				continue // an acknowledgement
			case errno < 0:
				return kernelSocket{}, fmt.Errorf("parse sock_diag answer: error number %d", -errno)
			case unix.Errno(errno) == unix.ENOENT:
				return kernelSocket{}, errSockDiagMiss
			}
			return kernelSocket{}, fmt.Errorf("sock_diag: %w", unix.Errno(errno))
		case unix.NLMSG_DONE:
			return kernelSocket{}, errSockDiagMiss
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(body) < sizeofInetDiagMsg {
				return kernelSocket{}, fmt.Errorf("parse sock_diag answer: socket message of %d bytes, want at least %d", len(body), sizeofInetDiagMsg)
			}
			local, remote, ok := diagAddrs(body[0], body[4:4+sizeofInetDiagSockID])
			if !ok || local != client || remote != server {
				return kernelSocket{}, errSockDiagMiss
			}
			id := body[4 : 4+sizeofInetDiagSockID]
			cookie := uint64(ne.Uint32(id[40:])) | uint64(ne.Uint32(id[44:]))<<32
			if cookie == uint64(inetDiagNoCookie)|uint64(inetDiagNoCookie)<<32 {
				cookie = 0 // the request's "no cookie" echoed: none told
			}
			return kernelSocket{inode: uint64(ne.Uint32(body[68:])), cookie: cookie}, nil
		}
	}
	return kernelSocket{}, errors.New("parse sock_diag answer: no answer for the request")
}

// diagAddrs decodes the local and remote addresses of an inet_diag_sockid,
// unmapped.
func diagAddrs(family byte, id []byte) (local, remote netip.AddrPort, ok bool) {
	addr := func(b []byte) netip.Addr {
		if family == unix.AF_INET {
			return netip.AddrFrom4([4]byte(b[:4]))
		}
		return netip.AddrFrom16([16]byte(b[:16])).Unmap()
	}
	if family != unix.AF_INET && family != unix.AF_INET6 {
		return netip.AddrPort{}, netip.AddrPort{}, false
	}
	local = netip.AddrPortFrom(addr(id[4:20]), binary.BigEndian.Uint16(id[0:]))
	remote = netip.AddrPortFrom(addr(id[20:36]), binary.BigEndian.Uint16(id[2:]))
	return local, remote, true
}

// splitNetlink splits the first netlink message off b: its type, sequence
// number and body, and the bytes after it (padding skipped). what names the
// answer in errors ("sock_diag answer", "sock_diag dump").
func splitNetlink(b []byte, what string) (typ uint16, seq uint32, body, rest []byte, err error) {
	ne := binary.NativeEndian
	if len(b) < unix.NLMSG_HDRLEN {
		return 0, 0, nil, nil, fmt.Errorf("parse %s: %d trailing bytes are not a netlink header", what, len(b))
	}
	msgLen := int(ne.Uint32(b[0:]))
	typ, seq = ne.Uint16(b[4:]), ne.Uint32(b[8:])
	if msgLen < unix.NLMSG_HDRLEN || msgLen > len(b) {
		return 0, 0, nil, nil, fmt.Errorf("parse %s: message length %d does not fit in %d bytes", what, msgLen, len(b))
	}
	return typ, seq, b[unix.NLMSG_HDRLEN:msgLen], b[min((msgLen+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):], nil
}
