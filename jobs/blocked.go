package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"retropub/confluence"
	"retropub/internal/blocked"
)

// BlockedError is a publish refused because an app access rule of the
// customer's data security policy blocks retropub from the target space
// (DESIGN §10, error class "blocked"). Only an organization admin can lift
// it, so the task is not retried: it is parked, and the integration's
// status names the space until a publish there succeeds. It trips no
// breaker (a 403 never does) and leaves the integration's other spaces
// publishing.
type BlockedError struct {
	Integration, Space string
	Err                error
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("space %s is blocked for retropub by an app access rule of a data security policy in the Atlassian organization of integration %s (%v): "+
		"an organization admin can lift it in Atlassian Administration under Security > Data security policies, by removing the space from the policy or allowing this app in its app access rule; "+
		"the report stays parked until then and can be replayed", e.Space, e.Integration, e.Err)
}

func (e *BlockedError) Unwrap() []error { return []error{e.Err, asynq.SkipRetry} }

// asBlocked names the space of a refusal by an app access rule.
func asBlocked(p *PublishPayload, err error) error {
	var be *BlockedError
	if err == nil || errors.As(err, &be) || !confluence.Blocked(err) {
		return err
	}
	return &BlockedError{Integration: p.IntegrationID, Space: p.Target.SpaceKey, Err: err}
}

// trackBlocked keeps the integration's blocked spaces: a blocked publish
// marks its space, a publish that wrote there clears it. A failure to
// record is logged, never the task's end: the publish itself is decided.
func (h *Publisher) trackBlocked(ctx context.Context, log *zap.Logger, p *PublishPayload, outcome string, cleared bool, err error) {
	if h.Redis == nil {
		return
	}
	var be *BlockedError
	var rerr error
	switch {
	case errors.As(err, &be):
		rerr = blocked.Mark(context.WithoutCancel(ctx), h.Redis, be.Integration, be.Space, be.Error(), time.Now())
		log.Warn("space blocked by an app access rule", zap.String("space", be.Space))
	case err == nil && outcome == "published" && !cleared: // cleared: done with the slot's release (cleanup)
		rerr = blocked.Clear(context.WithoutCancel(ctx), h.Redis, p.IntegrationID, p.Target.SpaceKey)
	}
	if rerr != nil {
		log.Warn("record blocked space", zap.Error(rerr))
	}
}
