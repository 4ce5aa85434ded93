package alert

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
)

// BenchmarkEval is the rules' own cost per event (decoded events in
// memory, nothing stored): the mix of bench/lineage, one event in ten
// denied, per 1,000 events one discovery finding and one approval
// request. bench/lineage's BenchmarkAlertSync adds reading, decoding and
// storing. See bench/README.md, "Lineage and alerts".
func BenchmarkEval(b *testing.B) {
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	events := make([]audit.Event, 10000)
	for i := range events {
		id := "spiffe://writ.local/agent/kind" + strconv.Itoa(i%100)
		e := audit.Event{Time: t0.Add(time.Duration(i) * 600 * time.Millisecond), Type: audit.AccessAllowed, SpiffeID: id,
			Policy: "p" + strconv.Itoa(i%100) + "@1", Rule: "main", Target: "Service/svc", Source: "127.0.0.1:4000"}
		switch {
		case i%1000 == 999:
			e.Type, e.Details = audit.ApprovalRequested, map[string]string{"approval": "apr_" + strconv.Itoa(i)}
		case i%1000 == 499:
			e.Type, e.Details = audit.DiscoveryAgentFound, map[string]string{"key": "k" + strconv.Itoa(i), "identified": "false"}
		case i%10 == 8:
			e.Type, e.Reason, e.Rule = audit.AccessDenied, "no rule allows it", ""
		}
		events[i] = e
	}
	ev := newEvaluator(Config{}, carried{})
	raised := 0
	var r0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.ResetTimer()
	for i := range b.N {
		raised += len(ev.eval(int64(i), &events[i%len(events)]))
	}
	var r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/event")
	b.ReportMetric(float64(raised)/float64(b.N), "alerts/event")
}
