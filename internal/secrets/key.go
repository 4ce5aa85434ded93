package secrets

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// DeploymentKey derives a deployment's fingerprint key from its
// key-encryption key. It is the one key writ fingerprints secrets under:
// the runtime sensor (and every node's), the broker's join of brokered
// values and `writ scan --report` (which fetches it from the server) all
// use it, so that the same value has the same fingerprint wherever it is
// found, and it is stable across restarts without a second key to keep.
func DeploymentKey(kek []byte) []byte {
	m := hmac.New(sha256.New, kek)
	m.Write([]byte("writ secret fingerprint key v1"))
	return m.Sum(nil)
}

// KeyID names a fingerprint key without revealing it: "fpk_" and the
// first 8 bytes of the SHA-256 of a domain-separated digest of the key,
// in hex. Fingerprints made under keys with different ids never match.
func KeyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("writ fingerprint key id v1"))
	return "fpk_" + hex.EncodeToString(m.Sum(nil)[:8])
}
