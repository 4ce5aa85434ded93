package nodeattest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/keys/keystest"
	"github.com/writ-dev/writ/internal/node/nodeattest"
)

// tpmRun runs both rounds of a TPM attestation of prover against vs;
// edit1 and edit2 may change the node's payloads (as JSON objects) before
// they are sent, as a hostile node would.
func tpmRun(t *testing.T, vs *nodeattest.Verifiers, prover *nodeattest.TPMProver, edit1, edit2 func(ch nodeattest.Challenge, m map[string]any)) (nodeattest.Result, error) {
	t.Helper()
	ctx := context.Background()
	ch := challenge(t)
	p1, err := prover.Prove(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	p1 = editJSON(t, p1, ch, edit1)
	req := nodeattest.Request{Challenge: ch, Attestor: "tpm", Payload: p1, Name: "host-1"}
	c, st, err := vs.Begin(ctx, req)
	if err != nil {
		prover.Abort()
		return nodeattest.Result{}, err
	}
	p2, err := prover.Answer(ctx, ch, c)
	if err != nil {
		t.Fatal(err)
	}
	p2 = editJSON(t, p2, ch, edit2)
	req.Payload, req.State = p2, st
	return vs.Verify(ctx, req)
}

func editJSON(t *testing.T, b []byte, ch nodeattest.Challenge, edit func(nodeattest.Challenge, map[string]any)) []byte {
	t.Helper()
	if edit == nil {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(ch, m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tpmVerifiers(t *testing.T, v *nodeattest.TPMVerifier) *nodeattest.Verifiers {
	vs, err := nodeattest.NewVerifiers(v)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func wantRefused(t *testing.T, what string, err error, text string) {
	t.Helper()
	if !errors.Is(err, nodeattest.ErrRefused) || !strings.Contains(err.Error(), text) {
		t.Fatalf("%s: err = %v, want refused with %q", what, err, text)
	}
}

func TestTPMAttestation(t *testing.T) {
	tp := keystest.SWTPM(t)
	ekHash, err := nodeattest.TPMEKHash(tp.Config())
	if err != nil {
		t.Fatal(err)
	}
	if len(ekHash) != 64 {
		t.Fatalf("EK hash %q", ekHash)
	}
	prover := &nodeattest.TPMProver{Config: tp.Config()}
	allowed := tpmVerifiers(t, &nodeattest.TPMVerifier{EKHashes: map[string]bool{ekHash: true}})

	t.Run("allowed EK", func(t *testing.T) {
		res, err := tpmRun(t, allowed, prover, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Name != "host-1" || res.Vouched || len(res.Selectors) != 1 || res.Selectors[0].String() != "tpm:ek:"+ekHash || res.Identity != res.Selectors[0] {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("EK not on the list", func(t *testing.T) {
		other := tpmVerifiers(t, &nodeattest.TPMVerifier{EKHashes: map[string]bool{strings.Repeat("ab", 32): true}})
		_, err := tpmRun(t, other, prover, nil, nil)
		wantRefused(t, "unlisted EK", err, "EK sha256:"+ekHash+" is not allowed")
	})
	t.Run("EK swapped for an allowed one", func(t *testing.T) {
		// A node that claims an allowed EK it does not hold cannot
		// activate the credential encrypted to it. Here the node sends
		// another key as its EK; the server encrypts to that key, and
		// the TPM cannot decrypt.
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		h, _ := nodeattest.EKHash(&k.PublicKey)
		vs := tpmVerifiers(t, &nodeattest.TPMVerifier{EKHashes: map[string]bool{h: true}})
		ctx := context.Background()
		ch := challenge(t)
		p1, err := prover.Prove(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		p1 = editJSON(t, p1, ch, func(_ nodeattest.Challenge, m map[string]any) { m["ek_public"] = der })
		c, _, err := vs.Begin(ctx, nodeattest.Request{Challenge: ch, Attestor: "tpm", Payload: p1})
		if err != nil {
			t.Fatal(err) // the server cannot tell before round 2
		}
		if _, err := prover.Answer(ctx, ch, c); err == nil || !strings.Contains(err.Error(), "activate") {
			t.Fatalf("activation with another EK: %v", err)
		}
	})
	t.Run("wrong activation secret", func(t *testing.T) {
		_, err := tpmRun(t, allowed, prover, nil, func(_ nodeattest.Challenge, m map[string]any) { m["secret"] = make([]byte, 32) })
		wantRefused(t, "wrong secret", err, "activated credential is wrong")
	})
	t.Run("quote over another nonce", func(t *testing.T) {
		ctx := context.Background()
		ch := challenge(t)
		p1, err := prover.Prove(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		req := nodeattest.Request{Challenge: ch, Attestor: "tpm", Payload: p1}
		c, st, err := allowed.Begin(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		other := ch
		other.Key = challenge(t).Key // same nonce, another SVID key: another binding
		// The prover refuses another nonce; quote over the other binding
		// by answering for a challenge with the same nonce.
		p2, err := prover.Answer(ctx, other, c)
		if err != nil {
			t.Fatal(err)
		}
		req.Payload, req.State = p2, st
		_, err = allowed.Verify(ctx, req)
		wantRefused(t, "quote over another binding", err, "nonce")
	})
	t.Run("PCR value changed", func(t *testing.T) {
		_, err := tpmRun(t, allowed, prover, nil, func(_ nodeattest.Challenge, m map[string]any) {
			q := m["quotes"].([]any)[0].(map[string]any)
			q["pcrs"].(map[string]any)["7"] = make([]byte, 32)
			q["pcrs"].(map[string]any)["7"] = append(make([]byte, 31), 1)
		})
		wantRefused(t, "PCR changed after the quote", err, "quote digest didn't match")
	})
	t.Run("no round 1", func(t *testing.T) {
		_, err := allowed.Verify(context.Background(), nodeattest.Request{Challenge: challenge(t), Attestor: "tpm", Payload: []byte(`{}`), Name: "host-1"})
		wantRefused(t, "round 2 alone", err, "two rounds")
	})
	t.Run("PCR allow list", func(t *testing.T) {
		zero := hex.EncodeToString(make([]byte, 32))
		pol, err := nodeattest.ParsePCRPolicy(map[string]map[int][]string{"sha256": {0: {zero}, 7: {zero}}})
		if err != nil {
			t.Fatal(err)
		}
		vs := tpmVerifiers(t, &nodeattest.TPMVerifier{EKHashes: map[string]bool{ekHash: true}, PCRs: pol})
		res, err := tpmRun(t, vs, prover, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Selectors) != 2 || res.Selectors[1].String() != "tpm:pcrs:verified" {
			t.Fatalf("selectors %v", res.Selectors)
		}
		bad, err := nodeattest.ParsePCRPolicy(map[string]map[int][]string{"sha256": {7: {strings.Repeat("11", 32)}}, "sha1": {0: {strings.Repeat("00", 20)}}})
		if err != nil {
			t.Fatal(err)
		}
		vs = tpmVerifiers(t, &nodeattest.TPMVerifier{EKHashes: map[string]bool{ekHash: true}, PCRs: bad})
		_, err = tpmRun(t, vs, prover, nil, nil)
		wantRefused(t, "PCR not allowed", err, "PCR sha256:7 is 0000")
		// The node leaves the PCR out of its answer: refused as well.
		_, err = tpmRun(t, vs, prover, nil, func(_ nodeattest.Challenge, m map[string]any) {
			for _, q := range m["quotes"].([]any) {
				delete(q.(map[string]any)["pcrs"].(map[string]any), "7")
			}
		})
		wantRefused(t, "PCR left out", err, "quote was over PCR 7 which wasn't provided")
	})
	t.Run("EK certificate from a manufacturer CA", func(t *testing.T) {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "TPM Manufacturer Root"}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		caDER, _ := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
		ca, _ := x509.ParseCertificate(caDER)
		caFile := filepath.Join(t.TempDir(), "ek-ca.pem")
		os.WriteFile(caFile, nodeattest.PEMCerts(ca), 0o600)
		v, err := nodeattest.LoadTPMVerifier(nil, caFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		vs := tpmVerifiers(t, v)
		// The TPM has no EK certificate in NV; the test adds one to
		// round 1, as a TPM with a manufacturer's certificate sends it.
		certFor := func(pub any) []byte {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
				KeyUsage: x509.KeyUsageKeyEncipherment}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
			if err != nil {
				t.Fatal(err)
			}
			return der
		}
		withCert := func(_ nodeattest.Challenge, m map[string]any) {
			var ekDER []byte
			json.Unmarshal([]byte(`"`+m["ek_public"].(string)+`"`), &ekDER)
			pub, err := x509.ParsePKIXPublicKey(ekDER)
			if err != nil {
				t.Fatal(err)
			}
			m["ek_cert"] = certFor(pub)
		}
		res, err := tpmRun(t, vs, prover, withCert, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Selectors) != 2 || !strings.HasPrefix(res.Selectors[1].String(), "tpm:ek_ca:fingerprint:") {
			t.Fatalf("selectors %v", res.Selectors)
		}
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, err = tpmRun(t, vs, prover, func(_ nodeattest.Challenge, m map[string]any) { m["ek_cert"] = certFor(&k.PublicKey) }, nil)
		wantRefused(t, "certificate of another key", err, "another key than ek_public")
	})
}

func TestTPMMissing(t *testing.T) {
	p := &nodeattest.TPMProver{}
	p.Config.Device = filepath.Join(t.TempDir(), "tpmrm0")
	_, err := p.Prove(context.Background(), challenge(t))
	if err == nil || !strings.Contains(err.Error(), "node.tpm.device") || !strings.Contains(err.Error(), "is a TPM 2.0 present") {
		t.Fatalf("missing TPM: %v", err)
	}
	p.Config.Device, p.Config.TCP = "", "127.0.0.1:1"
	if _, err := p.Prove(context.Background(), challenge(t)); err == nil || !strings.Contains(err.Error(), "node.tpm.tcp") {
		t.Fatalf("no simulator: %v", err)
	}
}

func TestLoadTPMVerifier(t *testing.T) {
	for _, c := range []struct {
		hashes []string
		pcrs   map[string]map[int][]string
		want   string
	}{
		{nil, nil, "set ek_hashes or ek_ca"},
		{[]string{"xyz"}, nil, "not a hex SHA-256"},
		{[]string{strings.Repeat("0", 64)}, map[string]map[int][]string{"md5": {0: {"00"}}}, `PCR bank "md5"`},
		{[]string{strings.Repeat("0", 64)}, map[string]map[int][]string{"sha256": {24: {strings.Repeat("0", 64)}}}, "0 to 23"},
		{[]string{strings.Repeat("0", 64)}, map[string]map[int][]string{"sha256": {1: {strings.Repeat("0", 40)}}}, "not a 32-byte hex digest"},
		{[]string{strings.Repeat("0", 64)}, map[string]map[int][]string{"sha256": {1: nil}}, "at least one"},
	} {
		if _, err := nodeattest.LoadTPMVerifier(c.hashes, "", c.pcrs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: err = %v, want %q", c.hashes, c.pcrs, err, c.want)
		}
	}
	v, err := nodeattest.LoadTPMVerifier([]string{"sha256:" + strings.Repeat("AB", 32)}, "", nil)
	if err != nil || !v.EKHashes[strings.Repeat("ab", 32)] {
		t.Fatalf("%+v %v", v, err)
	}
}
