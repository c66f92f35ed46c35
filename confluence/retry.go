package confluence

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"
)

// The client repeats a request itself in exactly two cases, decided here
// and nowhere else (the shape of go-retryablehttp's CheckRetry and
// Backoff, with the clock injected so tests wait for nothing):
//
//   - a GET that lost its connection or met a 5xx without Retry-After is
//     sent once more after a short jittered pause: it is safe to repeat,
//     and a quick second try often meets a healthy node. Writes are never
//     repeated here: a POST may have gone through, and the publish steps
//     look before they write again (DESIGN §6).
//   - a 401 on refreshable credentials (Refresher) refreshes them once and
//     repeats the request once (DESIGN §3); a scope mismatch is not
//     refreshed, a refresh cannot add scopes. After the refresh the GET
//     gets its quick second try again.
//
// Everything longer (rate limits, backoff over minutes) is the job's:
// asynq schedules those waits.

// retryPolicy decides whether a failed attempt is made again.
type retryPolicy struct {
	// checkRetry is asked after every failed attempt.
	checkRetry func(r request, err error, h attempts, canRefresh bool) retryAction
	// backoff is the pause before a repeat.
	backoff func(h attempts) time.Duration
	clock   Clock
}

// attempts is what a request has used of its budget so far.
type attempts struct {
	quick     int  // quick repeats since the last refresh
	refreshed bool // credentials refreshed once already
}

type retryAction int

const (
	giveUp           retryAction = iota // return the error
	repeat                              // wait backoff, send again
	refreshAndRepeat                    // refresh the credentials, send again
)

// Clock is the time the retry policy reads and waits on.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends, whichever comes first.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func defaultRetryPolicy() retryPolicy {
	return retryPolicy{checkRetry: checkRetry, backoff: quickBackoff, clock: realClock{}}
}

// checkRetry is the default policy described above.
func checkRetry(r request, err error, h attempts, canRefresh bool) retryAction {
	switch {
	case err == nil:
		return giveUp
	case r.method == http.MethodGet && transient(err) && h.quick == 0:
		return repeat
	case canRefresh && !h.refreshed && errors.Is(err, ErrUnauthorized) && !scopeMismatch(err):
		return refreshAndRepeat
	}
	return giveUp
}

// quickBackoff is 100–300 ms: long enough for a balancer to pick another
// node, short against the request timeout.
func quickBackoff(attempts) time.Duration {
	return 100*time.Millisecond + rand.N(200*time.Millisecond)
}

// transient is a failure a quick second try may not meet: a lost
// connection or a 5xx that did not ask us to wait.
func transient(err error) bool {
	return errors.Is(err, ErrTransport) || (errors.Is(err, ErrServer) && !errors.Is(err, ErrRateLimited))
}

// scopeMismatch: a refresh cannot add scopes, so it is not tried.
func scopeMismatch(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.ScopeMismatch()
}

// attempt sends r as often as the policy says and returns the last answer.
func (c *conn) attempt(ctx context.Context, r request, route string) (*http.Response, error) {
	rf, canRefresh := c.auth.(Refresher)
	var h attempts
	for {
		resp, err := c.send(ctx, r, route)
		switch c.retry.checkRetry(r, err, h, canRefresh) {
		case repeat:
			if c.retry.clock.Sleep(ctx, c.retry.backoff(h)) != nil {
				return nil, err
			}
			h.quick++
		case refreshAndRepeat:
			if rerr := rf.Refresh(ctx); rerr != nil {
				return nil, rerr
			}
			h = attempts{refreshed: true}
		default:
			return resp, err
		}
	}
}
