// Package ca is writ's signing authority: the X.509 certificate authority
// that issues X.509-SVIDs, the ES256 keys that sign JWT-SVIDs and other
// JWTs (such as the token service's access tokens), the rotation of both, and
// the SPIFFE trust bundle that lets anyone verify what they signed.
//
// An [Authority] keeps every key in a [store.Keys] store, the private half
// marshalled as PKCS#8 and sealed with a [keys.Sealer] (the key id is the
// associated data), so the store never holds plaintext key material. The
// active keys live in memory as [crypto.Signer] values; signing never touches
// the store. Two modes exist for the X.509 authority: by default writ is its
// own self-signed root; with an upstream CA (certificate and key in PEM
// files) writ makes its own intermediate CA keys, has each signed by the
// upstream key, publishes the upstream root in the bundle and hands out
// leaf + intermediate chains.
//
// # Rotation timeline
//
// The X.509 CA and the JWT keys rotate independently on the same timeline,
// modelled on SPIRE. For an active key with life L (NotBefore to NotAfter):
//
//	0        L/2            5L/6          L
//	|--------|--------------|-------------|
//	active   next prepared  next active   old removed
//	         (published,    (old retired,
//	          not signing)   still published)
//
// In words:
//   - At L/2 the next key is prepared: created, sealed, stored with state
//     "prepared" and published in the bundle, but it signs nothing yet, so
//     every verifier can learn it before it matters.
//   - At 5L/6 (and at least one bundle refresh hint after it was published)
//     the prepared key becomes active and the old one retired. Everything
//     signed from then on uses the new key.
//   - A retired key stays published until its NotAfter. Because every
//     X.509-SVID and JWT-SVID lifetime is capped at the signing key's
//     NotAfter, nothing it signed outlives it; then it is deleted.
//
// All state is in the store, so a new Authority over the same store resumes
// the same keys, states and bundle, and catches up on any transition that
// fell due while writ was down. [Authority.Run] sleeps until the next
// transition; [Authority.Rotate] forces one (prepare if needed, then
// activate) for operators and tests. Each transition is audited as
// key.prepared, key.activated, key.retired or key.removed.
//
// The bundle's sequence number is the version of a "TrustBundle" document
// kept in the resource store: it changes exactly when the published
// authorities change and, being stored, only ever increases, across
// restarts too.
package ca
