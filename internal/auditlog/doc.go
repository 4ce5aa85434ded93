// Package auditlog is writ's tamper-evident audit log: the runtime that
// stores the events of package audit in an append-only RFC 6962 Merkle tree
// (golang.org/x/mod/sumdb/tlog) and signs checkpoints of it in the
// signed-note format (golang.org/x/mod/sumdb/note).
//
// A [Log] is opened over a [Backend] (for example the SQLite store's) and
// implements the emitter interfaces of package audit: appends are group
// committed by one writer goroutine, so that concurrent emitters share one
// durable commit ([audit.Synced]), or return once committed while the
// fsync runs ([audit.Written]). The log signs a [Checkpoint] every
// [Config.CheckpointEvery] events, at least every
// [Config.CheckpointInterval] while events are unsigned, and at Close.
//
// Readers build an [InclusionProof] or a [ConsistencyProof] from the stored
// hashes, and [Verify] recomputes the whole tree offline from the stored
// events (`writ audit verify`), naming the first edited, removed, inserted
// or reordered event.
//
// Packages that only emit events import audit, never auditlog; the server
// composes the log and hands it out as an [audit.Emitter].
package auditlog
