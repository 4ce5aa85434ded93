package attest

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// TestTCPSockets finds a connection the test opens, with the same facts
// from sock_diag and from the procfs tables.
func TestTCPSockets(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()

	find := func(name string, socks []TCPSocket) TCPSocket {
		t.Helper()
		var listen bool
		var got TCPSocket
		for _, s := range socks {
			if s.Local == remote && s.State == TCPListen {
				listen = true
			}
			if s.Local == local && s.Remote == remote {
				got = s
			}
		}
		if !listen {
			t.Errorf("%s: no listening socket on %v", name, remote)
		}
		if got.Inode == 0 || got.State != TCPEstablished {
			t.Fatalf("%s: connection %v -> %v not found established with an inode: %+v", name, local, remote, got)
		}
		return got
	}
	viaDiag, err := dumpTCP(nil)
	if err != nil {
		t.Skipf("sock_diag unavailable here: %v", err)
	}
	viaTables, err := tcpTables("/proc")
	if err != nil {
		t.Fatal(err)
	}
	a, b := find("sock_diag", viaDiag), find("/proc/net/tcp", viaTables)
	if a != b {
		t.Errorf("sock_diag says %+v, /proc/net/tcp says %+v", a, b)
	}
	all, err := TCPSockets("/proc")
	if err != nil {
		t.Fatal(err)
	}
	find("TCPSockets", all)
}

func TestParseTCPTableHostile(t *testing.T) {
	for _, in := range []string{
		"header\n0: 0100007F:1F90 0100007F:C350 zz 00000000:00000000 00:00000000 00000000 0 0 1\n",
		"header\n0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000 -1 0 1\n",
		"header\n0: 0100007F:1F90\n",
		"header\n0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000 0 0 99999999999999999999999\n",
	} {
		if _, err := ParseTCPTable(strings.NewReader(in), nil); err == nil {
			t.Errorf("ParseTCPTable(%q) accepted it", in)
		}
	}
	got, err := ParseTCPTable(strings.NewReader("header\n   0: 0100007F:1F90 0200007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := TCPSocket{Local: netip.MustParseAddrPort("127.0.0.1:8080"), Remote: netip.MustParseAddrPort("127.0.0.2:50000"), State: TCPEstablished, UID: 1000, Inode: 4242}
	if len(got) != 1 || got[0] != want {
		t.Errorf("ParseTCPTable = %+v, want [%+v]", got, want)
	}
}

func FuzzParseTCPTable(f *testing.F) {
	f.Add("header\n   0: 0100007F:1F90 0200007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0\n")
	f.Add("header\n 0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:C350 0A 0:0 0:0 0 0 0 7\n")
	f.Fuzz(func(t *testing.T, in string) {
		socks, err := ParseTCPTable(strings.NewReader(in), nil)
		for _, s := range socks {
			if s.Local.Addr().Is4In6() || s.Remote.Addr().Is4In6() {
				t.Fatalf("kept a v4-mapped address: %+v", s)
			}
		}
		_ = err
	})
}

func FuzzParseSockDiagDump(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 16+72))
	f.Fuzz(func(t *testing.T, b []byte) {
		socks, _, _ := ParseSockDiagDump(b, nil)
		if len(socks) > len(b)/(16+72) {
			t.Fatalf("%d sockets from %d bytes", len(socks), len(b))
		}
	})
}
