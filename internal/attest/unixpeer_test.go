package attest

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func unixInode(t testing.TB, c *net.UnixConn) uint64 {
	t.Helper()
	ino, err := sockInode(c)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// The kernel names the client end of a connection as the peer of writ's
// end.
func TestUnixPeerInode(t *testing.T) {
	s, c := unixPair(t)
	got, err := unixPeerInode(unixInode(t, s))
	if errors.Is(err, ErrUnixDiagUnavailable) {
		t.Skipf("no unix sock_diag in this kernel: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if want := unixInode(t, c); got != want {
		t.Fatalf("peer inode %d, want the client's %d", got, want)
	}
	c.Close()
	if _, err := unixPeerInode(unixInode(t, s)); err == nil {
		t.Fatal("a connection whose client end is closed still has a peer")
	}
}

// Attest refuses a unix peer whose client end is held by another process
// too, or by another process only; the sole holder is attested.
func TestAttestSocketHolder(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ctx := context.Background()

	s, c := unixPair(t)
	p, err := PeerFromUnixConn(s)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := a.Attest(ctx, p); err != nil {
		if errors.Is(err, ErrUnixDiagUnavailable) {
			t.Skipf("no unix sock_diag in this kernel: %v", err)
		}
		t.Fatalf("the sole holder: %v", err)
	}

	f, err := c.File() // a second fd of the client end, given to a child
	if err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, selfExe(t), "hold", f)
	_, err = a.Attest(ctx, p)
	if !errors.Is(err, ErrSocketHandedOver) {
		t.Fatalf("shared with pid %d: err = %v, want ErrSocketHandedOver", h.pid(), err)
	}
	f.Close()
	c.Close()
	_, err = a.Attest(ctx, p)
	if !errors.Is(err, ErrSocketHandedOver) || !strings.Contains(err.Error(), "no longer holds") {
		t.Fatalf("held by the child only: err = %v, want ErrSocketHandedOver", err)
	}
	h.stop()
}

func unixDiagAnswer(ino, peer uint32, extra ...[]byte) []byte {
	ne := binary.NativeEndian
	body := make([]byte, sizeofUnixDiagMsg)
	body[0] = unix.AF_UNIX
	ne.PutUint32(body[4:], ino)
	for _, e := range extra {
		body = append(body, e...)
	}
	attr := make([]byte, 8)
	ne.PutUint16(attr[0:], 8)
	ne.PutUint16(attr[2:], unixDiagPeer)
	ne.PutUint32(attr[4:], peer)
	body = append(body, attr...)
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	ne.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	ne.PutUint16(msg[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint32(msg[8:], sockDiagSeq)
	return append(msg, body...)
}

func TestParseUnixDiagReply(t *testing.T) {
	ne := binary.NativeEndian
	name := make([]byte, 12) // UNIX_DIAG_NAME "/a/b" padded
	ne.PutUint16(name[0:], 9)
	copy(name[4:], "/a/b\x00")
	tests := []struct {
		name    string
		b       []byte
		want    uint64
		wantErr string
	}{
		{"peer", unixDiagAnswer(7, 9), 9, ""},
		{"after another attribute", unixDiagAnswer(7, 9, name), 9, ""},
		{"other inode", unixDiagAnswer(8, 9), 0, "asked for unix inode 7"},
		{"no peer", unixDiagAnswer(7, 0), 0, "has no peer"},
		{"truncated", unixDiagAnswer(7, 9)[:20], 0, "does not fit"},
		{"empty", nil, 0, "no answer"},
		{"short header", []byte{1, 2, 3}, 0, "not a netlink header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUnixDiagReply(tt.b, 7)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func FuzzParseUnixDiagReply(f *testing.F) {
	f.Add(unixDiagAnswer(7, 9))
	f.Add(unixDiagAnswer(7, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		peer, err := parseUnixDiagReply(b, 7)
		if err == nil && peer == 0 {
			t.Fatal("no error and no peer")
		}
	})
}

func TestProbeUnixDiag(t *testing.T) {
	if err := ProbeUnixDiag(); err != nil {
		if errors.Is(err, ErrUnixDiagUnavailable) {
			t.Skipf("no unix sock_diag in this kernel: %v", err)
		}
		t.Fatal(err)
	}
}
