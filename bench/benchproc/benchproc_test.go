package benchproc

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"strconv"
	"testing"
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
