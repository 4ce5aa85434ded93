// Package mcp is writ's gateway for Model Context Protocol servers.
//
// An MCPServer document ([ServerSpec], compiled by [Compile]) names one
// upstream server: a streamable-HTTP endpoint or a stdio program that the
// gateway runs and supervises. The gateway pins every tool descriptor the
// upstream announces (see [Pinner]): a tool whose name, description,
// schemas or annotations change after they were trusted is quarantined
// until a human approves it, and a server in signed mode must match a
// manifest signed with its publisher's Ed25519 key ([Manifest]).
//
// This package owns MCP's semantics: specs, pins, manifests, upstream
// processes and the JSON-RPC relay. Whether a caller may see or call a tool
// is not decided here but asked of an [Authorizer], which the server fills
// with writ's protocol-neutral enforcement core.
package mcp
