package learn

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/writ-dev/writ/internal/audit"

	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
)

// CompileFiles compiles the AccessPolicy documents in paths (files or
// directories) the way a server compiles what `writ apply` stored: each
// spec is decoded strictly and encoded as the stored JSON
// ([policy.EncodeSpec]), then the set is compiled from the stored specs
// ([policy.CompileStored]), each at version 1. Documents of other kinds
// are ignored.
func CompileFiles(paths ...string) (*policy.Snapshot, error) {
	docs, err := resource.Load(paths...)
	if err != nil {
		return nil, err
	}
	var stored []policy.Stored
	for _, d := range docs {
		if d.Kind != resource.KindAccessPolicy {
			continue
		}
		spec, err := policy.EncodeSpec(d)
		if err != nil {
			return nil, err
		}
		stored = append(stored, policy.Stored{Name: d.Name, Version: 1, Spec: spec})
	}
	if len(stored) == 0 {
		return nil, fmt.Errorf("compile policies: no AccessPolicy in %v", paths)
	}
	return policy.CompileStored(stored)
}

// Learn reads the accesses of r that f selects, and the token exchanges
// (token.minted) and tasks (task.opened allowed without approval, and
// task.closed for their calls), into a new [Learner].
func Learn(ctx context.Context, r Records, f Filter, o Options) (*Learner, error) {
	l := NewLearner(o)
	var a Access
	err := scanEvents(ctx, r, f, learnable, func(idx int64, ev *event) error {
		switch ev.Type {
		case audit.TokenMinted:
			l.AddToken(ev.Time, ev.SpiffeID, ev.Target, strings.Fields(ev.D.Scope))
		case audit.TaskOpened:
			if ev.Decision == string(policy.Allow) {
				l.AddTask(ev.Time, ev.SpiffeID, ev.Task, ev.D.Purpose)
			}
		case audit.TaskClosed:
			if n, err := strconv.ParseInt(ev.D.Calls, 10, 64); err == nil && n >= 0 {
				l.CloseTask(ev.Task, n)
			}
		default:
			a = accessOf(idx, ev)
			l.Add(&a)
		}
		return nil
	})
	return l, err
}

func learnable(t audit.Type) bool {
	return isAccess(t) || t == audit.TokenMinted || t == audit.TaskOpened || t == audit.TaskClosed
}
