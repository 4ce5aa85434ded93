package api

import (
	"net/http"
	"net/http/pprof"
	rpprof "runtime/pprof"
	"slices"
)

// debugProfiles are the runtime profiles GET /v1/debug/pprof/{profile}
// serves besides "profile" (CPU) and "trace".
var debugProfiles = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

// debugPprof answers GET /v1/debug/pprof/{profile}: the Go runtime's
// profiles of this server in pprof's format, for `go tool pprof` (see
// docs/operations.md). Admin only, as Vault's /v1/sys/pprof: a profile
// holds function names and sizes, never memory contents, but tells much
// about the server. "profile" takes ?seconds= (default 30, at most 300)
// and "trace" likewise.
func (a *API) debugPprof(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("profile")
	switch {
	case name == "profile":
		pprof.Profile(w, r)
	case name == "trace":
		pprof.Trace(w, r)
	case slices.Contains(debugProfiles, name) && rpprof.Lookup(name) != nil:
		pprof.Handler(name).ServeHTTP(w, r)
	default:
		WriteError(w, notFound("no profile %q: ask for one of profile, trace, %v", name, debugProfiles))
	}
}
