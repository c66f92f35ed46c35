package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"retropub/confluence"
	"retropub/credstore"
	"retropub/gate"
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

// Class is what becomes of a task whose attempt failed (DESIGN §6).
type Class int

const (
	Transient   Class = iota // retried with backoff; archived when retries run out
	Permanent                // archived now (asynq.SkipRetry)
	NeedsReauth              // archived now; the integration is marked needs_reauth
	Blocked                  // archived now: an app access rule blocks the space
	RateLimited              // Confluence said when: back after it, not a failure
	Deferred                 // not sent or not begun: back after Delay, not a failure
)

// Classification is the one decision about an attempt's error: asynq's
// IsFailure and RetryDelayFunc, the outcome metrics, the deferral cap and
// the outcome record all read it instead of looking at error types.
type Classification struct {
	Class Class
	// Delay is when the task may come back, jitter included; zero leaves
	// Transient errors to the exponential backoff.
	Delay time.Duration
	// Counted deferrals count against the task's caps: Confluence or its
	// gate refused (429, cooldown, breaker, budget). Waiting for a lock or
	// a fair share always progresses and is not counted.
	Counted bool
}

// Failure is an attempt's error together with its Classification, made
// once by classify; everything downstream reads the classification back
// with errors.As.
type Failure struct {
	Err error // typed: *PermanentError, *ReauthError, *DeferredError, …
	Classification
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// classification is err's decision: the one classify made, or a fresh
// one for errors that did not pass through it (set-up tasks, asynq's own).
func classification(err error) Classification {
	var f *Failure
	if errors.As(err, &f) {
		return f.Classification
	}
	if f, ok := classify("", err).(*Failure); ok {
		return f.Classification
	}
	return Classification{}
}

// ends reports whether the task stops here: archived now, or out of
// retries (asynq's count from ctx).
func (c Classification) ends(ctx context.Context) bool {
	switch c.Class {
	case Permanent, NeedsReauth, Blocked:
		return true
	case Transient:
		n, _ := asynq.GetRetryCount(ctx)
		max, ok := asynq.GetMaxRetry(ctx)
		return ok && n >= max
	}
	return false
}

// IsFailure is asynq's Config.IsFailure: deferrals and rate limits are not
// failures, so they never use up a retry. Their number is capped instead
// (Limits.MaxDeferrals).
func IsFailure(err error) bool {
	c := classification(err).Class
	return c != Deferred && c != RateLimited
}

// RetryDelay is asynq's Config.RetryDelayFunc: the classification's delay
// when the error knows when to come back, else full-jitter backoff.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if c := classification(err); c.Class == Deferred || c.Class == RateLimited || c.Delay > 0 {
		return c.Delay
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

// classify types what a run returned and decides, once, what asynq does
// with it (DESIGN §6): nil, or a *Failure. integration names the
// integration a ReauthError is about.
func classify(integration string, err error) error {
	if err == nil {
		return nil
	}
	if _, done := err.(*Failure); done {
		return err
	}
	typed, c := decide(integration, err)
	return &Failure{Err: typed, Classification: c}
}

// decide is the error table: the typed error (with a message a person can
// act on) and its classification.
func decide(integration string, err error) (error, Classification) {
	var (
		pe  *PermanentError
		re  *ReauthError
		de  *DeferredError
		gde *gate.DeferError
		rl  *confluence.RateLimitError
		ce  *confluence.Error
		rr  *credstore.ReauthRequiredError
		te  *credstore.TokenEndpointError
		be  *BlockedError
	)
	perm := Classification{Class: Permanent}
	switch {
	case errors.As(err, &pe):
		return err, perm
	case errors.As(err, &be):
		return err, Classification{Class: Blocked}
	case errors.As(err, &re):
		return err, Classification{Class: NeedsReauth}
	case errors.As(err, &de):
		return err, Classification{Class: Deferred, Delay: de.Delay}
	case errors.As(err, &gde):
		// Not sent: the gate said when to come back.
		return err, Classification{Class: Deferred, Delay: withJitter(time.Until(gde.Until)), Counted: true}
	case errors.As(err, &rr):
		return &ReauthError{Integration: integration, Reason: rr.Reason}, Classification{Class: NeedsReauth}
	case errors.As(err, &te) && !te.Temporary():
		// A token endpoint that answers HTML, nothing, or a token without
		// expiry will not change its mind on a retry.
		return permanent(err), perm
	case errors.As(err, &rl):
		// No sooner than Retry-After; jitter spreads the fleet's return.
		return err, Classification{Class: RateLimited, Delay: withJitter(rl.RetryAfter), Counted: true}
	case errors.Is(err, confluence.ErrNotAllowed):
		return permanent(err), perm
	case errors.Is(err, confluence.ErrEgressRefused), errors.Is(err, confluence.ErrCertificate),
		errors.Is(err, confluence.ErrRedirected), errors.Is(err, confluence.ErrAnswerTooLarge):
		return permanent(err), perm
	case errors.As(err, &ce) && ce.LoginDenied():
		// Every further login keeps the account locked: stop until new credentials.
		return &ReauthError{Integration: integration, Reason: loginDeniedReason}, Classification{Class: NeedsReauth}
	case errors.As(err, &ce) && ce.StatusCode == 401:
		return &ReauthError{Integration: integration, Reason: ce.Message}, Classification{Class: NeedsReauth}
	case errors.As(err, &ce) && errors.Is(err, confluence.ErrGone):
		return permanent(fmt.Errorf("%w (Confluence retired the endpoint %s %s: a retropub release must stop calling it; alert the retropub team)", err, ce.Method, ce.Path)), perm
	case errors.Is(err, confluence.ErrForbidden):
		return permanent(fmt.Errorf("%w (check the integration's permissions and scopes in Confluence)", err)), perm
	case errors.Is(err, confluence.ErrBadRequest), errors.Is(err, confluence.ErrTooLarge):
		return permanent(err), perm
	case errors.Is(err, confluence.ErrRejected), errors.Is(err, confluence.ErrInvalidID):
		// Any other 4xx but 408/409/429 (405, 415, 422, …), and an id that
		// is not what the API documents: the same request meets the same answer.
		return permanent(err), perm
	case errors.Is(err, asynq.SkipRetry):
		return err, perm
	case errors.Is(err, asynq.ErrLeaseExpired):
		// A crashed attempt: its steps resume from the mapping.
		return err, Classification{Class: Transient, Delay: time.Second}
	}
	return err, Classification{Class: Transient}
}
