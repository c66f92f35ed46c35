// Package confluence is the HTTP client for the few Confluence calls
// retropub makes (DESIGN §4), and nothing else: any other method and path
// is refused before the network with ErrNotAllowed.
//
// A Client belongs to one instance and one set of credentials; build one per
// integration on a shared *http.Client (NewHTTPClient) so connections pool.
// NewCloud reaches a Cloud site through the OAuth gateway (REST v2, v1 for
// attachments and search); NewServer a Server/Data Center site at its base
// URL (REST v1), with the same methods. NewHTTPClient carries the egress
// policy (transport.go): internal addresses and plain http are refused at
// dial time unless allowed, and EGRESS_PROXY_URL is honoured.
//
// Every method returns errors to be checked with errors.Is / errors.As:
// *Error (any non-2xx answer; Is maps it onto ErrNotFound, ErrVersionConflict,
// ErrTitleExists, ErrFileExists, ErrBadRequest, ErrUnauthorized,
// ErrForbidden, ErrTooLarge, ErrGone, ErrServer), *RateLimitError (429, or
// 503 with Retry-After; RetryAfter already capped), *TransportError (no
// answer: a write may or may not have happened), *NotAllowedError, and the
// refusals nothing more was sent for: *EgressError and *RedirectError
// (ErrEgressRefused; a 3xx answer, never followed, is also ErrRedirected),
// *CertificateError (ErrCertificate), and *AnswerTooLargeError
// (ErrAnswerTooLarge: a 2xx answer past the bound, WithMaxAnswerBytes).
//
// The client never retries a request itself: the job's steps look before
// they repeat a write, and asynq schedules the waits.
package confluence
