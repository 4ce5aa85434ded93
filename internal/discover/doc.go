// Package discover is writ's runtime sensor: it finds, on the host it runs
// on and without any cooperation from the programs it looks at, the AI
// agents, MCP servers and other processes that run there, the credentials
// they hold, and the connections they open, and it says which of them writ
// does not govern ("shadow").
//
// A [Scanner] reads procfs (processes, their command lines, environments,
// open sockets and cgroups), the kernel's TCP socket table (sock_diag,
// through [attest.TCPSockets], with /proc/net/tcp as the fallback) and the
// credential files in the homes of the processes' owners. One call to
// [Scanner.Scan] returns a [Report]; [Watcher] runs scans on an interval,
// diffs them and reports what is new (agents, credentials, shadow access)
// as audit events. Neither ever holds a secret's value beyond the moment it
// is fingerprinted: a [Credential] carries the detector's keyed fingerprint
// ([secrets.Detector.Fingerprint]), never the value, and command lines are
// redacted before they leave the package.
//
// What a process is (an agent, an MCP server, or neither) is decided by
// [Classify] from its executable, arguments, environment and mapped
// modules; each verdict carries a confidence and the evidence for it. The
// signals are listed in docs/discover.md.
//
// The package reads Linux procfs; on other systems a scan fails.
package discover
