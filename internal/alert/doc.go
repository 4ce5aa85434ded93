// Package alert raises alerts from writ's event stream, keeps them until a
// human acknowledges and resolves them, measures dwell time and coverage,
// and notifies webhooks.
//
// An [Engine] reads the audit log incrementally from a cursor kept in the
// store (store.Alerts), applies the enabled rules of the [Catalogue]
// (shadow agents, credentials and access found by discovery, repeated
// denials, quarantined MCP tools, use of something revoked, policy bypass
// attempts, admin authentication failures, approvals waiting) and stores
// what they raise in the same transaction as the cursor move, with one
// outbox delivery per webhook that wants the alert. Evidence is event ids
// and summaries, never secret values. Repeated evidence for the same
// subject adds to the alert that is not yet resolved instead of raising a
// new one. [Engine.SetState] records a human's acknowledgement or
// resolution with who did it, as an audit event.
//
// A [Deliverer] sends the outbox (generic JSON with the exact next
// commands, or Slack's {"text"}), signed with HMAC-SHA256 in the
// Writ-Signature header, retrying with exponential backoff; deliveries
// live in the store, so a restart loses none. Webhook URLs and secrets
// are never logged or returned.
//
// [Summarize] computes dwell time (first evidence → acknowledgement) and
// coverage (share of alerts acknowledged within a window) and the rules
// enabled out of the catalogue. See docs/alerts.md.
package alert
