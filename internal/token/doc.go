// Package token is writ's OAuth token service and the verification library
// that resource servers use to check its tokens.
//
// The service side ([Issuer], [Service]) implements RFC 8693 token exchange
// at /oauth2/token: an agent authenticated by its JWT-SVID (subject_token)
// or its X.509-SVID (RFC 8705 mutual TLS) exchanges that identity for a
// short-lived RFC 9068 access token (typ at+jwt, ES256) for one audience and
// a subset of its task's scopes, bound to the caller's certificate
// (cnf.x5t#S256) or DPoP key (cnf.jkt, RFC 9449), optionally single use.
// An exchange never widens: requested ⊆ task grant ⊆ policy. The service
// also serves discovery (RFC 8414), the JWKS, introspection (RFC 7662) and
// revocation (RFC 7009), and answers errors as OAuth JSON error documents.
//
// The verification side ([Verifier]) checks a presented access token in
// process: signature by kid against a [KeySource] (writ's bundle or a
// remote /jwks.json), ES256 only (alg none and HMAC are refused at parse
// time), typ at+jwt, issuer, audience, expiry with a small leeway, the
// sender constraint (mTLS certificate thumbprint or a DPoP proof with htm,
// htu, iat, jti and ath), the kill switch and single-use replay.
package token
