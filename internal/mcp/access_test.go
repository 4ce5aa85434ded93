package mcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/access"
	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"github.com/writ-dev/writ/internal/task"
)

// enforced is a gateway over writ's real enforcement: the access core
// with the policy engine, approvals, tasks and a SQLite store. Agents are
// told apart by their bearer token: "agent-token" is
// spiffe://writ.local/agent/a, "other-token" spiffe://writ.local/agent/b.
type enforced struct {
	gw        *Gateway
	url       string
	db        *sqlite.DB
	ev        *events
	enforcer  *access.Enforcer
	approvals *approval.Service
	tasks     *task.Service
	acc       *Access
}

var agentIDs = map[string]string{"Bearer agent-token": "spiffe://writ.local/agent/a", "Bearer other-token": "spiffe://writ.local/agent/b"}

func newEnforced(t testing.TB, policies string, servers ...*Server) *enforced {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ev := &events{}
	docs, err := resource.Parse("policy.yaml", []byte(policies))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policy.Compile(docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine := policy.NewEngine(policy.Config{Limiter: ratelimit.New()}, snap)
	rv, err := revoke.New(ctx, revoke.Config{Store: db, Emitter: ev})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := approval.New(ctx, approval.Config{Store: db, Emitter: ev})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := task.New(ctx, task.Config{Store: db, Policy: engine, Approvals: ap, Revoke: rv, Emitter: ev})
	if err != nil {
		t.Fatal(err)
	}
	e, err := access.New(ctx, access.Config{Policy: engine, Tasks: ts, Revocations: rv, Approvals: ap, Flows: db,
		Emitter: ev, Journal: filepath.Join(dir, "proxy.journal"), ApprovalWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	acc := &Access{Enforcer: e, Policy: engine}
	ident := IdentifierFunc(func(r *http.Request, _ string) (Caller, error) {
		id, ok := agentIDs[r.Header.Get("Authorization")]
		if !ok {
			return Caller{}, ErrUnauthenticated
		}
		c := &access.Caller{SpiffeID: id, Instance: "inst_" + id[len(id)-1:]}
		return Caller{Key: id, Identity: identity{caller: c, task: r.Header.Get("Writ-Task"), source: r.RemoteAddr}}, nil
	})
	gw := New(Config{Pins: db, Emitter: ev, Credentials: fixedCreds{"up-token": "s3cret-upstream"}, Identifier: ident, Authorizer: acc})
	acc.Server = gw.Server
	gw.SetServers(servers)
	hs := httptest.NewServer(gw)
	t.Cleanup(func() { hs.Close(); gw.Close(); e.Close() })
	return &enforced{gw: gw, url: hs.URL, db: db, ev: ev, enforcer: e, approvals: ap, tasks: ts, acc: acc}
}
