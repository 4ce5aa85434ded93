package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

const (
	// maxSleep bounds how long Run sleeps, so that a wall-clock step or a
	// suspended host delays a transition by at most this much.
	maxSleep = time.Minute
	// minSleep keeps Run from spinning if a transition cannot be made.
	minSleep = time.Second
	// maxSteps bounds the transitions of one kind in one reconciliation.
	maxSteps = 32
)

// kinds are the key kinds this package rotates, in reconciliation order.
var kinds = [...]string{store.KeyX509CA, store.KeyJWT}

// entry is a loaded key together with its current store record.
type entry struct {
	k   *key
	rec store.Key
}

// Run rotates keys on their timeline until ctx is done, then returns nil.
// It sleeps until the next transition falls due (computed from the keys'
// times, never a tight poll) and retries with backoff when the store fails.
func (a *Authority) Run(ctx context.Context) error {
	var backoff time.Duration
	for {
		wait := backoff
		if wait == 0 {
			wait = min(max(a.snapshot().next.Sub(a.now()), minSleep), maxSleep)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if backoff == 0 && a.now().Before(a.snapshot().next) {
			continue
		}
		if err := a.reconcile(ctx, ""); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			backoff = min(max(2*backoff, minSleep), maxSleep)
			a.log.Error("rotate keys", "error", err, "retry_in", backoff)
			continue
		}
		backoff = 0
	}
}

// Reload reads the keys from the store again and applies what fell due:
// another server sharing the store rotated them (it announces that, and
// the server calls Reload).
func (a *Authority) Reload(ctx context.Context) error { return a.reconcile(ctx, "") }

// RotationLease is the lease name of key rotation (see Config.Leases).
const RotationLease = "writ/ca-rotation"

// Lease timing: a reconciliation takes milliseconds; a holder that stops
// (crashes) mid-way blocks the others for at most rotationLeaseTTL.
const (
	rotationLeaseTTL  = time.Minute
	rotationLeasePoll = 100 * time.Millisecond
)

// holdRotationLease waits until this server holds the rotation lease and
// returns the function that releases it.
func (a *Authority) holdRotationLease(ctx context.Context) (func(), error) {
	for {
		l, ok, err := a.leases.AcquireLease(ctx, RotationLease, a.holder, a.now(), rotationLeaseTTL)
		if err != nil {
			return nil, fmt.Errorf("take the key rotation lease: %w", err)
		}
		if ok {
			return func() {
				if err := a.leases.ReleaseLease(context.WithoutCancel(ctx), RotationLease, a.holder); err != nil {
					a.log.Warn("release the key rotation lease", "error", err)
				}
			}, nil
		}
		a.log.Debug("key rotation lease held by another server; waiting", "holder", l.Holder, "until", l.ExpiresAt)
		t := time.NewTimer(rotationLeasePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("take the key rotation lease (held by %s): %w", l.Holder, ctx.Err())
		case <-t.C:
		}
	}
}

// Rotate forces one rotation of kind (store.KeyX509CA or store.KeyJWT):
// a key is prepared if none is, then activated at once, and the old active
// key is retired (still published until its NotAfter). Unlike the timeline
// in Run, verifiers get no time to fetch the new key before it signs; use
// it when a key must stop signing now, and in tests.
func (a *Authority) Rotate(ctx context.Context, kind string) error {
	if !slices.Contains(kinds[:], kind) {
		return fmt.Errorf("rotate keys: unknown kind %q; use %q or %q", kind, store.KeyX509CA, store.KeyJWT)
	}
	return a.reconcile(ctx, kind)
}

// reconcile loads the keys from the store, applies every transition due at
// Now (and a forced rotation of kind force, if set), writes the results and
// publishes the new state.
func (a *Authority) reconcile(ctx context.Context, force string) error {
	a.rotMu.Lock()
	defer a.rotMu.Unlock()
	if a.leases != nil {
		release, err := a.holdRotationLease(ctx)
		if err != nil {
			return err
		}
		defer release()
	}
	now := a.now()
	var sets [len(kinds)][]*entry
	for i, kind := range kinds {
		es, err := a.load(ctx, kind)
		if err != nil {
			return err
		}
		if sets[i], err = a.advance(ctx, kind, es, now, force == kind); err != nil {
			return err
		}
	}
	return a.publish(ctx, sets[0], sets[1])
}

// load reads the keys of kind from the store, unsealing only keys not
// already loaded (or whose stored material changed).
func (a *Authority) load(ctx context.Context, kind string) ([]*entry, error) {
	recs, err := a.keys.ListKeys(ctx, kind)
	if err != nil {
		return nil, fmt.Errorf("load %s keys: %w", kind, err)
	}
	seen := make(map[string]bool, len(recs))
	es := make([]*entry, 0, len(recs))
	for _, rec := range recs {
		k := a.loaded[rec.ID]
		if k == nil || !a.sameMaterial(k, rec) {
			if k, err = a.loadKey(ctx, rec); err != nil {
				return nil, err
			}
			a.loaded[rec.ID] = k
		}
		seen[rec.ID] = true
		es = append(es, &entry{k: k, rec: rec})
	}
	for id, k := range a.loaded {
		if k.kind == kind && !seen[id] {
			delete(a.loaded, id)
		}
	}
	return es, nil
}

// sameMaterial reports whether rec holds the material k was loaded from.
func (a *Authority) sameMaterial(k *key, rec store.Key) bool {
	pub, err := x509.MarshalPKIXPublicKey(k.public)
	if err != nil || !bytes.Equal(pub, rec.Public) || !k.notAfter.Equal(rec.NotAfter) || !k.notBefore.Equal(rec.NotBefore) {
		return false
	}
	if k.kind != store.KeyX509CA {
		return true
	}
	var chain []byte
	for _, c := range k.chain {
		chain = append(chain, c.Raw...)
	}
	return bytes.Equal(chain, rec.Cert)
}

// advance applies transitions to the keys of one kind until none is due.
func (a *Authority) advance(ctx context.Context, kind string, es []*entry, now time.Time, force bool) ([]*entry, error) {
	for range maxSteps {
		changed, err := a.step(ctx, kind, &es, now, &force)
		if err != nil || !changed {
			return es, err
		}
	}
	return es, fmt.Errorf("rotate %s keys: no steady state after %d steps; check the keys with the status API", kind, maxSteps)
}

// step makes the first transition that is due, and reports whether it made
// one. Store writes come before the in-memory change, and retiring the old
// key comes before activating the new one, so that a crash at any point
// leaves a state the next step repairs.
func (a *Authority) step(ctx context.Context, kind string, es *[]*entry, now time.Time, force *bool) (bool, error) {
	// Expired keys: nothing they signed is still valid.
	for i, e := range *es {
		if !now.Before(e.k.notAfter) {
			if err := a.deleteKey(ctx, e); err != nil {
				return false, fmt.Errorf("remove expired %s key %s: %w", kind, e.k.id, err)
			}
			delete(a.loaded, e.k.id)
			*es = slices.Delete(*es, i, i+1)
			a.record(ctx, now, audit.KeyRemoved, e, "expired")
			return true, nil
		}
	}
	var active, prepared []*entry
	for _, e := range *es {
		switch {
		case !e.k.trusted && e.rec.State != store.KeyRetired:
			a.log.Warn("x509-ca key chains to a root writ does not trust; it will not be used or published",
				"key_id", e.k.id, "root", e.k.root().Subject.String())
			return true, a.setState(ctx, now, e, store.KeyRetired, "root not trusted: not self-signed and not the configured upstream CA")
		case e.rec.State == store.KeyActive:
			active = append(active, e)
		case e.rec.State == store.KeyPrepared:
			prepared = append(prepared, e)
		case e.rec.State != store.KeyRetired:
			return true, a.setState(ctx, now, e, store.KeyRetired, fmt.Sprintf("unknown state %q", e.rec.State))
		}
	}
	// Repair after a crash: one active key (the newest), one prepared key.
	if len(active) > 1 {
		return true, a.setState(ctx, now, active[0], store.KeyRetired, "superseded by a newer active key")
	}
	if len(prepared) > 1 {
		e := prepared[0]
		if err := a.deleteKey(ctx, e); err != nil {
			return false, fmt.Errorf("remove superseded prepared %s key %s: %w", kind, e.k.id, err)
		}
		delete(a.loaded, e.k.id)
		*es = slices.DeleteFunc(*es, func(x *entry) bool { return x == e })
		a.record(ctx, now, audit.KeyRemoved, e, "superseded by a newer prepared key; it never signed")
		return true, nil
	}
	switch {
	case len(active) == 0 && len(prepared) == 1:
		return true, a.setState(ctx, now, prepared[0], store.KeyActive, "no active key")
	case len(active) == 0:
		e, err := a.create(ctx, kind, store.KeyActive, now)
		if err != nil {
			return false, err
		}
		*es = append(*es, e)
		a.record(ctx, now, audit.KeyActivated, e, "no usable key: created active")
		return true, nil
	case *force:
		*force = false
		var next *entry
		if len(prepared) == 1 {
			next = prepared[0]
		} else {
			e, err := a.create(ctx, kind, store.KeyPrepared, now)
			if err != nil {
				return false, err
			}
			*es = append(*es, e)
			a.record(ctx, now, audit.KeyPrepared, e, "forced rotation")
			next = e
		}
		if err := a.setState(ctx, now, active[0], store.KeyRetired, "forced rotation"); err != nil {
			return false, err
		}
		return true, a.setState(ctx, now, next, store.KeyActive, "forced rotation")
	case len(prepared) == 1 && !now.Before(a.activateAt(active[0], prepared[0])):
		if err := a.setState(ctx, now, active[0], store.KeyRetired, "rotation"); err != nil {
			return false, err
		}
		return true, a.setState(ctx, now, prepared[0], store.KeyActive, "rotation")
	case len(prepared) == 0 && a.canPrepare(active[0]) && !now.Before(prepareAt(active[0])):
		e, err := a.create(ctx, kind, store.KeyPrepared, now)
		if err != nil {
			return false, err
		}
		*es = append(*es, e)
		a.record(ctx, now, audit.KeyPrepared, e, "rotation")
		return true, nil
	}
	return false, nil
}

// deleteKey removes e from the store and then from its device. A key the
// device could not destroy is logged, not retried: the store no longer
// names it, so it signs nothing, and the operator can remove it by its
// id (CKA_ID / label "writ ID").
func (a *Authority) deleteKey(ctx context.Context, e *entry) error {
	if err := a.keys.DeleteKey(ctx, e.k.id); err != nil {
		return err
	}
	if err := a.providers.Destroy(ctx, e.k.id, e.rec.Sealed); err != nil {
		a.log.Warn("remove key from its device", "key_id", e.k.id, "kind", e.k.kind, "error", err)
	}
	return nil
}

// prepareAt is when the successor of active is prepared: at half its life.
func prepareAt(active *entry) time.Time {
	life := active.k.notAfter.Sub(active.k.notBefore)
	return active.k.notBefore.Add(life / 2)
}

// activateAt is when prepared replaces active: at 5/6 of active's life, but
// not before prepared has been published for one refresh hint.
func (a *Authority) activateAt(active, prepared *entry) time.Time {
	life := active.k.notAfter.Sub(active.k.notBefore)
	at := active.k.notBefore.Add(life / 6 * 5)
	if p := prepared.k.createdAt.Add(a.refreshHint); p.After(at) {
		at = p
	}
	return at
}

// canPrepare reports whether a successor of active would outlive it. With
// an upstream CA whose chain expires no later than the active key, a new
// intermediate gains nothing; the operator must renew the upstream CA.
func (a *Authority) canPrepare(active *entry) bool {
	if active.k.kind != store.KeyX509CA || a.upstream == nil {
		return true
	}
	return a.upstream.notAfter().After(active.k.notAfter)
}

// setState stores e with a new state and records the transition.
func (a *Authority) setState(ctx context.Context, now time.Time, e *entry, state, reason string) error {
	rec := e.rec
	rec.State = state
	if err := a.keys.PutKey(ctx, rec); err != nil {
		return fmt.Errorf("mark %s key %s %s: %w", e.k.kind, e.k.id, state, err)
	}
	e.rec = rec
	typ := map[string]audit.Type{
		store.KeyActive:   audit.KeyActivated,
		store.KeyRetired:  audit.KeyRetired,
		store.KeyPrepared: audit.KeyPrepared,
	}[state]
	a.record(ctx, now, typ, e, reason)
	return nil
}

// create makes, seals and stores a new key of kind in state.
func (a *Authority) create(ctx context.Context, kind, state string, now time.Time) (*entry, error) {
	id := newKeyID()
	priv, sealed, err := a.providers.Generate(ctx, purposes[kind], id, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", kind, err)
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("marshal public key %s: %w", id, err)
	}
	k := &key{id: id, kind: kind, signer: priv, public: priv.Public(), createdAt: now, trusted: true}
	rec := store.Key{ID: id, Kind: kind, State: state, Sealed: sealed, Public: pub, CreatedAt: now}
	switch kind {
	case store.KeyX509CA:
		if k.chain, err = a.makeCACert(id, priv, now); err != nil {
			return nil, err
		}
		k.notBefore, k.notAfter = k.chain[0].NotBefore, k.chain[0].NotAfter
		for _, c := range k.chain {
			rec.Cert = append(rec.Cert, c.Raw...)
		}
	case store.KeyJWT:
		// Whole seconds, like certificate times and JWT NumericDates,
		// so the times survive any store's timestamp precision.
		k.notBefore, k.notAfter = now.Truncate(time.Second), now.Add(a.jwtKeyTTL).Truncate(time.Second)
		if err := k.makeJOSE(); err != nil {
			return nil, err
		}
	}
	rec.NotBefore, rec.NotAfter = k.notBefore, k.notAfter
	if err := a.keys.PutKey(ctx, rec); err != nil {
		return nil, fmt.Errorf("store new %s key %s: %w", kind, id, err)
	}
	a.loaded[id] = k
	return &entry{k: k, rec: rec}, nil
}

// record audits a key transition and logs it. An audit failure does not
// undo the transition: refusing to rotate would let the keys expire and
// stop every workload, which is worse than a gap in the key history.
func (a *Authority) record(ctx context.Context, now time.Time, typ audit.Type, e *entry, reason string) {
	a.log.Info("key transition", "type", string(typ), "key_id", e.k.id, "kind", e.k.kind,
		"reason", reason, "not_after", e.k.notAfter)
	ev := audit.Event{
		Time:    now,
		Type:    typ,
		Reason:  reason,
		Details: map[string]string{"key_id": e.k.id, "kind": e.k.kind},
	}
	if err := a.emitter.Emit(ctx, ev); err != nil {
		a.log.Error("audit key transition", "error", err, "type", string(typ), "key_id", e.k.id)
	}
}

// nextTransition returns when the next transition among es falls due.
func (a *Authority) nextTransition(es []*entry, next time.Time) time.Time {
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	var active, prepared *entry
	for _, e := range es {
		earlier(e.k.notAfter)
		switch e.rec.State {
		case store.KeyActive:
			active = e
		case store.KeyPrepared:
			prepared = e
		}
	}
	switch {
	case active == nil:
	case prepared != nil:
		earlier(a.activateAt(active, prepared))
	case a.canPrepare(active):
		earlier(prepareAt(active))
	}
	return next
}
