package gate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"retropub/confluence"
)

// instance is one Confluence instance's in-process state: its breaker and
// the cached copy of the fleet's "open" flag.
type instance struct {
	name    string
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor time.Duration

	tripped atomic.Bool // the local breaker opened; the next report publishes it

	mu         sync.Mutex
	openedAt   time.Time // when the local breaker last opened
	openUntil  time.Time // the fleet's flag, as last seen
	openSeenAt time.Time
	snap       snapshot   // cooldown and breaker as last known
	lease      spendLease // this process's slice of a counting instance (lease.go)
	lastFail   string     // the last failure this process saw, for an open breaker's message
}

// noteFailure remembers the failure that may open the breaker.
func (in *instance) noteFailure(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.lastFail = err.Error()
}

// openCause is the last failure this process saw on the instance.
func (in *instance) openCause() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.lastFail
}

// sharedOpenTTL bounds how long the fleet's "open" flag is trusted
// without asking Redis again (DESIGN §4: at most a second).
const sharedOpenTTL = time.Second

func newInstance(name string, cfg Config, log *zap.Logger) *instance {
	in := &instance{name: name, openFor: cfg.OpenFor}
	failures := uint32(max(cfg.Failures, 1))
	in.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: uint32(cfg.Probes),
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		IsExcluded:  isExcluded,
		IsSuccessful: func(err error) bool {
			return !isFailure(err)
		},
		// Runs under the breaker's mutex: only note the change here.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				in.mu.Lock()
				in.openedAt = time.Now()
				in.mu.Unlock()
				in.tripped.Store(true)
			}
			log.Info("circuit breaker state", zap.String("instance", name), zap.String("from", from.String()), zap.String("to", to.String()))
		},
	})
	return in
}

// allow asks the local breaker; open means deferred until it half-opens.
func (in *instance) allow() (func(error), error) {
	done, err := in.breaker.Allow()
	switch {
	case errors.Is(err, gobreaker.ErrOpenState):
		in.mu.Lock()
		until := in.openedAt.Add(in.openFor)
		in.mu.Unlock()
		if soon := time.Now().Add(100 * time.Millisecond); until.Before(soon) {
			until = soon
		}
		return nil, &DeferError{Instance: in.name, Why: RefusedBreaker, Until: until, Cause: in.openCause()}
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, &DeferError{Instance: in.name, Why: RefusedProbes, Until: time.Now().Add(time.Second)}
	case err != nil:
		return nil, err
	}
	return done, nil
}

// takeTripped reports once that the local breaker opened.
func (in *instance) takeTripped() bool { return in.tripped.Swap(false) }

// sharedOpen answers from the cached fleet flag while it is fresh.
func (in *instance) sharedOpen() (time.Time, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	if now.Sub(in.openSeenAt) > sharedOpenTTL || !now.Before(in.openUntil) {
		return time.Time{}, false
	}
	return in.openUntil, true
}

// cacheOpen remembers the fleet flag; a zero until means closed.
func (in *instance) cacheOpen(until time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.openUntil, in.openSeenAt = until, time.Now()
}

// isFailure is what trips a breaker: 5xx, timeouts, connection errors.
func isFailure(err error) bool {
	var rl *confluence.RateLimitError
	switch {
	case err == nil, isExcluded(err):
		return false
	case errors.As(err, &rl):
		return rl.Resp.StatusCode >= 500 // a 503 with Retry-After: the server is struggling
	}
	return errors.Is(err, confluence.ErrServer) || errors.Is(err, confluence.ErrTransport) ||
		errors.Is(err, context.DeadlineExceeded)
}

// isExcluded is neither success nor failure: 429s (the cooldown handles
// them), our own cancellations and refusals.
func isExcluded(err error) bool {
	var (
		rl *confluence.RateLimitError
		se *confluence.SourceError
	)
	if errors.As(err, &rl) && rl.Resp.StatusCode == 429 {
		return true
	}
	// A customer's file source failing mid-upload says nothing of Confluence.
	return errors.Is(err, context.Canceled) || errors.Is(err, errRefused) || errors.As(err, &se)
}
