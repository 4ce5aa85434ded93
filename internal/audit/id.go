package audit

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// NewEventID returns a new event id for time t: "evt_" and a ULID, as the
// log assigns to events without one. Callers that must know an event's id
// before it is appended (to find it in the log after a crash) set it
// themselves.
func NewEventID(t time.Time) (string, error) {
	id, err := ulid.New(ulid.Timestamp(t), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("make event id: %w", err)
	}
	return "evt_" + id.String(), nil
}
