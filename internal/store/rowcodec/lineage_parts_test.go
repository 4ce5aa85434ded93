package rowcodec

import (
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// FuzzLineageParts: the parts of any window cover exactly its hours
// (widened), in order, without overlap; daily parts are whole UTC days.
func FuzzLineageParts(f *testing.F) {
	day := int64(86400)
	base := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC).Unix()
	f.Add(base, base+3*day, true, true, false)
	f.Add(base+3599, base+day+1, true, true, false)
	f.Add(base, int64(0), true, false, false)
	f.Add(int64(0), base+5*3600, false, true, false)
	f.Add(base+7200, base+7201, true, true, true)
	f.Add(int64(-5*86400-1), int64(-3600), true, true, false)
	f.Fuzz(func(t *testing.T, since, until int64, sinceSet, untilSet, hourly bool) {
		const lim = 1 << 40
		if since > lim || since < -lim || until > lim || until < -lim {
			return
		}
		var lf store.LineageFilter
		if sinceSet {
			lf.Since = time.Unix(since, 0)
		}
		if untilSet {
			lf.Until = time.Unix(until, 0)
		}
		if sinceSet && untilSet && until <= since || lf.Since.IsZero() != !sinceSet || lf.Until.IsZero() != !untilSet {
			return
		}
		lf.HourlyOnly = hourly
		parts := LineageParts(lf)
		if len(parts) == 0 {
			t.Fatal("no parts")
		}
		s, u := floorDiv(since, 3600)*3600, ceilDiv(until, 3600)*3600
		first, last := parts[0], parts[len(parts)-1]
		if first.FromSet != sinceSet || sinceSet && first.From != s || last.ToSet != untilSet || untilSet && last.To != u {
			t.Fatalf("window %d–%d (%v %v): parts %+v do not span it", s, u, sinceSet, untilSet, parts)
		}
		for i, p := range parts {
			if p.Daily && (hourly || p.FromSet && p.From%day != 0 || p.ToSet && p.To%day != 0) {
				t.Fatalf("part %d %+v of %+v is not whole days", i, p, parts)
			}
			if p.FromSet && p.ToSet && p.From >= p.To && !(len(parts) == 1) {
				t.Fatalf("part %d %+v of %+v is empty", i, p, parts)
			}
			if i > 0 && (!parts[i-1].ToSet || !p.FromSet || parts[i-1].To != p.From) {
				t.Fatalf("parts %d and %d of %+v do not meet", i-1, i, parts)
			}
			if p.FromSet && p.From%3600 != 0 || p.ToSet && p.To%3600 != 0 {
				t.Fatalf("part %d %+v is not whole hours", i, p)
			}
		}
	})
}
