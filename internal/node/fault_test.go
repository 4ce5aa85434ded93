package node

import (
	"testing"

	"github.com/writ-dev/writ/internal/audit"
)

// TestFaultFrom: only the two spool points with an event type are
// accepted; a fault fires only at its point and for its type (a firing
// fault would kill this test binary).
func TestFaultFrom(t *testing.T) {
	for _, bad := range []string{"spool.before_write", "spool.before_write:", "spool.nowhere:access.allowed", ":access.allowed", "x"} {
		if f, err := faultFrom(bad); err == nil || f != nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if f, err := faultFrom(""); f != nil || err != nil {
		t.Errorf("unset: %v %v", f != nil, err)
	}
	f, err := faultFrom("spool.after_sync:access.allowed")
	if err != nil || f == nil {
		t.Fatal(err)
	}
	f(faultBeforeWrite, []audit.Event{{Type: audit.AccessAllowed}})
	f(faultAfterSync, []audit.Event{{Type: audit.AccessDenied}, {Type: audit.SVIDIssued}})
}
