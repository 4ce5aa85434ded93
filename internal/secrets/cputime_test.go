//go:build unix

package secrets

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time (user and system) the process has used.
// Benchmarks report work per CPU second beside work per wall second: on a
// shared machine the wall clock counts time spent waiting for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
