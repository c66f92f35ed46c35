package confluence

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinels matched with errors.Is against any error the client returns.
var (
	ErrNotFound        = errors.New("confluence: not found")
	ErrVersionConflict = errors.New("confluence: version conflict")
	ErrTitleExists     = errors.New("confluence: a page with this title already exists")
	ErrFileExists      = errors.New("confluence: an attachment with this file name already exists")
	ErrBadRequest      = errors.New("confluence: bad request")
	ErrUnauthorized    = errors.New("confluence: unauthorized")
	ErrForbidden       = errors.New("confluence: forbidden")
	ErrTooLarge        = errors.New("confluence: request too large")
	ErrRateLimited     = errors.New("confluence: rate limited")
	ErrGone            = errors.New("confluence: endpoint retired (410 Gone)")
	ErrServer          = errors.New("confluence: server error")
	ErrTransport       = errors.New("confluence: transport error")
	ErrNotAllowed      = errors.New("confluence: call not in the allowlist")
)

// Error is a non-2xx answer from Confluence. Its Is method maps the status
// onto the sentinels above, so callers never parse message text.
type Error struct {
	StatusCode int
	Method     string
	Path       string // path of the request, no query (queries may carry titles)
	Code       string // v2 errors[].code, when present
	Message    string // Confluence's own human message
	// Header keeps the few response headers that change what a caller does.
	LoginReason     string // X-Seraph-LoginReason (Data Center CAPTCHA lock)
	FailureCategory string // X-Failure-Category (scope mismatch on Cloud)
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("confluence: %s %s: %d: %s", e.Method, e.Path, e.StatusCode, msg)
}

// Is maps HTTP statuses onto sentinels.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrVersionConflict:
		return e.StatusCode == http.StatusConflict
	case ErrTitleExists:
		return (e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusConflict) &&
			strings.Contains(strings.ToLower(e.Message), "title already exists")
	case ErrFileExists:
		return e.StatusCode == http.StatusBadRequest &&
			strings.Contains(strings.ToLower(e.Message), "same file name")
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrTooLarge:
		return e.StatusCode == http.StatusRequestEntityTooLarge
	case ErrGone:
		return e.StatusCode == http.StatusGone
	case ErrServer:
		return e.StatusCode >= 500
	}
	return false
}

// ScopeMismatch reports Cloud's "Unauthorized; scope does not match" 401.
func (e *Error) ScopeMismatch() bool {
	return e.StatusCode == http.StatusUnauthorized &&
		(e.FailureCategory == "FAILURE_CLIENT_SCOPE_CHECK" || strings.Contains(e.Message, "scope does not match"))
}

// RateLimitError is a 429, or a 503 carrying Retry-After.
type RateLimitError struct {
	Resp       *Error
	RetryAfter time.Duration // already capped at MaxRetryAfter
	Reason     string        // RateLimit-Reason, e.g. confluence-quota-global-based
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%s (retry after %s)", e.Resp.Error(), e.RetryAfter)
}

func (e *RateLimitError) Is(target error) bool {
	return target == ErrRateLimited || e.Resp.Is(target)
}

func (e *RateLimitError) Unwrap() error { return e.Resp }

// TransportError is a request that got no HTTP answer: refused, reset,
// timed out. A write may or may not have happened.
type TransportError struct {
	Method, Path string
	Err          error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("confluence: %s %s: %v", e.Method, e.Path, e.Err)
}
func (e *TransportError) Is(target error) bool { return target == ErrTransport }
func (e *TransportError) Unwrap() error        { return e.Err }

// SourceError is an upload whose own source failed while it was read (the
// file server went away, the bytes did not match their hash). Confluence is
// not at fault, so it is not a *TransportError and trips no breaker.
type SourceError struct {
	Filename string
	Err      error
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("attachment %s: reading its source: %v", e.Filename, e.Err)
}
func (e *SourceError) Unwrap() error { return e.Err }

// NotAllowedError is a call refused before the network because it is not
// one of the calls retropub may make.
type NotAllowedError struct{ Method, Path string }

func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("confluence: %s %s is not an allowed call", e.Method, e.Path)
}
func (e *NotAllowedError) Is(target error) bool { return target == ErrNotAllowed }

// MaxRetryAfter caps absurd Retry-After values (Long.MAX has been seen).
const MaxRetryAfter = time.Hour

// ParseRetryAfter reads seconds or an HTTP-date; ok is false when absent
// or unreadable. The result is capped at MaxRetryAfter.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > MaxRetryAfter.Seconds() {
			return MaxRetryAfter, true
		}
		d = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, 0), MaxRetryAfter), true
}
