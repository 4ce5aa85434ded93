package nodeserver_test

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/keys/keystest"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
)

// cpuNow is the CPU time (user + system) of this process.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNodeJoin: a node's whole join through the node API (challenge,
// evidence, node SVID), with a join token and with TPM credential
// activation on swtpm (EK read, a fresh AK, MakeCredential,
// ActivateCredential, a quote of the sha256 PCRs checked against a PCR
// allow list), in one run. cpu-ms/join is this process's CPU (node and
// server sides); the TPM's own work is in the swtpm process and shows in
// the wall time.
func BenchmarkNodeJoin(b *testing.B) {
	tp := keystest.SWTPM(b)
	ekHash, err := nodeattest.TPMEKHash(tp.Config())
	if err != nil {
		b.Fatal(err)
	}
	zero := make([]byte, 32)
	e := newEnv(b, &nodeattest.TPMVerifier{EKHashes: map[string]bool{ekHash: true}, PCRs: nodeattest.PCRPolicy{"sha256": {0: {zero}, 7: {zero}}}})
	prover := &nodeattest.TPMProver{Config: tp.Config()}
	ctx := context.Background()
	run := func(b *testing.B, join func(i int)) {
		cpu := cpuNow()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			join(i)
		}
		b.ReportMetric(float64((cpuNow()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/join")
	}
	b.Run("join_token", func(b *testing.B) {
		run(b, func(int) { e.join(b, "jt-"+itoa(time.Now().UnixNano())) })
	})
	b.Run("tpm", func(b *testing.B) {
		run(b, func(int) {
			var ch nodeapi.Challenge
			json.Unmarshal(e.do(ctx, "POST", nodeapi.PathChallenge, struct{}{}, nil).Body.Bytes(), &ch)
			key := pubKey(b)
			nch := nodeattest.Challenge{Nonce: ch.Nonce, Key: key}
			p1, err := prover.Prove(ctx, nch)
			if err != nil {
				b.Fatal(err)
			}
			req := nodeapi.AttestRequest{Nonce: ch.Nonce, PublicKey: key, Attestor: "tpm", Payload: p1, Name: "host-tpm"}
			w := e.do(ctx, "POST", nodeapi.PathActivate, req, nil)
			var act nodeapi.ActivateAnswer
			if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &act) != nil {
				b.Fatalf("round 1: %d %s", w.Code, w.Body)
			}
			if req.Payload, err = prover.Answer(ctx, nch, act.Challenge); err != nil {
				b.Fatal(err)
			}
			if w := e.do(ctx, "POST", nodeapi.PathAttest, req, nil); w.Code != 200 {
				b.Fatalf("round 2: %d %s", w.Code, w.Body)
			}
		})
	})
}
