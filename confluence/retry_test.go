package confluence

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock records the pauses the policy asks for and waits for none.
type fakeClock struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (f *fakeClock) Now() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	return ctx.Err()
}

// statusSequence answers the given statuses in order, then 200 with body.
func statusSequence(statuses []int, body string) (http.HandlerFunc, *atomic.Int64) {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i < len(statuses) {
			w.WriteHeader(statuses[i])
			return
		}
		w.Write([]byte(body))
	}, &n
}

func TestRetryPolicy(t *testing.T) {
	const spaces = `{"results":[{"id":"7","key":"ENG"}]}`
	cases := []struct {
		name     string
		statuses []int
		call     func(c *Client) error
		sends    int64
		sleeps   int
		ok       bool
	}{
		{"GET 502 then 200: one quick repeat", []int{502}, getSpace, 2, 1, true},
		{"GET 502 twice: one repeat only", []int{502, 502}, getSpace, 2, 1, false},
		{"GET 404: not repeated", []int{404}, getSpace, 1, 0, false},
		{"GET 503 with no Retry-After is transient", []int{503}, getSpace, 2, 1, true},
		{"POST 502: a write is never repeated", []int{502}, createPage, 1, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := statusSequence(tc.statuses, spaces)
			c, hits := testClient(t, h)
			clk := &fakeClock{}
			c.retry.clock = clk
			err := tc.call(c)
			if (err == nil) != tc.ok || hits.Load() != tc.sends || len(clk.sleeps) != tc.sleeps {
				t.Fatalf("err %v, %d sends, sleeps %v; want ok=%v %d sends %d sleeps", err, hits.Load(), clk.sleeps, tc.ok, tc.sends, tc.sleeps)
			}
			for _, d := range clk.sleeps {
				if d < 100*time.Millisecond || d >= 300*time.Millisecond {
					t.Errorf("pause %v outside 100–300 ms", d)
				}
			}
		})
	}
}

func getSpace(c *Client) error { _, err := c.SpaceByKey(context.Background(), "ENG"); return err }
func createPage(c *Client) error {
	_, err := c.CreatePage(context.Background(), NewPage{SpaceID: "7", Title: "T", Body: "b"})
	return err
}

// A 401 refreshes once and repeats once; after the refresh a GET gets its
// quick repeat again; a second 401 is returned, not refreshed again.
func TestRetryPolicyRefresh(t *testing.T) {
	h, _ := statusSequence([]int{401, 502, 401}, `{"results":[{"id":"7","key":"ENG"}]}`)
	c, hits := testClient(t, h)
	rf := &countingRefresher{}
	c.auth = rf
	clk := &fakeClock{}
	c.retry.clock = clk
	_, err := c.SpaceByKey(context.Background(), "ENG")
	if !errors.Is(err, ErrUnauthorized) || hits.Load() != 3 || rf.refreshes.Load() != 1 || len(clk.sleeps) != 1 {
		t.Fatalf("err %v, %d sends, %d refreshes, sleeps %v", err, hits.Load(), rf.refreshes.Load(), clk.sleeps)
	}
}

// The clock's time is what Retry-After dates are read against.
func TestRetryAfterDateReadOnTheClock(t *testing.T) {
	c, _ := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "Tue, 01 Dec 2026 12:00:40 GMT")
		w.WriteHeader(429)
	})
	c.retry.clock = &fakeClock{}
	_, err := c.SpaceByKey(context.Background(), "ENG")
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != 40*time.Second {
		t.Fatalf("%v, want retry after 40s on the injected clock", err)
	}
}
