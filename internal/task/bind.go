package task

import (
	"errors"
	"fmt"

	"github.com/writ-dev/writ/internal/store"
)

// Who may use a task. A task belongs to the SPIFFE ID it was opened for,
// and every process attested as that identity (every instance) may use
// it: a task opened from a shell by a short-lived `writ token svid` or
// `writ task open` process stays usable by the agent's other processes
// after that process exits. The opening instance is recorded (Instance)
// and is in the task's audit events. A task opened with bind_instance is
// for the opening instance only.

var (
	// ErrOtherIdentity reports a task used by a caller with another
	// SPIFFE ID than the one it was opened for.
	ErrOtherIdentity = errors.New("the task belongs to another identity")
	// ErrOtherInstance reports a task bound to one instance (opened with
	// bind_instance) used by another instance of the same identity.
	ErrOtherInstance = errors.New("the task is bound to another instance of the same identity")
)

// Usable returns nil if the caller (spiffeID, instance) may use task t,
// and otherwise an error wrapping [ErrOtherIdentity] or
// [ErrOtherInstance] that says which, and what to do.
func Usable(t store.Task, spiffeID, instance string) error {
	if t.SpiffeID != spiffeID {
		return &useError{kind: ErrOtherIdentity, msg: fmt.Sprintf("task %s belongs to %s, not to the caller %s", t.ID, t.SpiffeID, spiffeID)}
	}
	if t.BindInstance && t.Instance != instance {
		caller := instance
		if caller == "" {
			caller = "unknown"
		}
		return &useError{kind: ErrOtherInstance, msg: fmt.Sprintf("task %s is bound to instance %s of %s (opened with --bind-instance), and the caller is instance %s; open a task from this process, or open one without --bind-instance to share it among the identity's processes",
			t.ID, t.Instance, t.SpiffeID, caller)}
	}
	return nil
}

// useError is a refusal by Usable: its message says what to do, and it
// matches its kind with errors.Is.
type useError struct {
	kind error
	msg  string
}

func (e *useError) Error() string { return e.msg }
func (e *useError) Unwrap() error { return e.kind }

// boundTo names what a task is bound to, for its audit events.
func boundTo(t store.Task) string {
	if t.BindInstance {
		return "instance"
	}
	return "spiffe_id"
}
