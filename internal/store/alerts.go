package store

import (
	"context"
	"time"
)

// Alert states.
const (
	AlertOpen         = "open"
	AlertAcknowledged = "acknowledged"
	AlertResolved     = "resolved"
)

// Evidence is one event that raised or added to an alert. It holds ids
// and names, never secret values.
type Evidence struct {
	Event   string    `json:"event"` // audit event id
	Index   int64     `json:"index"` // its index in the log
	Time    time.Time `json:"time"`
	Summary string    `json:"summary"`
}

// Alert is one alert raised by a rule over the event stream. At most one
// alert per DedupKey is not resolved at a time; later evidence adds to it
// (Count, LastEvidence, up to [MaxEvidence] items of Evidence).
type Alert struct {
	ID       string
	Rule     string
	DedupKey string
	Severity string
	Title    string
	// Subject is what the alert is about: a SPIFFE ID, a process, a
	// credential, a tool.
	Subject  string
	Evidence []Evidence
	Count    int64
	State    string
	// FirstEvidence is the time of the first event; RaisedAt when writ
	// raised the alert; AckedAt and ResolvedAt when a human did (zero
	// until then), with who.
	FirstEvidence, LastEvidence time.Time
	RaisedAt                    time.Time
	AckedAt                     time.Time
	AckedBy                     string
	ResolvedAt                  time.Time
	ResolvedBy                  string
	Note                        string
}

// MaxEvidence is how many evidence items an alert keeps (the first ones).
const MaxEvidence = 20

// AlertFilter selects alerts; zero fields select everything.
type AlertFilter struct {
	State    string
	Rule     string
	Severity string
	// RaisedSince selects alerts raised at or after it.
	RaisedSince time.Time
	Limit       int
}

// Delivery is one webhook notification in the durable outbox: Body (the
// alert as raised, JSON) is sent to the webhook named Webhook until it is
// delivered or given up.
type Delivery struct {
	ID          int64
	Webhook     string
	Alert       string
	Body        []byte
	Attempts    int
	NextAttempt time.Time
	CreatedAt   time.Time
	DeliveredAt time.Time
	Failed      bool
	LastError   string
}

// Alerts stores alerts, the alert engine's cursor and the webhook outbox.
type Alerts interface {
	// RaiseAlerts stores raises — each either a new alert or, when an
	// alert with its DedupKey is not resolved, more evidence on that one
	// (count added, last evidence moved, evidence appended up to
	// MaxEvidence) — and, for every new alert, one delivery per name in
	// webhooks, and moves the alerts cursor from from to next with state,
	// in one transaction (ErrCursorMoved if the cursor is not at from).
	// It returns the alerts as stored, new ones with created true.
	RaiseAlerts(ctx context.Context, from, next int64, state []byte, raises []Alert, webhooks func(Alert) []string) ([]RaisedAlert, error)
	GetAlert(ctx context.Context, id string) (Alert, error)
	// ListAlerts returns the alerts f selects, newest raised first.
	ListAlerts(ctx context.Context, f AlertFilter) ([]Alert, error)
	// SetAlertState acknowledges (AlertAcknowledged) or resolves
	// (AlertResolved) alert id by who at at with note. Acknowledging a
	// resolved alert, or moving an alert to the state it is in, is an
	// error wrapping ErrExists; ErrNotFound if there is no such alert.
	SetAlertState(ctx context.Context, id, state, who, note string, at time.Time) (Alert, error)
	// DueDeliveries returns up to limit pending deliveries whose next
	// attempt is at or before now, oldest first.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	// UpdateDelivery stores the outcome of an attempt: Attempts,
	// NextAttempt, DeliveredAt, Failed and LastError of d.
	UpdateDelivery(ctx context.Context, d Delivery) error
	// ListDeliveries returns the deliveries of alert id, oldest first.
	ListDeliveries(ctx context.Context, alert string) ([]Delivery, error)
}

// RaisedAlert is an alert as RaiseAlerts stored it.
type RaisedAlert struct {
	Alert
	Created bool
}
