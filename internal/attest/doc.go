// Package attest is writ's workload attestation: it learns who a local
// process is from facts the kernel vouches for, not from anything the
// process says about itself.
//
// A node serves the SPIFFE Workload API on a unix socket. When a process
// connects, [TransportCredentials] reads the peer's credentials from the
// kernel (SO_PEERCRED: pid, uid, gid) and pins the process with a pidfd
// (SO_PEERPIDFD on Linux 6.5 and later, pidfd_open(2) right at the handshake
// otherwise), so that a later pid reuse cannot make writ inspect the wrong
// process. Handlers read the resulting [Peer] with [PeerFromContext] and pass
// it to [Attestor.Attest], which reads /proc, derives the "unix" selectors
// (uid, user, gid, group, supplementary groups, executable path and the
// SHA-256 of the running executable), checks that the process neither exited
// nor was replaced while it was inspected, and assigns the process a stable
// instance ID ("inst_" followed by a ULID) recorded in [store.Instances].
//
// The access proxy, which sees loopback TCP connections rather than unix
// sockets, maps a connection to the process holding its client end with
// [Attestor.FindTCPPeer] or [Attestor.PeerFromTCP]; attestation is then the
// same.
//
// Selectors are written "unix:KEY:VALUE"; [ParseSelector] and
// [FormatSelector] convert between that form and [store.Selector].
//
// The package is Linux-only: it depends on procfs and pidfds.
package attest
