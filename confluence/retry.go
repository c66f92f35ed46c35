package confluence

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"
)

// sendSafe is send with one short in-request retry for requests that are
// safe to repeat: a GET that met a 5xx without Retry-After or lost its
// connection. Writes are never repeated here: a POST may have gone
// through, and the publish steps look before they write again (DESIGN §6).
func (c *Client) sendSafe(ctx context.Context, r request, route string) (*http.Response, error) {
	resp, err := c.send(ctx, r, route)
	if r.method != http.MethodGet || !transient(err) {
		return resp, err
	}
	t := time.NewTimer(100*time.Millisecond + rand.N(200*time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, err
	case <-t.C:
	}
	return c.send(ctx, r, route)
}

// transient is a failure a quick second try may not meet: a lost
// connection or a 5xx that did not ask us to wait.
func transient(err error) bool {
	return errors.Is(err, ErrTransport) || (errors.Is(err, ErrServer) && !errors.Is(err, ErrRateLimited))
}
