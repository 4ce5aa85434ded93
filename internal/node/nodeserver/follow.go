package nodeserver

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/store"
)

// Follow takes in, until ctx ends, the changes other servers on the same
// store append to the feed, so that this server enforces what was
// changed through another: for each batch of foreign changes it records
// them as published (so this server's own diff does not publish them a
// second time) and then calls refresh with the kinds they touched, which
// reloads those parts of this server's state from the store. Changes
// this publisher appended are passed over.
//
// Each change is thus published once, by the server that made it. Two
// servers can still both publish one fact when they change it at the
// same moment (a pruned revocation, a rotated bundle): nodes apply a put
// or delete they already applied without effect.
func (p *Publisher) Follow(ctx context.Context, refresh func(ctx context.Context, kinds map[string]bool) error) error {
	p.following.Store(true)
	defer p.following.Store(false)
	for {
		after := p.followed.Load()
		changes, behind, wake := p.Hub.since(after)
		if behind {
			var err error
			if changes, err = p.Store.ChangesSince(ctx, after, 512); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				p.Log.Warn("read the change feed to follow other servers", "error", err)
				changes = nil
			}
		}
		if len(changes) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-wake:
			}
			continue
		}
		kinds := p.absorb(changes)
		if len(kinds) > 0 {
			if err := refresh(ctx, kinds); err != nil {
				if errors.Is(err, context.Canceled) && ctx.Err() != nil {
					return ctx.Err()
				}
				p.Log.Error("reload state changed through another server", "error", err)
			}
		}
		p.followed.Store(changes[len(changes)-1].Seq)
	}
}

// absorb records the foreign changes among changes as published and
// returns the kinds they touch.
func (p *Publisher) absorb(changes []store.Change) map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	kinds := map[string]bool{}
	for _, c := range changes {
		if p.own[c.Seq] {
			delete(p.own, c.Seq)
			continue
		}
		kinds[c.Kind] = true
		del := c.Op == store.ChangeDelete
		switch c.Kind {
		case nodeapi.KindEntry:
			var e store.Entry
			if del {
				delete(p.entries, c.Key)
			} else if json.Unmarshal(c.Body, &e) == nil {
				p.entries[c.Key] = e
			}
		case nodeapi.KindRevocation:
			var r nodeapi.Revocation
			if del {
				delete(p.revs, c.Key)
			} else if json.Unmarshal(c.Body, &r) == nil {
				p.revs[c.Key] = store.Revocation{Kind: r.Kind, Value: r.Value, Reason: r.Reason, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
			}
		case nodeapi.KindResource:
			var r store.Resource
			if del {
				delete(p.resources, c.Key)
			} else if json.Unmarshal(c.Body, &r) == nil {
				p.resources[c.Key] = r.Version
			}
		case nodeapi.KindPin:
			var pin store.Pin
			if del {
				delete(p.pins, c.Key)
			} else if json.Unmarshal(c.Body, &pin) == nil {
				p.pins[c.Key] = pin.Revision
			}
		case nodeapi.KindBundle:
			if !del {
				p.bundle = c.Body
			}
		}
	}
	// Sequences below what was just read are never seen again.
	if len(changes) > 0 {
		last := changes[len(changes)-1].Seq
		for seq := range p.own {
			if seq <= last {
				delete(p.own, seq)
			}
		}
	}
	return kinds
}
