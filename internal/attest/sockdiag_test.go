package attest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dialMapped connects an AF_INET6 socket to the IPv4 address addr through
// its v4-mapped form, as clients with one IPv6 socket for both families
// do, and returns the socket's fd and inode.
func dialMapped(t testing.TB, addr netip.AddrPort) (fd int, inode uint64) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6 sockets here: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	mapped := netip.AddrFrom16(addr.Addr().As16())
	if err := unix.Connect(fd, &unix.SockaddrInet6{Addr: mapped.As16(), Port: int(addr.Port())}); err != nil {
		t.Skipf("cannot connect to %s through a v4-mapped address here: %v", addr, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return fd, st.Ino
}

func fstatInode(t testing.TB, c net.Conn) uint64 {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return st.Ino
}

// The kernel's answer over sock_diag names the same socket as the procfs
// tables and as fstat on the client's own fd.
func TestSockDiagInode(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	if !a.sockDiag {
		t.Fatal("an attestor on the live /proc does not use sock_diag")
	}
	if _, err := sockDiagInode(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")); err != nil && !errors.Is(err, errSockDiagMiss) {
		t.Skipf("sock_diag is not available here (writ falls back to /proc/net/tcp): %v", err)
	}
	dial := func(t *testing.T, ln net.Listener) uint64 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return fstatInode(t, c)
	}
	tests := []struct {
		name, listen string
		dial         func(t *testing.T, ln net.Listener) (client uint64)
	}{
		{"ipv4", "127.0.0.1:0", dial},
		{"ipv6", "[::1]:0", dial},
		{"ipv6 socket with v4-mapped addresses", "127.0.0.1:0", func(t *testing.T, ln net.Listener) uint64 {
			_, inode := dialMapped(t, ln.Addr().(*net.TCPAddr).AddrPort())
			return inode
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", tt.listen)
			if err != nil {
				t.Skipf("cannot listen on %s here: %v", tt.listen, err)
			}
			defer ln.Close()
			var want uint64
			local, remote, _ := acceptAddrs(t, ln, func() (net.Conn, error) {
				want = tt.dial(t, ln)
				return nil, nil
			})
			server, client := unmapped(local), unmapped(remote)
			got, err := sockDiagInode(server, client)
			if err != nil || got != want {
				t.Fatalf("sockDiagInode(%s, %s) = %d, %v; want the client's socket %d", server, client, got, err, want)
			}
			fromTables, err := a.tcpInodeFromTables(server, client)
			if err != nil || fromTables != want {
				t.Fatalf("tcpInodeFromTables(%s, %s) = %d, %v; want %d", server, client, fromTables, err, want)
			}
			pid, err := a.FindTCPPeer(context.Background(), local, remote)
			if err != nil || pid != os.Getpid() {
				t.Fatalf("FindTCPPeer = %d, %v; want %d", pid, err, os.Getpid())
			}
		})
	}
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// The kernel's exact lookup falls back to a listening socket on the
// client's address when no connection matches; that socket is not the
// client's and must not be attributed.
func TestSockDiagInodeListenerIsAMiss(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	listener := ln.Addr().(*net.TCPAddr).AddrPort()
	server := netip.MustParseAddrPort("127.0.0.1:1")
	inode, err := sockDiagInode(server, listener)
	if !errors.Is(err, errSockDiagMiss) {
		if err != nil {
			t.Skipf("sock_diag is not available here: %v", err)
		}
		t.Fatalf("sockDiagInode(%s, listener %s) = %d, want a miss", server, listener, inode)
	}
	if pid, err := a.FindTCPPeer(context.Background(), server, listener); !errors.Is(err, ErrNoTCPPeer) {
		t.Fatalf("FindTCPPeer(%s, listener %s) = %d, %v; want ErrNoTCPPeer", server, listener, pid, err)
	}
}

// A connection the client closed lingers in the kernel's table (FIN_WAIT2
// or TIME_WAIT) without an inode or a process.
func TestSockDiagInodeClosedClient(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	local, remote, client := acceptAddrs(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) })
	client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		inode, err := sockDiagInode(local, remote)
		if err == nil && inode == 0 {
			break
		}
		if err != nil && !errors.Is(err, errSockDiagMiss) {
			t.Skipf("sock_diag is not available here: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("sockDiagInode of a closed client end = %d, %v; want it found without an inode", inode, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pid, err := a.FindTCPPeer(context.Background(), local, remote); !errors.Is(err, ErrNoTCPPeer) {
		t.Fatalf("FindTCPPeer of a closed client end = %d, %v; want ErrNoTCPPeer", pid, err)
	}
}

// An attestor on a fake procfs cannot ask the kernel: its socket tables
// are files.
func TestSockDiagOnlyOnLiveProc(t *testing.T) {
	fp := newFakeProc(t)
	a, _ := newTestAttestor(t, Config{ProcRoot: fp.root})
	if a.sockDiag {
		t.Fatal("an attestor on a fake procfs uses sock_diag")
	}
}

// sockDiagReply builds a netlink datagram of messages, each a type and
// body, with the request's sequence number unless seq is given.
func sockDiagReply(msgs ...diagMsg) []byte {
	var b []byte
	for _, m := range msgs {
		seq := uint32(sockDiagSeq)
		if m.seq != 0 {
			seq = m.seq
		}
		h := make([]byte, unix.NLMSG_HDRLEN)
		binary.NativeEndian.PutUint32(h[0:], uint32(unix.NLMSG_HDRLEN+len(m.body)))
		binary.NativeEndian.PutUint16(h[4:], m.typ)
		binary.NativeEndian.PutUint32(h[8:], seq)
		b = append(b, h...)
		b = append(b, m.body...)
		for len(b)%unix.NLMSG_ALIGNTO != 0 {
			b = append(b, 0)
		}
	}
	return b
}

type diagMsg struct {
	typ  uint16
	seq  uint32
	body []byte
}

func diagErr(errno unix.Errno) diagMsg {
	body := make([]byte, 4+unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(body, uint32(-int32(errno)))
	return diagMsg{typ: unix.NLMSG_ERROR, body: body}
}

// diagSocket is an inet_diag_msg for the socket local → remote: the
// request's id, as the kernel echoes it, with an inode.
func diagSocket(local, remote netip.AddrPort, inode uint32) diagMsg {
	req := sockDiagRequest(remote, local)[unix.NLMSG_HDRLEN:]
	body := make([]byte, sizeofInetDiagMsg+8) // and an attribute
	body[0] = req[0]
	body[1] = 1 // TCP_ESTABLISHED
	copy(body[4:], req[8:8+sizeofInetDiagSockID])
	binary.NativeEndian.PutUint32(body[68:], inode)
	return diagMsg{typ: unix.SOCK_DIAG_BY_FAMILY, body: body}
}

func TestParseSockDiagReply(t *testing.T) {
	ap := netip.MustParseAddrPort
	server, client := ap("127.0.0.1:8080"), ap("127.0.0.1:50000")
	server6, client6 := ap("[::1]:8080"), ap("[::1]:50000")
	mapped := diagSocket(ap("[::ffff:127.0.0.1]:50000"), ap("[::ffff:127.0.0.1]:8080"), 44)
	mapped.body[0] = unix.AF_INET6
	tests := []struct {
		name           string
		reply          []byte
		server, client netip.AddrPort
		want           uint64
		err            error  // errors.Is
		errText        string // or any error
	}{
		{"ipv4", sockDiagReply(diagSocket(client, server, 42)), server, client, 42, nil, ""},
		{"ipv6", sockDiagReply(diagSocket(client6, server6, 43)), server6, client6, 43, nil, ""},
		{"v4-mapped socket", sockDiagReply(mapped), server, client, 44, nil, ""},
		{"time-wait", sockDiagReply(diagSocket(client, server, 0)), server, client, 0, nil, ""},
		{"other socket", sockDiagReply(diagSocket(client, ap("127.0.0.1:8081"), 45)), server, client, 0, errSockDiagMiss, ""},
		{"listener", sockDiagReply(diagSocket(client, ap("0.0.0.0:0"), 46)), server, client, 0, errSockDiagMiss, ""},
		{"not found", sockDiagReply(diagErr(unix.ENOENT)), server, client, 0, errSockDiagMiss, ""},
		{"not permitted", sockDiagReply(diagErr(unix.EPERM)), server, client, 0, unix.EPERM, ""},
		{"ack then answer", sockDiagReply(diagErr(0), diagSocket(client, server, 47)), server, client, 47, nil, ""},
		{"other sequence skipped", sockDiagReply(diagMsg{typ: unix.SOCK_DIAG_BY_FAMILY, seq: 9, body: diagSocket(client, server, 1).body}, diagSocket(client, server, 48)), server, client, 48, nil, ""},
		{"done", sockDiagReply(diagMsg{typ: unix.NLMSG_DONE, body: make([]byte, 4)}), server, client, 0, errSockDiagMiss, ""},
		{"empty", nil, server, client, 0, nil, "no answer"},
		{"short header", []byte{1, 2, 3}, server, client, 0, nil, "netlink header"},
		{"short socket message", sockDiagReply(diagMsg{typ: unix.SOCK_DIAG_BY_FAMILY, body: make([]byte, 20)}), server, client, 0, nil, "socket message of 20 bytes"},
		{"length past the end", sockDiagReply(diagSocket(client, server, 42))[:40], server, client, 0, nil, "does not fit"},
		{"unknown family", func() []byte { m := diagSocket(client, server, 42); m.body[0] = 99; return sockDiagReply(m) }(), server, client, 0, errSockDiagMiss, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSockDiagReply(tt.reply, tt.server, tt.client)
			switch {
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("parseSockDiagReply = %d, %v; want %v", got, err, tt.err)
				}
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("parseSockDiagReply = %d, %v; want an error containing %q", got, err, tt.errText)
				}
			case err != nil || got != tt.want:
				t.Fatalf("parseSockDiagReply = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func FuzzParseSockDiagReply(f *testing.F) {
	ap := netip.MustParseAddrPort
	server, client := ap("127.0.0.1:8080"), ap("127.0.0.1:50000")
	f.Add(sockDiagReply(diagSocket(client, server, 42)))
	f.Add(sockDiagReply(diagErr(0), diagSocket(client, server, 47)))
	f.Add(sockDiagReply(diagErr(unix.ENOENT)))
	f.Fuzz(func(t *testing.T, b []byte) {
		inode, err := parseSockDiagReply(b, server, client)
		if err != nil && inode != 0 {
			t.Fatalf("parseSockDiagReply(%x) = %d and an error %v", b, inode, err)
		}
		if err == nil && inode != 0 && !containsUint32(b, uint32(inode)) {
			t.Fatalf("parseSockDiagReply(%x) invented inode %d", b, inode)
		}
	})
}

func containsUint32(b []byte, v uint32) bool {
	var w [4]byte
	binary.NativeEndian.PutUint32(w[:], v)
	return bytes.Contains(b, w[:])
}

// A process with more open files than one getdents call returns is still
// scanned to the end.
func TestSocketHoldersManyFiles(t *testing.T) {
	fp := newFakeProc(t)
	const n = 3000 // far more than fit in the scan's buffer at once
	for i := 0; i < n; i++ {
		fp.link(fmt.Sprintf("10/fd/%d", i), "/dev/null")
	}
	fp.link(fmt.Sprintf("10/fd/%d", n), "socket:[777]")
	fp.link("11/fd/0", "socket:[777]")
	a, _ := newTestAttestor(t, Config{ProcRoot: fp.root})
	pids, skipped, err := a.socketHolders(context.Background(), 777)
	if err != nil || skipped != 0 || len(pids) != 2 {
		t.Fatalf("socketHolders = %v, %d skipped, %v; want pids 10 and 11", pids, skipped, err)
	}
	holds, err := holdsSocket(unix.AT_FDCWD, fp.root+"/10", socketLink(777))
	if err != nil || !holds {
		t.Fatalf("holdsSocket of the last of %d files = %v, %v", n+1, holds, err)
	}
}
