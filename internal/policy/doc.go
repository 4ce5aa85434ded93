// Package policy is writ's least-agency engine. It compiles `kind:
// AccessPolicy` documents into an immutable, versioned [Snapshot] and
// decides, for one [Request] from an agent, whether the call is allowed,
// denied, or needs a human's approval — and under which obligations (rate
// limits, approval, credential TTL cap, call budget).
//
// The semantics, in order:
//
//   - Default deny: a call no rule allows is denied.
//   - Any matching `deny` rule beats every `allow`.
//   - A matching allow that requires approval, or a matching `escalate`
//     rule (which never grants anything on its own), turns an allowed call
//     into [ApprovalRequired].
//   - When the request's task acts on behalf of a user, the call must be
//     allowed for the agent and, separately, for the user (rules whose
//     subjects name `user:` or `group:`): effective access is the
//     intersection.
//   - Flow rules look at the flow labels the task has touched (for example
//     private data and untrusted content) and deny or escalate calls to
//     targets with other labels (a public sink).
//
// Requests are decided in canonical form: HTTP paths with duplicate
// slashes, dot segments and a trailing slash resolved, methods in upper
// case, MCP resource URIs normalised after RFC 3986 ([CanonicalPath],
// [CanonicalMethod], [CanonicalURI]); path and resource patterns are
// compiled in the same form, so a rule holds for every spelling of a name.
//
// [Compile] checks everything a user can get wrong — unknown fields, bad
// patterns, CEL type errors, unknown label names — and reports each with
// file, line, column and field; it also returns [Warning] values for rules
// that can never apply. [Snapshot.Decide] touches only the rules indexed
// under the request's subject and target; CEL conditions are compiled once.
// An [Engine] holds the current snapshot, swaps it atomically when policies
// change, and enforces rate obligations with a shared
// [github.com/writ-dev/writ/internal/ratelimit.Limiter].
//
// [Snapshot.Explain] evaluates every rule without the index and says why each
// matched or not; tests check that it always agrees with Decide.
// `kind: PolicyTest` documents ([RunTests]) hold request/expectation pairs
// for `writ policy test`.
package policy
