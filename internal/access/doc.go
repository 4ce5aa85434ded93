// Package access is writ's enforcement core, the same for every protocol
// an agent's call arrives by. A front end (the HTTP access proxy today,
// the MCP gateway next) turns what it received into an [Request] and asks
// an [Enforcer] what to do with it; the Enforcer answers with an
// [Outcome] and, once the front end has carried the access out, records
// it. The package knows nothing of HTTP: it imports no net/http, and a
// test keeps it so.
//
// One access goes through these steps:
//
//  1. [Enforcer.Identify] establishes the [Caller] from what the
//     connection and request carry ([Presented]): an X.509-SVID chain
//     (mTLS), a writ access token (checked by a [TokenVerifier]), or the
//     local process behind a loopback connection (found and attested by
//     an [Attestor], matched to an identity by a [Registry]). What a
//     connection proves is cached on its [Conn].
//  2. [Enforcer.Enforce] checks the kill switch ([Revocations]), the
//     task the call claims ([Tasks]), asks policy ([Decider]), holds the
//     call for a human when policy says so ([Approvals]), charges the
//     task's budget, picks the upstream credential to inject
//     ([Credentials], or a token it mints), and writes the decision to
//     the decision journal before it returns an allow: the access is on
//     record before any byte of it reaches the upstream.
//  3. [Enforcer.Record] takes the finished access (status, bytes,
//     latency) and appends its one audit event, batched with others, to
//     the audit log ([audit.Emitter]); it then settles the journal
//     record. At start, [New] records the decisions a crash left in the
//     journal.
//
// Every dependency is a small interface defined here, so that the server
// fills them with its components and a node can fill them with a client of
// the server.
package access
