package apitypes

import "time"

// AlertList is GET /v1/alerts (`writ alert list`): the alerts selected,
// newest first, the summary of dwell time and coverage over them, and the
// catalogue of detections. See docs/alerts.md.
type AlertList struct {
	Alerts    []Alert        `json:"alerts"`
	Summary   AlertSummary   `json:"summary"`
	Catalogue []AlertRuleDoc `json:"catalogue"`
}

// Alert is one alert. State is open, acknowledged or resolved. Evidence
// holds audit event ids and summaries, never secret values.
type Alert struct {
	ID            string          `json:"id"`
	Rule          string          `json:"rule"`
	Severity      string          `json:"severity"`
	Title         string          `json:"title"`
	Subject       string          `json:"subject"`
	Count         int64           `json:"count"`
	State         string          `json:"state"`
	Evidence      []AlertEvidence `json:"evidence"`
	FirstEvidence time.Time       `json:"first_evidence"`
	LastEvidence  time.Time       `json:"last_evidence"`
	RaisedAt      time.Time       `json:"raised_at"`
	AckedAt       *time.Time      `json:"acked_at,omitempty"`
	AckedBy       string          `json:"acked_by,omitempty"`
	ResolvedAt    *time.Time      `json:"resolved_at,omitempty"`
	ResolvedBy    string          `json:"resolved_by,omitempty"`
	Note          string          `json:"note,omitempty"`
	// DwellSeconds is first evidence → acknowledgement; absent until
	// acknowledged.
	DwellSeconds *float64 `json:"dwell_seconds,omitempty"`
	Fix          string   `json:"fix,omitempty"`
}

// AlertEvidence is one event behind an alert.
type AlertEvidence struct {
	Event   string    `json:"event"`
	Index   int64     `json:"index"`
	Time    time.Time `json:"time"`
	Summary string    `json:"summary"`
}

// AlertSummary is dwell time and coverage over the listed alerts: dwell
// is first evidence → acknowledgement; coverage is the share of due alerts
// acknowledged within ack_within_seconds of being raised (alerts still
// inside that window are pending and counted in neither); detection
// coverage is the rules enabled out of the catalogue.
type AlertSummary struct {
	Total              int            `json:"total"`
	Open               int            `json:"open"`
	Acknowledged       int            `json:"acknowledged"`
	Resolved           int            `json:"resolved"`
	DwellMedianSeconds float64        `json:"dwell_median_seconds"`
	DwellP90Seconds    float64        `json:"dwell_p90_seconds"`
	DwellMaxSeconds    float64        `json:"dwell_max_seconds"`
	RaiseMedianSeconds float64        `json:"raise_median_seconds"`
	AckWithinSeconds   float64        `json:"ack_within_seconds"`
	Coverage           float64        `json:"coverage"`
	AckedInTime        int            `json:"acked_in_time"`
	Due                int            `json:"due"`
	Pending            int            `json:"pending"`
	RulesEnabled       []string       `json:"rules_enabled"`
	RulesDisabled      []string       `json:"rules_disabled"`
	DetectionCoverage  float64        `json:"detection_coverage"`
	BySeverity         map[string]int `json:"by_severity"`
	ByRule             map[string]int `json:"by_rule"`
}

// AlertRuleDoc is one detection of the catalogue.
type AlertRuleDoc struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Severity    string `json:"severity"`
	Description string `json:"description"`
	Fix         string `json:"fix"`
	Enabled     bool   `json:"enabled"`
}

// AlertDecision is the body of POST /v1/alerts/{id}/ack and /resolve.
type AlertDecision struct {
	Note string `json:"note,omitempty"`
}
