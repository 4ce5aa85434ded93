package nodeserver_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/keys/keystest"
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
			if _, code, body := e.tpmRounds(b, prover, "host-tpm"); code != 200 {
				b.Fatalf("TPM join: %d %s", code, body)
			}
		})
	})
}
