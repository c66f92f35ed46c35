// Package outcomes records what became of every publish and of every
// integration (DESIGN §10): one event per outcome in the Redis Stream
// retropub:outcomes, the latest status of each report and integration, and
// the parked publishes that wait for a person. Every record is written by
// one Lua script together with the state it reports, so a crash never
// leaves a state without its event, nor an outcome with two events.
package outcomes

import (
	"encoding/json"
	"time"
)

// Event types (DESIGN §10).
const (
	TypePublished   = "report.published"
	TypeUnchanged   = "report.unchanged"
	TypeSkipped     = "report.skipped"
	TypeKept        = "report.kept"
	TypeParked      = "report.parked"
	TypeInvalid     = "report.invalid"
	TypeNeedsReauth = "integration.needs_reauth"
	TypeOK          = "integration.ok"
)

// Types lists every event type, for metrics and documentation.
var Types = []string{TypePublished, TypeUnchanged, TypeSkipped, TypeKept, TypeParked, TypeInvalid, TypeNeedsReauth, TypeOK}

// Error classes (DESIGN §10).
const (
	ClassNeedsReauth = "needs_reauth"
	ClassBlocked     = "blocked"
	ClassPermanent   = "permanent"
	ClassInvalid     = "invalid"
)

// Classes lists every error class; parked reasons are classes.
var Classes = []string{ClassNeedsReauth, ClassBlocked, ClassPermanent, ClassInvalid}

// Event is one outcome as the stream and the webhooks carry it.
type Event struct {
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Time          time.Time `json:"time"`
	IntegrationID string    `json:"integration_id"`
	ReportID      string    `json:"report_id,omitempty"`
	Revision      int64     `json:"revision,omitempty"`
	EventID       string    `json:"event_id,omitempty"`
	TaskID        string    `json:"task_id,omitempty"`
	Page          *Page     `json:"page,omitempty"`
	Error         *Error    `json:"error,omitempty"`
}

// Page is the Confluence page a report lives on; URL is absolute.
type Page struct {
	ID      string `json:"id"`
	URL     string `json:"url,omitempty"`
	Title   string `json:"title,omitempty"`
	Version int    `json:"version,omitempty"`
}

// Error says why a publish did not happen and what a person should do.
type Error struct {
	Class   string `json:"class"`
	Message string `json:"message"`
}

// StreamField is the stream entry's field holding the event's JSON.
const StreamField = "event"

// DecodeEvent reads a stream entry's event JSON.
func DecodeEvent(data string) (*Event, error) {
	var e Event
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		return nil, err
	}
	return &e, nil
}
