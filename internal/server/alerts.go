package server

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/writ-dev/writ/internal/alert"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

// alertsPart is the alert engine, its webhook deliverer and metrics.
type alertsPart struct {
	engine    *alert.Engine
	deliverer *alert.Deliverer
	cfg       alert.Config
	ackWithin time.Duration
	interval  time.Duration
	raised    *prometheus.CounterVec
	dwell     prometheus.Histogram
}

// initAlerts builds the engine from alerts.* of the configuration; a rule
// or webhook that is not usable stops the start with the key named.
func (s *Server) initAlerts() error {
	c := s.cfg.Alerts
	rules := alert.Config{Disabled: c.Disabled, DenialThreshold: c.DenialThreshold, DenialWindow: c.DenialWindow,
		AuthFailThreshold: c.AuthFailThreshold, AuthFailWindow: c.AuthFailWindow}
	if err := rules.Check(); err != nil {
		return err
	}
	hooks := map[string]alert.Webhook{}
	for i, wc := range c.Webhooks {
		w := alert.Webhook{Name: wc.Name, URL: wc.URL, Format: wc.Format, MinSeverity: wc.MinSeverity, Rules: wc.Rules}
		if wc.URLEnv != "" {
			if w.URL != "" {
				return fmt.Errorf("alerts.webhooks[%d]: give url or url_env, not both", i)
			}
			w.URL = os.Getenv(wc.URLEnv)
			if w.URL == "" {
				return fmt.Errorf("alerts.webhooks[%d].url_env: environment variable %s is empty", i, wc.URLEnv)
			}
		}
		switch {
		case wc.SecretFile != "" && wc.SecretEnv != "":
			return fmt.Errorf("alerts.webhooks[%d]: give secret_file or secret_env, not both", i)
		case wc.SecretFile != "":
			b, err := os.ReadFile(wc.SecretFile)
			if err != nil {
				return fmt.Errorf("alerts.webhooks[%d].secret_file: %w", i, err)
			}
			w.Secret = []byte(strings.TrimSpace(string(b)))
		case wc.SecretEnv != "":
			w.Secret = []byte(os.Getenv(wc.SecretEnv))
			if len(w.Secret) == 0 {
				return fmt.Errorf("alerts.webhooks[%d].secret_env: environment variable %s is empty", i, wc.SecretEnv)
			}
		}
		if err := w.Check(); err != nil {
			return err
		}
		if _, dup := hooks[w.Name]; dup {
			return fmt.Errorf("alerts.webhooks[%d]: name %q is used twice", i, w.Name)
		}
		hooks[w.Name] = w
	}
	a := &s.alerts
	a.cfg, a.ackWithin, a.interval = rules, c.AckWithin, c.Interval
	a.raised = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "writ_alerts_raised_total", Help: "Alerts raised, by rule and severity."},
		[]string{"rule", "severity"})
	a.dwell = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "writ_alert_dwell_seconds",
		Help: "First evidence to acknowledgement of acknowledged alerts.", Buckets: prometheus.ExponentialBuckets(60, 4, 8)})
	s.metrics.MustRegister(a.raised, a.dwell,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "writ_alert_coverage_ratio",
			Help: "Share of alerts of the last 7 days acknowledged within alerts.ack_within of being raised (1 when none are due)."},
			func() float64 {
				list, err := s.db.ListAlerts(context.Background(), store.AlertFilter{RaisedSince: s.now().Add(-7 * 24 * time.Hour)})
				if err != nil {
					return 0
				}
				if sum := alert.Summarize(list, s.now(), a.ackWithin, a.cfg); sum.Due > 0 {
					return sum.Coverage
				}
				return 1
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "writ_alerts_open", Help: "Alerts not yet acknowledged."},
			func() float64 {
				list, err := s.db.ListAlerts(context.Background(), store.AlertFilter{State: store.AlertOpen})
				if err != nil {
					return 0
				}
				return float64(len(list))
			}))
	a.engine = &alert.Engine{Log: s.db.AuditBackend(), Store: s.db, Rules: rules, Emitter: s.emit, Now: s.now,
		Logger: s.log.With("component", "alerts"),
		Webhooks: func(al store.Alert) []string {
			var names []string
			for name, w := range hooks {
				if w.Wants(al) {
					names = append(names, name)
				}
			}
			return names
		}}
	a.deliverer = &alert.Deliverer{Store: s.db, Hooks: hooks, Now: s.now, Logger: s.log.With("component", "alerts")}
	return nil
}

// startAlerts evaluates and delivers every alerts.interval until ctx ends.
func (s *Server) startAlerts(ctx context.Context) func() {
	// The alert engine evaluates events as the log writes them, and the
	// lineage builder folds them; each Sync then stores what they raised
	// or summed without reading them back.
	alerts, lineage := s.alerts.engine.Observer(), s.lineage.Builder.Observer()
	s.auditLog.Observe(func(idx int64, e *audit.Event) {
		alerts(idx, e)
		lineage(idx, e)
	})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { s.alertLoop(ctx); done <- struct{}{} }()
	go func() { s.alerts.deliverer.Run(ctx, s.alerts.interval); done <- struct{}{} }()
	return func() {
		cancel()
		<-done
		<-done
		s.auditLog.Observe(nil)
		s.alerts.engine.Detach()
		s.lineage.Builder.Detach()
	}
}

func (s *Server) alertLoop(ctx context.Context) {
	t := time.NewTicker(s.alerts.interval)
	defer t.Stop()
	for {
		if _, err := s.syncAlerts(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "alerts: evaluate events", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) syncAlerts(ctx context.Context) ([]store.Alert, error) {
	created, err := s.alerts.engine.Sync(ctx)
	for _, a := range created {
		s.alerts.raised.WithLabelValues(a.Rule, a.Severity).Inc()
	}
	return created, err
}

// alertsService serves /v1/alerts.
type alertsService struct{ s *Server }

func (as alertsService) List(ctx context.Context, f store.AlertFilter) ([]store.Alert, alert.Summary, error) {
	if _, err := as.s.syncAlerts(ctx); err != nil {
		return nil, alert.Summary{}, err
	}
	list, err := as.s.db.ListAlerts(ctx, f)
	if err != nil {
		return nil, alert.Summary{}, err
	}
	return list, alert.Summarize(list, as.s.now(), as.s.alerts.ackWithin, as.s.alerts.cfg), nil
}

func (as alertsService) SetState(ctx context.Context, id, state, who, note string) (store.Alert, error) {
	a, err := as.s.alerts.engine.SetState(ctx, id, state, who, note)
	if err == nil && state == store.AlertAcknowledged || err == nil && state == store.AlertResolved && a.AckedAt.Equal(a.ResolvedAt) {
		as.s.alerts.dwell.Observe(max(a.AckedAt.Sub(a.FirstEvidence), 0).Seconds())
	}
	return a, err
}

func (as alertsService) Enabled() []string { return as.s.alerts.cfg.Enabled() }
