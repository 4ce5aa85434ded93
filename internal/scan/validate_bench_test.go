package scan

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkValidate measures live validations per second against a
// loopback fake GitHub answering 200 at once, with N calls in flight:
// writ's own cost per check (request, bounded read, judging), not a
// provider's latency. Each iteration validates 64 distinct secrets.
func BenchmarkValidate(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ghp_") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"login": "octocat", "id": 1}`))
	}))
	defer srv.Close()
	const batch = 64
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", n), func(b *testing.B) {
			v, err := NewValidator(ValidatorConfig{Concurrency: n, Bases: map[string]string{"github": srv.URL}})
			if err != nil {
				b.Fatal(err)
			}
			fs := make([]Finding, batch)
			for i := range fs {
				fs[i] = Finding{RuleID: "github-pat", Fingerprint: fmt.Sprintf("%064x", i)}
				v.Collect("github-pat", fs[i].Fingerprint, []byte("ghp_"+fake(fmt.Sprint("bench", i), alnum, 36)))
			}
			calls := 0
			b.ResetTimer()
			for b.Loop() {
				calls += v.Validate(context.Background(), fs)
			}
			for _, f := range fs {
				if f.Validation.State != Valid {
					b.Fatalf("%+v", f.Validation)
				}
			}
			b.ReportMetric(float64(calls)/b.Elapsed().Seconds(), "validations/s")
		})
	}
}
