package ca

import (
	"context"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/keys"
)

// BenchmarkSignX509SVIDByProvider signs X.509-SVIDs with the CA key in
// software, in a SoftHSM2 token and in a swtpm TPM, one after another in
// one run (bench/README.md, "Keys and dynamic credentials"). The workload
// key is made once, so only the CA's signature differs between rows.
func BenchmarkSignX509SVIDByProvider(b *testing.B) {
	ctx := context.Background()
	wk, err := generateKey()
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{keys.KindSoftware, keys.KindPKCS11, keys.KindTPM} {
		b.Run(kind, func(b *testing.B) {
			edit := func(c *Config) { c.Now = time.Now }
			if kind != keys.KindSoftware {
				set, _ := deviceSet(b, kind)
				edit = func(c *Config) { c.Now = time.Now; c.Providers = set; c.Sealer = nil }
			}
			e := newEnv(b, edit)
			p := X509SVIDParams{ID: drafter, PublicKey: wk.Public(), Instance: "inst_01JD5Z8Q"}
			b.ResetTimer()
			for b.Loop() {
				if _, err := e.a.SignX509SVID(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "svids/s")
		})
	}
}
