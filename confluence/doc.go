// Package confluence is the HTTP client for the few Confluence calls
// retropub makes (DESIGN §4), and nothing else: any other method and path
// is refused before the network with ErrNotAllowed.
//
// A Client belongs to one instance and one set of credentials; build one per
// integration on a shared *http.Client (NewHTTPClient) so connections pool.
// NewCloud reaches a Cloud site through the OAuth gateway (REST v2, v1 for
// attachments and search); NewServer a Server/Data Center site at its base
// URL (REST v1). The methods are the same; what differs lives in two types
// behind one unexported interface (flavour.go), chosen at construction, so
// a method one flavour lacks does not compile. NewHTTPClient carries the
// egress policy (transport.go): internal addresses and plain http are
// refused at dial time unless allowed, and EGRESS_PROXY_URL is honoured.
//
// Every method returns errors to be checked with errors.Is / errors.As:
// *Error (any non-2xx answer, made only by checkResponse; Is maps it onto
// ErrNotFound, ErrVersionConflict, ErrTitleExists, ErrFileExists,
// ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrTooLarge, ErrGone,
// ErrServer), *RateLimitError (429, or 503 with Retry-After; RetryAfter
// already capped), *TransportError (no answer: a write may or may not have
// happened), *NotFoundError (a look-up answered without a match; also
// ErrNotFound), *InvalidIDError (an id that is not what the API documents,
// as an argument or in an answer), *InputError (an argument refused before
// sending), *NotAllowedError, and the refusals nothing more was sent for:
// *EgressError and *RedirectError (ErrEgressRefused; a 3xx answer, never
// followed, is also ErrRedirected), *CertificateError (ErrCertificate), and
// *AnswerTooLargeError (ErrAnswerTooLarge: a 2xx answer past the bound,
// WithMaxAnswerBytes).
//
// The client repeats a request itself only as its retry policy says
// (retry.go): a GET that lost its connection or met a 5xx without
// Retry-After once more after 100–300 ms, and any request once more after
// a 401 on refreshable credentials, with the credentials refreshed. Writes
// are never repeated on a failure: the job's steps look before they repeat
// a write, and asynq schedules every longer wait.
package confluence
