// Package confluence is the HTTP client for the few Confluence calls
// retropub makes (DESIGN §4), and nothing else: any other method and path
// is refused before the network with ErrNotAllowed.
//
// A Client belongs to one instance and one set of credentials; build one per
// integration on a shared *http.Client (NewHTTPClient) so connections pool.
//
// Every method returns errors to be checked with errors.Is / errors.As:
// *Error (any non-2xx answer; Is maps it onto ErrNotFound, ErrVersionConflict,
// ErrTitleExists, ErrFileExists, ErrBadRequest, ErrUnauthorized,
// ErrForbidden, ErrTooLarge, ErrGone, ErrServer), *RateLimitError (429, or
// 503 with Retry-After; RetryAfter already capped), *TransportError (no
// answer: a write may or may not have happened) and *NotAllowedError.
//
// The client never retries a request itself: the job's steps look before
// they repeat a write, and asynq schedules the waits.
package confluence
