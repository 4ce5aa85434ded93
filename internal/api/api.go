// Package api serves writ's admin HTTP API, the /v1 endpoints the CLI and
// other clients call: registration entries, declarative resources and
// apply, tasks, the kill switch, approvals, instances, upstream
// credentials, the proxy CA, the audit log, runtime discovery and the
// inventory.
//
// Handlers decode a request into an [apitypes] body, call a service
// through a small interface defined here ([Entries], [Tasks], ...), and
// map the service's records to [apitypes] answers; they hold no state and
// no business rules of their own. internal/server builds the services and
// hands them to [New]. Every endpoint answers errors as an
// [apitypes.Error] document.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/store"
)

// Config holds the services the API serves. Every service is required
// unless its comment says otherwise.
type Config struct {
	Log *slog.Logger
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time

	// Admin authenticates operators (the admin credential).
	Admin *AdminAuth
	// Agents authenticates agents on the tasks API (X.509-SVID over mTLS
	// or a JWT-SVID bearer).
	Agents AgentAuthenticator

	Entries     Entries
	Resources   Resources
	Instances   Instances
	Tasks       Tasks
	Approvals   Approvals
	Revocations Revocations
	// Targets resolves and checks what a revocation names.
	Targets     RevokeTargets
	Credentials Credentials
	// ProxyCA returns the access proxy's interception CA certificate
	// (PEM).
	ProxyCA func() []byte
	Audit   AuditLog
	// Processes explains how local processes are identified (`writ
	// entry explain`). Optional: without it the endpoint answers 404.
	Processes Processes
	// Discovery runs a scan of the runtime sensor (`writ discover`).
	// Optional: without it POST /v1/discover answers 404.
	Discovery Discovery
	// Inventory is what the runtime sensor recorded (`writ inventory`).
	// Optional: without it GET /v1/inventory answers 404.
	Inventory InventoryStore
	// Lineage answers queries over the lineage graph (`writ lineage`).
	// Optional: without it GET /v1/graph answers 404.
	Lineage Lineage
	// Alerts lists alerts and records decisions on them (`writ alert`).
	// Optional: without it /v1/alerts answers 404.
	Alerts Alerts
	// Posture evaluates posture findings and the tier report (`writ
	// posture`, `writ tier`). Optional: without it /v1/posture and
	// /v1/tier answer 404.
	Posture Posture
	// MCP administers the MCP gateway (`writ mcp pins|approve|servers`).
	// Optional: without it those endpoints answer 404.
	MCP MCP
	// Nodes administers scale-out nodes (`writ node`). Optional: without
	// it the /v1/nodes endpoints answer 404.
	Nodes Nodes
	// Policies reports policy modes and observe-mode counts and promotes
	// observed policies (`writ policy observe|promote`). Optional: without
	// it those endpoints answer 404.
	Policies Policies
	// Users manages the console's human accounts (`writ user`).
	// Optional: without it /v1/users answers 404.
	Users Users
	// Scans ranks and records `writ scan --report` findings. Optional:
	// without it /v1/scan answers 404.
	Scans Scans
}

// API is the admin API.
type API struct {
	c       Config
	audit   *auditHandler
	streams *streams
}

// New returns the API over c's services.
func New(c Config) (*API, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.Admin == nil:
		return nil, errors.New("api: Admin is required")
	case c.Agents == nil, c.Entries == nil, c.Resources == nil, c.Instances == nil, c.Tasks == nil,
		c.Approvals == nil, c.Revocations == nil, c.Targets == nil, c.Credentials == nil, c.ProxyCA == nil, c.Audit == nil:
		return nil, errors.New("api: every service is required")
	}
	st := newStreams()
	h := newAuditHandler(c.Audit, c.Log)
	h.streams = st
	return &API{c: c, audit: h, streams: st}, nil
}

// Register adds every /v1 route to mux. Admin routes require the admin
// credential; the tasks routes authenticate agents too; GET
// /v1/audit/key is public (a public key: anyone may verify). Unknown /v1
// paths answer a JSON 404.
func (a *API) Register(mux *http.ServeMux) {
	admin := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, a.c.Admin.Require(h)) }
	admin("GET /v1/entries", a.listEntries)
	admin("POST /v1/entries", a.createEntry)
	admin("GET /v1/entries/{name}", a.getEntry)
	admin("DELETE /v1/entries/{name}", a.deleteEntry)
	admin("POST /v1/apply", a.apply)
	admin("GET /v1/resources/{kind}", a.listResources)
	admin("GET /v1/resources/{kind}/{name}", a.getResource)
	admin("DELETE /v1/resources/{kind}/{name}", a.deleteResource)
	admin("GET /v1/instances", a.listInstances)
	admin("GET /v1/processes/{pid}", a.explainProcess)
	admin("POST /v1/discover", a.discover)
	admin("GET /v1/inventory", a.inventory)
	admin("GET /v1/graph", a.graphAnswer)
	admin("GET /v1/alerts", a.listAlerts)
	admin("GET /v1/posture", a.postureAnswer)
	admin("GET /v1/tier", a.tierAnswer)
	admin("GET /v1/debug/pprof/{profile}", a.debugPprof)
	admin("POST /v1/alerts/{id}/ack", func(w http.ResponseWriter, r *http.Request) { a.decideAlert(w, r, store.AlertAcknowledged) })
	admin("POST /v1/alerts/{id}/resolve", func(w http.ResponseWriter, r *http.Request) { a.decideAlert(w, r, store.AlertResolved) })

	admin("GET /v1/credentials", a.listCredentials)
	admin("POST /v1/credentials", a.putCredential)
	admin("PUT /v1/credentials/{name}", a.rotateCredential)
	admin("DELETE /v1/credentials/{name}", a.deleteCredential)
	admin("GET /v1/proxy/ca", a.proxyCA)
	if a.c.MCP != nil {
		admin("GET /v1/mcp/pins", a.listPins)
		admin("POST /v1/mcp/pins/{server}/{tool}/approve", a.approvePin)
		admin("GET /v1/mcp/servers", a.listMCPServers)
		admin("GET /v1/mcp/servers/{server}/tools", a.listMCPTools)
	}

	if a.c.Nodes != nil {
		admin("POST /v1/nodes/tokens", a.createJoinToken)
		admin("GET /v1/nodes/tokens", a.listJoinTokens)
		admin("DELETE /v1/nodes/tokens/{id}", a.deleteJoinToken)
		admin("GET /v1/nodes", a.listNodes)
		admin("POST /v1/nodes/{name}/evict", a.evictNode)
	}
	if a.c.Policies != nil {
		admin("GET /v1/policies", a.listPolicies)
		admin("GET /v1/policies/{name}", a.getPolicy)
		admin("POST /v1/policies/{name}/promote", a.promotePolicy)
		admin("POST /v1/policies/{name}/replay", a.replayPolicy)
	}
	if a.c.Scans != nil {
		admin("GET /v1/scan/key", a.fingerprintKey)
		admin("POST /v1/scan/findings", a.reportScan)
	}

	mux.HandleFunc("POST /v1/tasks", a.openTask)
	mux.HandleFunc("GET /v1/tasks", a.listTasks)
	mux.HandleFunc("GET /v1/tasks/{id}", a.getTask)
	mux.HandleFunc("POST /v1/tasks/{id}/close", a.closeTask)

	if a.c.Users != nil {
		admin("GET /v1/users", a.listUsers)
		admin("POST /v1/users", a.addUser)
		admin("DELETE /v1/users/{name}", a.removeUser)
		admin("PUT /v1/users/{name}/password", a.setPassword)
		admin("PATCH /v1/users/{name}/groups", a.changeGroups)
	}

	admin("POST /v1/revoke", a.revoke)
	admin("GET /v1/revocations", a.listRevocations)
	admin("POST /v1/revocations/lift", a.liftRevocation)
	admin("GET /v1/approvals", a.listApprovals)
	admin("GET /v1/approvals/{id}", a.getApproval)
	// Operators, or workloads a request names as approvers (checked by
	// the approval service, which also refuses self-approval).
	mux.HandleFunc("POST /v1/approvals/{id}/approve", func(w http.ResponseWriter, r *http.Request) { a.decide(w, r, true) })
	mux.HandleFunc("POST /v1/approvals/{id}/deny", func(w http.ResponseWriter, r *http.Request) { a.decide(w, r, false) })

	mux.Handle("GET /v1/audit/key", a.audit)
	mux.Handle("/v1/audit/", a.c.Admin.Require(a.audit))
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, notFound("no API endpoint %s %s", r.Method, r.URL.Path))
	})
}

type actorKey struct{}

// Actor returns who made the request ("admin:ID" for an operator), for
// audit events; "" outside an authenticated admin request.
func Actor(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// fail writes err; an error that is not the client's is logged first.
func (a *API) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.logInternal(r, what, err)
	WriteError(w, err)
}

// logInternal logs err if it is not a client error.
func (a *API) logInternal(r *http.Request, what string, err error) {
	var fe *registry.FieldError
	if isClientError(err) || errors.As(err, &fe) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) {
		return
	}
	a.c.Log.ErrorContext(r.Context(), what, "path", r.URL.Path, "error", err)
}

// writeList answers a list request: err (logged unless it is the client's)
// or the list as a JSON array, never null.
func writeList[T any](a *API, w http.ResponseWriter, r *http.Request, what string, list []T, err error) {
	if err != nil {
		a.fail(w, r, what, err)
		return
	}
	if list == nil {
		list = []T{}
	}
	WriteJSON(w, http.StatusOK, list)
}

// mapList maps every element of in with f.
func mapList[S, T any](in []S, f func(S) T) []T {
	out := make([]T, 0, len(in))
	for _, s := range in {
		out = append(out, f(s))
	}
	return out
}

// storeError maps store and validation errors to API errors.
func storeError(what string, err error) error {
	var fe *registry.FieldError
	switch {
	case errors.As(err, &fe):
		return badRequest("%s: %v", what, err)
	case errors.Is(err, store.ErrNotFound):
		return notFound("%s: not found", what)
	case errors.Is(err, store.ErrExists):
		return conflict("%s: already exists; delete it first or use `writ apply` to change it", what)
	}
	return err
}
