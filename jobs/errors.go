package jobs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"retropub/confluence"
	"retropub/credstore"
)

// PermanentError is a failure no retry can fix: the task is archived with
// its message (it wraps asynq.SkipRetry).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string   { return e.Err.Error() }
func (e *PermanentError) Unwrap() []error { return []error{e.Err, asynq.SkipRetry} }

func permanent(err error) error { return &PermanentError{Err: err} }

// ReauthError means the integration's credentials no longer work; the
// integration is marked needs_reauth and the task archived.
type ReauthError struct {
	Integration string
	Reason      string
	// Marked is true when the integration's record already says so:
	// nothing to mark again (its since time stays the first failure's).
	Marked bool
}

// reauthMarker is in every ReauthError message, for people and log searches.
const reauthMarker = "needs to be re-authorised"

func (e *ReauthError) Error() string {
	return fmt.Sprintf("integration %s "+reauthMarker+" (%s): put new credentials with `worker integrations put`", e.Integration, e.Reason)
}
func (e *ReauthError) Unwrap() error { return asynq.SkipRetry }

// loginDeniedReason is what the integration's status says after Data
// Center's CAPTCHA lock (401 with X-Seraph-LoginReason: AUTHENTICATION_DENIED).
const loginDeniedReason = "Confluence locked the account after failed logins (CAPTCHA): log in once in a browser, then put the credentials again"

// DeferredError asks asynq to run the task again after Delay without
// counting a failure: a lock held elsewhere, a cooldown, an open breaker.
type DeferredError struct {
	Reason string
	Delay  time.Duration
}

func (e *DeferredError) Error() string {
	return fmt.Sprintf("deferred for %s: %s", e.Delay.Round(time.Millisecond), e.Reason)
}

// Backoff for transient failures: full jitter over base·2^n, capped.
const (
	backoffBase = 10 * time.Second
	backoffCap  = time.Hour
)

// retryAter is a refusal that knows when to come back (the gate's
// cooldown, breaker and budget deferrals).
type retryAter interface{ RetryAt() time.Time }

// IsFailure is asynq's Config.IsFailure: deferrals and rate limits are not
// failures, so they never use up a retry. Their number is capped instead
// (Limits.MaxDeferrals).
func IsFailure(err error) bool {
	var d *DeferredError
	var rl *confluence.RateLimitError
	var ra retryAter
	return !errors.As(err, &d) && !errors.As(err, &rl) && !errors.As(err, &ra)
}

// RetryDelay is asynq's Config.RetryDelayFunc; it reads the delay from the
// error when the error knows it.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var d *DeferredError
	var rl *confluence.RateLimitError
	var ra retryAter
	switch {
	case errors.As(err, &d):
		return d.Delay
	case errors.As(err, &rl):
		// No sooner than Retry-After; jitter spreads the fleet's return.
		return withJitter(rl.RetryAfter)
	case errors.As(err, &ra):
		return withJitter(time.Until(ra.RetryAt()))
	case errors.Is(err, asynq.ErrLeaseExpired):
		// A crashed attempt: its steps resume from the mapping.
		return time.Second
	}
	ceil := backoffBase << min(n, 20)
	if ceil > backoffCap || ceil <= 0 {
		ceil = backoffCap
	}
	return time.Second + time.Duration(rand.Int64N(int64(ceil)))
}

// withJitter is d plus up to a fifth of d (at most a minute) and a
// second, so a fleet told to wait does not come back in one burst; never
// sooner than d. The cap keeps a wait for the top of the hour (the points
// quota) from stretching minutes past it.
func withJitter(d time.Duration) time.Duration {
	d = max(d, 0)
	return d + time.Duration(rand.Int64N(int64(min(d/5, maxJitter))+int64(time.Second)))
}

// maxJitter bounds withJitter's spread.
const maxJitter = time.Minute

// classify turns what a run returned into what asynq should do (DESIGN §6).
func classify(integration string, err error) error {
	if err == nil {
		return nil
	}
	var (
		pe *PermanentError
		re *ReauthError
		de *DeferredError
		ce *confluence.Error
		rr *credstore.ReauthRequiredError
		te *credstore.TokenEndpointError
		be *BlockedError
	)
	switch {
	case errors.As(err, &pe), errors.As(err, &re), errors.As(err, &de), errors.As(err, &be):
		return err
	case errors.As(err, &rr):
		return &ReauthError{Integration: integration, Reason: rr.Reason}
	case errors.As(err, &te) && !te.Temporary():
		// A token endpoint that answers HTML, nothing, or a token without
		// expiry will not change its mind on a retry.
		return permanent(err)
	case errors.Is(err, confluence.ErrRateLimited):
		return err
	case errors.Is(err, confluence.ErrNotAllowed):
		return permanent(err)
	case errors.Is(err, confluence.ErrEgressRefused), errors.Is(err, confluence.ErrCertificate),
		errors.Is(err, confluence.ErrRedirected), errors.Is(err, confluence.ErrAnswerTooLarge):
		return permanent(err)
	case errors.As(err, &ce) && ce.LoginDenied():
		// Every further login keeps the account locked: stop until new credentials.
		return &ReauthError{Integration: integration, Reason: loginDeniedReason}
	case errors.As(err, &ce) && ce.StatusCode == 401:
		return &ReauthError{Integration: integration, Reason: ce.Message}
	case errors.As(err, &ce) && errors.Is(err, confluence.ErrGone):
		return permanent(fmt.Errorf("%w (Confluence retired the endpoint %s %s: a retropub release must stop calling it; alert the retropub team)", err, ce.Method, ce.Path))
	case errors.Is(err, confluence.ErrForbidden):
		return permanent(fmt.Errorf("%w (check the integration's permissions and scopes in Confluence)", err))
	case errors.Is(err, confluence.ErrBadRequest), errors.Is(err, confluence.ErrTooLarge):
		return permanent(err)
	case errors.Is(err, confluence.ErrRejected), errors.Is(err, confluence.ErrInvalidID):
		// Any other 4xx but 408/409/429 (405, 415, 422, …), and an id that
		// is not what the API documents: the same request meets the same answer.
		return permanent(err)
	}
	return err
}
