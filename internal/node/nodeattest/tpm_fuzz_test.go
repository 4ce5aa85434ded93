package nodeattest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/writ-dev/writ/internal/keys/keystest"
)

// fuzzChallenge is the challenge of the fuzz seeds.
var fuzzChallenge = func() Challenge {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return Challenge{Nonce: make([]byte, NonceSize), Key: der}
}()

// FuzzTPM: whatever a node sends in either round, the TPM verifier
// answers without panicking (go-tpm's decoders meet the node's bytes),
// every failure is a refusal, and the real exchange it is seeded with
// (from swtpm, where installed; always in CI) verifies.
func FuzzTPM(f *testing.F) {
	var real1, real2 []byte
	if _, err := exec.LookPath("swtpm"); err == nil || os.Getenv("CI") == "true" {
		tp := keystest.SWTPM(f)
		p := &TPMProver{Config: tp.Config()}
		var err error
		if real1, err = p.Prove(context.Background(), fuzzChallenge); err != nil {
			f.Fatal(err)
		}
		v := &TPMVerifier{EKHashes: map[string]bool{}}
		admit(v, real1)
		c, _, err := v.Begin(context.Background(), Request{Challenge: fuzzChallenge, Attestor: TPMAttestor, Payload: real1})
		if err != nil {
			f.Fatal(err)
		}
		if real2, err = p.Answer(context.Background(), fuzzChallenge, c); err != nil {
			f.Fatal(err)
		}
		f.Add(real1, real2)
	}
	f.Add([]byte(`{"ek_public":"","ak":{}}`), []byte(`{"secret":"","quotes":[]}`))
	f.Add([]byte(`{}`), []byte(`{"secret":"AA==","quotes":[{"bank":"sha256","quote":"/1RDR4AY","signature":"ABgACw==","pcrs":{"0":"AA=="}}]}`))
	f.Fuzz(func(t *testing.T, p1, p2 []byte) {
		ctx := context.Background()
		v := &TPMVerifier{EKHashes: map[string]bool{}}
		admit(v, p1) // reach MakeCredential with whatever EK the node sends
		_, st, err := v.Begin(ctx, Request{Challenge: fuzzChallenge, Attestor: TPMAttestor, Payload: p1})
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("round 1: %v is not a refusal", err)
			}
			return
		}
		// Reach the quote checks: take the node's secret as the right one.
		var a tpmAnswer
		if json.Unmarshal(p2, &a) == nil {
			st.(*tpmState).secret = a.Secret
		}
		_, err = v.Verify(ctx, Request{Challenge: fuzzChallenge, Attestor: TPMAttestor, Payload: p2, State: st})
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Fatalf("round 2: %v is not a refusal", err)
		}
		if real1 != nil && string(p1) == string(real1) && string(p2) == string(real2) && err != nil {
			t.Fatalf("the real exchange is refused: %v", err)
		}
	})
}

// admit adds the EK of a round-1 payload, if it has one, to v's list.
func admit(v *TPMVerifier, p1 []byte) {
	var b tpmBegin
	if json.Unmarshal(p1, &b) != nil {
		return
	}
	if pub, err := x509.ParsePKIXPublicKey(b.EKPublic); err == nil {
		if h, err := EKHash(pub); err == nil {
			v.EKHashes[h] = true
		}
	}
}
