package dbcreds

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// TestSCRAMVerifierRFC7677 checks the verifier against the exchange in
// RFC 7677 section 3 (user "user", password "pencil"): the server key
// must produce the RFC's server signature, and the stored key must be the
// hash of the client key recovered from the RFC's client proof.
func TestSCRAMVerifierRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := scramVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	head, keys, ok := strings.Cut(v, "$")
	if !ok || head != "SCRAM-SHA-256" {
		t.Fatalf("verifier %q does not start with SCRAM-SHA-256$", v)
	}
	iterSalt, storedServer, _ := strings.Cut(keys, "$")
	if iterSalt != "4096:W22ZaJ0SNY7soEsUEjb6gQ==" {
		t.Errorf("iterations and salt = %q", iterSalt)
	}
	storedB64, serverB64, _ := strings.Cut(storedServer, ":")
	stored, _ := base64.StdEncoding.DecodeString(storedB64)
	server, _ := base64.StdEncoding.DecodeString(serverB64)

	const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	authMessage := "n=user,r=rOprNGfwEbeRWgbNEkqO," +
		"r=" + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," +
		"c=biws,r=" + nonce
	if got := base64.StdEncoding.EncodeToString(hmacSHA256(server, authMessage)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature %s, want the RFC's 6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", got)
	}
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	sig := hmacSHA256(stored, authMessage)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	if h := sha256.Sum256(clientKey); !hmac.Equal(h[:], stored) {
		t.Error("the stored key is not the hash of the client key in the RFC's proof")
	}
}
