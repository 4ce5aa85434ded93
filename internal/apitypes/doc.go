// Package apitypes is the one home of writ's admin API wire types: every
// request and response body of the /v1 endpoints, and the error document
// every non-2xx answer carries.
//
// The server's handlers (internal/api) map their services' records to
// these types and back; the client (internal/client) speaks only these.
// Store records and domain types are never served as JSON directly, so a
// database column can change without changing the API, and a newcomer
// finds every field a client may rely on here.
//
// The JSON field names are a public contract: add fields, never rename or
// remove them. testdata/*.golden pins the encoding of every shape.
package apitypes
