package gate

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"retropub/confluence"
)

// With every counting limit off, requests cost no Redis round trip once
// the state snapshot is read; this process's own 429 still holds it back.
func TestNoLimitsNoRoundTripPerRequest(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	g := New(rdb, Config{}, nil)
	if err := send(t, g, "GET", confluence.Outcome{StatusCode: 200}); err != nil {
		t.Fatal(err)
	}
	before := mr.CommandCount()
	for range 20 {
		if err := send(t, g, "POST", confluence.Outcome{StatusCode: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if n := mr.CommandCount() - before; n != 0 {
		t.Fatalf("20 requests with no limits made %d Redis commands, want 0", n)
	}
	if err := send(t, g, "GET", rateLimited(429, 3*time.Second, "")); err != nil {
		t.Fatal(err)
	}
	deferral(t, send(t, g, "GET", confluence.Outcome{StatusCode: 200}), RefusedCooldown)
	// and the cooldown reached Redis for the rest of the fleet
	deferral(t, send(t, New(rdb, Config{}, nil), "GET", confluence.Outcome{StatusCode: 200}), RefusedCooldown)
}

// A counting limit keeps the per-request script.
func TestRateLimitStillCountsEveryRequest(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	g := New(rdb, Config{Rate: 1000, Burst: 100}, nil)
	before := mr.CommandCount()
	for range 5 {
		if err := send(t, g, "GET", confluence.Outcome{StatusCode: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if n := mr.CommandCount() - before; n < 5 {
		t.Fatalf("5 rate-limited requests made %d Redis commands, want one script each at least", n)
	}
}
