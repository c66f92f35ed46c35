package confluence

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Bounded answers: a success body is decoded from a reader that fails past
// MaxAnswerBytes, so a site streaming an endless JSON array costs one
// bounded buffer, not the worker's heap (json.Decoder buffers a whole value
// before it decodes it). Error bodies were already cut at maxErrorBody.

// DefaultMaxAnswerBytes bounds one decoded answer. The largest legitimate
// answers are a page with its storage body (Confluence caps page bodies at
// a few MiB) and a 250-item result list; 16 MiB leaves room for both.
const DefaultMaxAnswerBytes = 16 << 20

// WithMaxAnswerBytes sets the bound on a decoded answer (default
// DefaultMaxAnswerBytes); n <= 0 keeps the default.
func WithMaxAnswerBytes(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxAnswer = n
		}
	}
}

// ErrAnswerTooLarge matches an *AnswerTooLargeError.
var ErrAnswerTooLarge = errors.New("confluence: answer too large")

// AnswerTooLargeError is a success answer longer than the bound. It is
// permanent: the same request gets the same answer.
type AnswerTooLargeError struct {
	Method, Path string
	Limit        int64
}

func (e *AnswerTooLargeError) Error() string {
	return fmt.Sprintf("confluence: %s %s: the answer is longer than %d bytes; stopped reading it (a misbehaving server or proxy?)", e.Method, e.Path, e.Limit)
}

// Is makes errors.Is(err, ErrAnswerTooLarge) true.
func (e *AnswerTooLargeError) Is(target error) bool { return target == ErrAnswerTooLarge }

// errPastBound is what boundedReader returns past its bound.
var errPastBound = errors.New("past the bound")

// boundedReader reads at most n bytes and then fails instead of ending, so
// a decoder cannot mistake a cut answer for a whole one.
type boundedReader struct {
	r io.Reader
	n int64 // bytes still allowed
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		// One byte more tells "exactly n" from "more than n".
		var one [1]byte
		k, err := b.r.Read(one[:])
		if k > 0 {
			return 0, errPastBound
		}
		return 0, err
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	k, err := b.r.Read(p)
	b.n -= int64(k)
	return k, err
}

// decodeAnswer decodes body into out, reading at most limit bytes.
func decodeAnswer(r request, body io.Reader, limit int64, out any) error {
	err := json.NewDecoder(&boundedReader{r: body, n: limit}).Decode(out)
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return nil
	case errors.Is(err, errPastBound):
		return &AnswerTooLargeError{Method: r.method, Path: r.path, Limit: limit}
	}
	return &TransportError{Method: r.method, Path: r.path, Err: fmt.Errorf("decode answer: %w", err)}
}
