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
	// ErrRejected is a 4xx answer that the same request will meet again
	// (405, 415, 422, …): every 4xx but 408, 409 and 429, which a repeat can
	// pass, and 401 and 404, which the error table (DESIGN §6) handles on
	// their own (re-authorisation; a page recreated, a space missing).
	ErrRejected = errors.New("confluence: request rejected")
)

// Error is a non-2xx answer from Confluence. Its Is method maps the status
// onto the sentinels above, so callers never parse message text.
type Error struct {
	StatusCode int
	Method     string
	Path       string // path of the request, no query (queries may carry titles)
	Code       string // v2 errors[].code, when present
	Message    string // Confluence's own human message
	// Exists says what a 400/409 refused because it already exists.
	// Confluence tells it only in its message; checkResponse reads that
	// once, so nothing after it looks at message text.
	Exists Existing
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
		return e.Exists == TitleExists
	case ErrFileExists:
		return e.Exists == FileExists
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
	case ErrRejected:
		switch e.StatusCode {
		case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests, http.StatusUnauthorized, http.StatusNotFound:
			return false
		}
		return e.StatusCode >= 400 && e.StatusCode < 500
	}
	return false
}

// Existing is what a write was refused for because it already exists.
type Existing int

const (
	NothingExists Existing = iota
	TitleExists            // a page with this title is in the space (400, or 409 on Data Center)
	FileExists             // an attachment with this file name is on the page (400)
)

// existing reads Confluence's "already exists" refusals, which carry no
// code of their own: only the message says which it was.
func existing(status int, message string) Existing {
	msg := strings.ToLower(message)
	switch {
	case (status == http.StatusBadRequest || status == http.StatusConflict) && strings.Contains(msg, "title already exists"):
		return TitleExists
	case status == http.StatusBadRequest && strings.Contains(msg, "same file name"):
		return FileExists
	}
	return NothingExists
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

// NotFoundError is a look-up Confluence answered (2xx) without the thing
// asked for: no space of that key, no page of that title. It is ErrNotFound
// like a 404, but Confluence said no such status, so it is not an *Error:
// every *Error is an answer checkResponse read.
type NotFoundError struct {
	Method, Path string // the look-up that came back without a match
	What         string // e.g. `space "ENG"`, `page 123`
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("confluence: %s %s: %s not found or not visible", e.Method, e.Path, e.What)
}
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ErrInvalidID matches *InvalidIDError.
var ErrInvalidID = errors.New("confluence: invalid id")

// InvalidIDError is an id that is not what the API documents (page and
// space ids are int64s written as strings; attachment ids the same with an
// optional "att" prefix). Ids are checked where they enter: as an argument
// (nothing is sent) or in Confluence's answer (nothing is kept), so a
// malformed id never reaches the mapping. No retry can fix it.
type InvalidIDError struct {
	Kind   string // page, space, attachment
	Value  string
	Answer string // "POST /wiki/api/v2/pages" when Confluence answered it; "" for an argument
}

func (e *InvalidIDError) Error() string {
	if e.Answer != "" {
		return fmt.Sprintf("confluence: %s answered %s id %q, which is not the integer id the API documents; it was not kept", e.Answer, e.Kind, e.Value)
	}
	return fmt.Sprintf("confluence: invalid %s id %q", e.Kind, e.Value)
}
func (e *InvalidIDError) Is(target error) bool { return target == ErrInvalidID }

// InputError is an argument refused before anything was sent (a search
// text with nothing left to search for). It is ErrBadRequest, as
// Confluence would have answered, without the request.
type InputError struct {
	Field, Reason string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("confluence: %s: %s", e.Field, e.Reason)
}
func (e *InputError) Is(target error) bool { return target == ErrBadRequest }

// validID reports whether s is a positive int64 in decimal, as v2 (and v1)
// ids are.
func validID(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n > 0 && strconv.FormatInt(n, 10) == s
}

func checkPageID(id string) error {
	if !validID(id) {
		return &InvalidIDError{Kind: "page", Value: id}
	}
	return nil
}

// checkAnswerID refuses an id Confluence answered that the API does not
// document, naming the call that answered it.
func checkAnswerID(method, path, kind, id string) error {
	digits := id
	if kind == "attachment" {
		digits = strings.TrimPrefix(id, "att")
	}
	if !validID(digits) {
		return &InvalidIDError{Kind: kind, Value: id, Answer: method + " " + path}
	}
	return nil
}
