// Package discover benchmarks writ's runtime sensor (internal/discover)
// on a host the benchmark populates: 2,000 processes and 10,000 TCP
// sockets, against ps and ss reading the same in one run. See
// bench/README.md, "Discovery".
package discover

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/discover"
	"github.com/writ-dev/writ/internal/secrets"
)

const (
	procs       = 2000
	connections = 5000 // two sockets each: 10,000 sockets
	perChild    = 5    // client ends handed to each of the first 1,000 children
)

// populate starts procs sleeping processes (one in ten with an
// OPENAI_API_KEY and a HOME holding ~/.aws/credentials) and opens
// connections loopback connections whose client ends the first children
// hold and whose server ends this process holds. It returns the listener's
// address.
func populate(b *testing.B) netip.AddrPort {
	b.Helper()
	home := b.TempDir()
	os.MkdirAll(filepath.Join(home, ".aws"), 0o700)
	os.WriteFile(filepath.Join(home, ".aws/credentials"), []byte("[default]\naws_access_key_id = AKIAQWERTYUIOPASDFGH\naws_secret_access_key = Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg\n"), 0o600)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, connections)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []*os.File
	for range connections {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			b.Fatalf("dial: %v (raise ulimit -n to at least 12000)", err)
		}
		f, err := c.(*net.TCPConn).File()
		c.Close()
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, f)
		s := <-accepted
		b.Cleanup(func() { s.Close() })
	}
	for i := range procs {
		cmd := exec.Command("sleep", "3600")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home}
		if i%10 == 0 {
			cmd.Env = append(cmd.Env, "OPENAI_API_KEY=sk-proj-benchmarkbenchmarkbenchmark0123456789")
		}
		if lo := i * perChild; lo < len(clients) {
			cmd.ExtraFiles = clients[lo:min(lo+perChild, len(clients))]
		}
		if err := cmd.Start(); err != nil {
			b.Fatalf("start process %d: %v", i, err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	for _, f := range clients {
		f.Close()
	}
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func rusage(who int) syscall.Rusage {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return ru
}

func cpu(ru syscall.Rusage) time.Duration { return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()) }

// BenchmarkScan is one full scan of the populated host: every process's
// stat, status, cmdline, environ, cgroup and fd table, the TCP table over
// sock_diag, classification, credentials, the credential files of agents'
// homes, shadow findings.
func BenchmarkScan(b *testing.B) {
	addr := populate(b)
	det, err := secrets.New(secrets.Config{FingerprintKey: []byte("benchmark-fingerprint-key-0123456789")})
	if err != nil {
		b.Fatal(err)
	}
	s, err := discover.New(discover.Config{Detector: det,
		WritAddrs: func() []netip.AddrPort { return []netip.AddrPort{addr} },
		Upstreams: func(context.Context) []discover.Upstream {
			return []discover.Upstream{{Service: "api", Addr: netip.MustParseAddrPort("127.0.0.1:1")}}
		}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rep, err := s.Scan(ctx) // warm the digest cache, as a continuous sensor's later scans are
	if err != nil {
		b.Fatal(err)
	}
	if len(rep.Processes) < procs {
		b.Fatalf("scan saw %d processes, want at least %d", len(rep.Processes), procs)
	}
	conns := 0
	for _, p := range rep.Processes {
		conns += len(p.Connections)
	}
	if conns < connections {
		b.Fatalf("scan saw %d outbound connections, want at least %d", conns, connections)
	}
	rep = nil
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	hwm := rusage(syscall.RUSAGE_SELF).Maxrss
	ru := rusage(syscall.RUSAGE_SELF)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if rep, err = s.Scan(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu(rusage(syscall.RUSAGE_SELF))-cpu(ru))/float64(b.N)/1e6, "cpu-ms/scan")
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "report-MiB")
	b.ReportMetric(float64(rusage(syscall.RUSAGE_SELF).Maxrss-hwm)/1024, "peak-rss-added-MiB")
	b.ReportMetric(float64(len(rep.Processes)), "processes")
	runtime.KeepAlive(rep)
}

// BenchmarkPsSs reads the same host with ps (every process: pid, parent,
// uid, start time, full command line, environment) and ss (every TCP
// socket with its owning processes), in one run; the CPU is the
// children's.
func BenchmarkPsSs(b *testing.B) {
	populate(b)
	for _, tool := range []string{"ps", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is not installed", tool)
		}
	}
	ru := rusage(syscall.RUSAGE_CHILDREN)
	b.ResetTimer()
	for b.Loop() {
		if err := exec.Command("ps", "-e", "-ww", "e", "-o", "pid,ppid,uid,lstart,args").Run(); err != nil {
			b.Fatal(err)
		}
		if err := exec.Command("ss", "-tanpe").Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu(rusage(syscall.RUSAGE_CHILDREN))-cpu(ru))/float64(b.N)/1e6, "cpu-ms/scan")
}
