package jobs

import (
	"context"

	"github.com/hibiken/asynq"
)

// Task outcomes as metrics see them. A finished publish reports its own
// (published, unchanged, skipped_older_revision, kept_manual_edit); the
// others say what asynq does next.
const (
	OutcomeOK          = "ok"           // a set-up task that succeeded
	OutcomeDeferred    = "deferred"     // lock held, cooldown, breaker open: runs again, no failure counted
	OutcomeRateLimited = "rate_limited" // 429/503 with Retry-After: runs again after it
	OutcomeRetry       = "retry"        // transient failure: runs again with backoff
	OutcomeArchived    = "archived"     // permanent failure, or retries used up
	OutcomeReauth      = "needs_reauth" // credentials rejected: archived, integration marked
)

// ObserveOutcomes makes mux report every attempt's task type and outcome
// to fn (metrics). Call it once, after Register.
func ObserveOutcomes(mux *asynq.ServeMux, fn func(taskType, outcome string)) {
	mux.Use(func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			slot := new(string)
			err := next.ProcessTask(context.WithValue(ctx, outcomeKey{}, slot), t)
			fn(t.Type(), outcomeOf(ctx, err, *slot))
			return err
		})
	})
}

type outcomeKey struct{}

// setOutcome names a successful attempt's outcome for ObserveOutcomes.
func setOutcome(ctx context.Context, outcome string) {
	if slot, ok := ctx.Value(outcomeKey{}).(*string); ok {
		*slot = outcome
	}
}

func outcomeOf(ctx context.Context, err error, success string) string {
	switch {
	case err == nil && success != "":
		return success
	case err == nil:
		return OutcomeOK
	}
	c := classification(err)
	switch c.Class {
	case NeedsReauth:
		return OutcomeReauth
	case Deferred:
		return OutcomeDeferred
	case RateLimited:
		return OutcomeRateLimited
	}
	if c.ends(ctx) {
		return OutcomeArchived
	}
	return OutcomeRetry
}
