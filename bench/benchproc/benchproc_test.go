package benchproc

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCPU(t *testing.T) {
	before := CPU(os.Getpid())
	b := []byte("spin")
	// Work until a clock tick is counted; a CPU that never moves fails
	// after about 20 s of work, whatever the machine's speed.
	for i := 0; CPU(os.Getpid()) == before; i++ {
		if i == 10000 {
			t.Fatal("CPU time of this process does not grow")
		}
		for range 10000 {
			s := sha256.Sum256(b)
			b = s[:]
		}
	}
	if got := CPU(1 << 30); got != 0 {
		t.Fatalf("CPU of a process that does not exist = %v, want 0", got)
	}
}

func TestStart(t *testing.T) {
	cmd := exec.Command("sh", "-c", "echo starting; echo ready at 1; exec sleep 60")
	var seen []string
	Start(t, cmd, func(line string) bool {
		seen = append(seen, line)
		return line == "ready at 1"
	})
	if len(seen) != 2 || seen[0] != "starting" {
		t.Fatalf("lines read before ready: %q", seen)
	}
	if CPU(cmd.Process.Pid) < 0 {
		t.Fatal("negative CPU time")
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(cmd.Process.Pid)); err != nil {
		t.Fatalf("the process is not running after Start: %v", err)
	}
}

// fatalTB records a Fatalf and stops the calling function.
type fatalTB struct {
	testing.TB
	msg string
}

type stopped struct{}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(stopped{})
}

// pinOf runs Pin on a fatalTB and returns its prep and failure.
func pinOf(t *testing.T, cpu string) (prep func(*exec.Cmd), msg string) {
	f := &fatalTB{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
			msg = f.msg
		}
	}()
	return Pin(f, "PIN", cpu), ""
}

func TestPin(t *testing.T) {
	if p, msg := pinOf(t, ""); p != nil || msg != "" {
		t.Fatalf("Pin with no CPU = %v, %q; want nil and no failure", p != nil, msg)
	}
	// This process may run on CPU 0 (every machine has one): pinning a
	// middle there must be refused.
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	for cpu := range 64 {
		if set.IsSet(cpu) {
			if _, msg := pinOf(t, strconv.Itoa(cpu)); !strings.Contains(msg, "run the test on the other CPUs") {
				t.Fatalf("Pin(%d), a CPU this process may run on: failure %q", cpu, msg)
			}
			break
		}
	}
	if _, msg := pinOf(t, "not-a-cpu"); msg == "" {
		t.Fatal("Pin(not-a-cpu) did not fail")
	}
	// Off the CPU: this test again, run by taskset on one CPU, pins to
	// another.
	if set.Count() < 2 {
		t.Skip("one CPU: nothing to pin apart")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset not installed")
	}
	var cpus []int
	for c := range 1024 {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	cmd := exec.Command("taskset", "-c", strconv.Itoa(cpus[0]), os.Args[0], "-test.run", "^TestPinChild$", "-test.v")
	cmd.Env = append(os.Environ(), "BENCHPROC_PIN_CHILD="+strconv.Itoa(cpus[1]))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pinned: taskset -c "+strconv.Itoa(cpus[1])+" sleep 1") {
		t.Fatalf("pinning from CPU %d to %d: %v\n%s", cpus[0], cpus[1], err, out)
	}
}

// TestPinChild is TestPin's process kept off the CPU it pins to.
func TestPinChild(t *testing.T) {
	cpu := os.Getenv("BENCHPROC_PIN_CHILD")
	if cpu == "" {
		t.Skip("run by TestPin")
	}
	cmd := exec.Command("sleep", "1")
	Pin(t, "PIN", cpu)(cmd)
	if cmd.Path == "" || filepath.Base(cmd.Path) != "taskset" {
		t.Fatalf("pinned command path %q", cmd.Path)
	}
	t.Logf("pinned: %s", strings.Join(cmd.Args, " "))
}

func TestNginx(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\n", r.URL.Path)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a stream that stays open
	}))
	defer up.Close()
	addr, pids := Nginx(t, strings.TrimPrefix(up.URL, "http://"), nil)
	if n := len(pids()); n != 3 {
		t.Fatalf("nginx pids %v, want the master and 2 workers", pids())
	}
	resp, err := http.Get("http://" + addr + "/stream/1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The event arrives while the upstream keeps the stream open: nginx
	// does not buffer it.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: /stream/1\n" {
		t.Fatalf("first line through nginx %q, %v", line, err)
	}
}
