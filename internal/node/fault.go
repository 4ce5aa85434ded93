package node

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/writ-dev/writ/internal/audit"
)

// FaultEnv names the environment variable that makes a node kill itself
// (SIGKILL) at one exact point, for crash tests: POINT:TYPE, where POINT
// is a point of the audit spool (spool.before_write: the enforcer's
// decision is in its journal but not yet in the spool; spool.after_sync:
// it is in both, the journal not yet settled) and TYPE the event type
// whose batch triggers it (access.allowed). Unset, nothing is injected.
const FaultEnv = "WRIT_TEST_FAULT"

// Fault points of the spool.
const (
	faultBeforeWrite = "spool.before_write"
	faultAfterSync   = "spool.after_sync"
)

// faultFrom parses the value of FaultEnv; nil for none.
func faultFrom(v string) (func(point string, es []audit.Event), error) {
	if v == "" {
		return nil, nil
	}
	point, typ, ok := strings.Cut(v, ":")
	if !ok || typ == "" || (point != faultBeforeWrite && point != faultAfterSync) {
		return nil, fmt.Errorf("%s=%q: want %s:TYPE or %s:TYPE (an audit event type)", FaultEnv, v, faultBeforeWrite, faultAfterSync)
	}
	return func(at string, es []audit.Event) {
		if at != point {
			return
		}
		for _, e := range es {
			if string(e.Type) == typ {
				fmt.Fprintf(os.Stderr, "writ node: %s: killing this process at %s (event %s)\n", FaultEnv, point, e.ID)
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}, nil
}
