package alert

import (
	"slices"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// Summary is what the alerts say about the people looking at them.
//
// Dwell time is first evidence → acknowledgement (a resolution counts as
// one): how long something was known to writ before a human knew.
// Coverage is the share of alerts acknowledged within AckWithin of being
// raised, among alerts whose AckWithin has passed or that were
// acknowledged (alerts still inside their AckWithin are Pending, counted
// in neither). Detection coverage is the rules enabled out of the
// catalogue.
type Summary struct {
	Total, Open, Acknowledged, Resolved int
	// Dwell over the acknowledged alerts; zero when there are none.
	DwellMedian, DwellP90, DwellMax time.Duration
	// RaiseMedian is first evidence → raised (the detection's own delay).
	RaiseMedian time.Duration
	AckWithin   time.Duration
	// Coverage is AckedInTime / Due; 0 when Due is 0.
	Coverage             float64
	AckedInTime, Due     int
	Pending              int
	RulesEnabled         []string
	RulesDisabled        []string
	RulesCatalogue       int
	DetectionCoverage    float64
	BySeverity, ByRule   map[string]int
	OldestOpenFirstEvent time.Time
}

// Summarize computes the summary of alerts at now.
func Summarize(alerts []store.Alert, now time.Time, ackWithin time.Duration, cfg Config) Summary {
	s := Summary{Total: len(alerts), AckWithin: ackWithin, RulesCatalogue: len(Catalogue), RulesEnabled: cfg.Enabled(),
		BySeverity: map[string]int{}, ByRule: map[string]int{}}
	for _, r := range Catalogue {
		if !slices.Contains(s.RulesEnabled, r.ID) {
			s.RulesDisabled = append(s.RulesDisabled, r.ID)
		}
	}
	s.DetectionCoverage = float64(len(s.RulesEnabled)) / float64(len(Catalogue))
	var dwell, raise []time.Duration
	for _, a := range alerts {
		s.BySeverity[a.Severity]++
		s.ByRule[a.Rule]++
		switch a.State {
		case store.AlertOpen:
			s.Open++
			if s.OldestOpenFirstEvent.IsZero() || a.FirstEvidence.Before(s.OldestOpenFirstEvent) {
				s.OldestOpenFirstEvent = a.FirstEvidence
			}
		case store.AlertAcknowledged:
			s.Acknowledged++
		case store.AlertResolved:
			s.Resolved++
		}
		raise = append(raise, max(a.RaisedAt.Sub(a.FirstEvidence), 0))
		acked := !a.AckedAt.IsZero()
		if acked {
			dwell = append(dwell, max(a.AckedAt.Sub(a.FirstEvidence), 0))
		}
		switch {
		case acked && a.AckedAt.Sub(a.RaisedAt) <= ackWithin:
			s.Due++
			s.AckedInTime++
		case now.Sub(a.RaisedAt) > ackWithin:
			s.Due++
		default:
			s.Pending++
		}
	}
	if s.Due > 0 {
		s.Coverage = float64(s.AckedInTime) / float64(s.Due)
	}
	s.DwellMedian, s.DwellP90, s.DwellMax = quantile(dwell, 0.5), quantile(dwell, 0.9), quantile(dwell, 1)
	s.RaiseMedian = quantile(raise, 0.5)
	return s
}

// quantile returns the q-quantile of ds (nearest rank); 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds)) + 0.999999)
	return ds[min(max(i-1, 0), len(ds)-1)]
}
