//go:build !unix

package mcplint

import "time"

func cpuTime() time.Duration { return 0 }
