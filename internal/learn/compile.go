package learn

import (
	"context"
	"fmt"

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

// Learn reads the accesses of r that f selects into a new [Learner].
func Learn(ctx context.Context, r Records, f Filter, o Options) (*Learner, error) {
	l := NewLearner(o)
	err := Scan(ctx, r, f, func(a *Access) error {
		l.Add(a)
		return nil
	})
	return l, err
}
