package outcomes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"retropub/internal/blocked"
)

// ErrNotFound is returned (wrapped) for a report, integration or parked
// publish retropub knows nothing about.
var ErrNotFound = errors.New("not found")

// Store reads status and parked publishes, and discards and replays them.
type Store struct {
	Redis redis.UniversalClient
	// Seal opens parked payloads sealed by a Recorder with the same keys;
	// nil reads them as they are (tests).
	Seal *Sealer
}

// ReportStatus is a report's latest outcome (DESIGN §10). Never a secret.
type ReportStatus struct {
	IntegrationID string     `json:"integration_id"`
	ReportID      string     `json:"report_id"`
	State         string     `json:"state"` // the latest event's type
	Revision      int64      `json:"revision"`
	Page          *Page      `json:"page,omitempty"`
	Error         *Error     `json:"error,omitempty"`
	OutcomeID     string     `json:"outcome_id"` // the latest event's id
	TaskID        string     `json:"task_id"`
	UpdatedAt     time.Time  `json:"updated_at"`
	PublishedAt   *time.Time `json:"published_at,omitempty"`
	Parked        *Parked    `json:"parked,omitempty"`
}

// ReportStatus reads a report's status; ErrNotFound when it has none.
func (s *Store) ReportStatus(ctx context.Context, integration, report string) (*ReportStatus, error) {
	pipe := s.Redis.Pipeline()
	st := pipe.HGetAll(ctx, ReportStatusKey(integration, report))
	pk := pipe.HMGet(ctx, parkedKey(integration, report), parkedFields...)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read status of report %s/%s: %w", integration, report, err)
	}
	h := st.Val()
	if h["state"] == "" {
		return nil, fmt.Errorf("report %s of integration %s: %w", report, integration, ErrNotFound)
	}
	rs := &ReportStatus{IntegrationID: integration, ReportID: report, State: h["state"], OutcomeID: h["event_id"], TaskID: h["task_id"]}
	rs.Revision, _ = strconv.ParseInt(h["revision"], 10, 64)
	rs.UpdatedAt, _ = time.Parse(time.RFC3339Nano, h["updated_at"])
	if t, err := time.Parse(time.RFC3339Nano, h["published_at"]); err == nil {
		rs.PublishedAt = &t
	}
	if h["page_id"] != "" {
		v, _ := strconv.Atoi(h["page_version"])
		rs.Page = &Page{ID: h["page_id"], URL: h["page_url"], Title: h["page_title"], Version: v}
	}
	if h["error_class"] != "" {
		rs.Error = &Error{Class: h["error_class"], Message: h["error_message"]}
	}
	rs.Parked = parkedFrom(integration, report, pk.Val())
	return rs, nil
}

// IntegrationStatus is an integration's health (DESIGN §10).
type IntegrationStatus struct {
	ID                 string           `json:"id"`
	NeedsReauth        bool             `json:"needs_reauth"`
	Reason             string           `json:"reason,omitempty"`
	Since              *time.Time       `json:"since,omitempty"`
	BlockedSpaces      []string         `json:"blocked_spaces"`
	LastSuccess        *time.Time       `json:"last_success,omitempty"`
	LastFailure        *time.Time       `json:"last_failure,omitempty"`
	LastFailureMessage string           `json:"last_failure_message,omitempty"`
	Parked             int64            `json:"parked"`
	ParkedByReason     map[string]int64 `json:"parked_by_reason"`
}

// IntegrationStatus reads an integration's health; ErrNotFound when
// retropub has recorded nothing about it.
func (s *Store) IntegrationStatus(ctx context.Context, id string) (*IntegrationStatus, error) {
	pipe := s.Redis.Pipeline()
	st := pipe.HGetAll(ctx, integrationStatusKey(id))
	n := pipe.ZCard(ctx, parkedIndexKey(id))
	reasons := pipe.HGetAll(ctx, parkedReasonsKey(id))
	spaces := pipe.HKeys(ctx, blocked.Key(id))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read status of integration %s: %w", id, err)
	}
	h := st.Val()
	if len(h) == 0 && n.Val() == 0 {
		return nil, fmt.Errorf("integration %s: %w", id, ErrNotFound)
	}
	is := &IntegrationStatus{ID: id, NeedsReauth: h["needs_reauth"] == "1", Reason: h["reason"],
		LastFailureMessage: h["last_failure_message"], Parked: n.Val(), ParkedByReason: map[string]int64{}, BlockedSpaces: []string{}}
	is.BlockedSpaces = append(is.BlockedSpaces, spaces.Val()...)
	slices.Sort(is.BlockedSpaces)
	is.Since = timeOf(h["since"])
	is.LastSuccess = timeOf(h["last_success"])
	is.LastFailure = timeOf(h["last_failure"])
	for k, v := range reasons.Val() {
		if c, _ := strconv.ParseInt(v, 10, 64); c > 0 {
			is.ParkedByReason[k] = c
		}
	}
	return is, nil
}

func timeOf(s string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	return &t
}
