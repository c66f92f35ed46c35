package gate

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"retropub/confluence"
)

func newMiniredis(t *testing.T) (*miniredis.Miniredis, redis.UniversalClient) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return mr, rdb
}

// roundTrips counts the commands a client sends (a script is one; its
// inner calls, which miniredis counts too, are not round trips).
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// With counting limits on, a process spends leases: far fewer Redis
// round trips than requests, and the fleet's count still gets every point.
func TestLeasesSpendLocallyAndReportEverything(t *testing.T) {
	_, rdb := newMiniredis(t)
	var rt roundTrips
	rdb.(*redis.Client).AddHook(&rt)
	g := New(rdb, Config{Rate: 1000, Burst: 1000, MaxInflight: 100, PointsPerHour: 100000}, nil)
	if err := send(t, g, "POST", confluence.Outcome{StatusCode: 200}); err != nil {
		t.Fatal(err)
	}
	before := rt.n.Load()
	const n = 100
	for range n {
		if err := send(t, g, "POST", confluence.Outcome{StatusCode: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if trips := rt.n.Load() - before; trips > n/5 {
		t.Fatalf("%d leased requests made %d Redis round trips, want at most %d", n, trips, n/5)
	}
	g.Close() // hands the slices back and reports what was spent
	used, _ := rdb.HGet(context.Background(), pointsKey, "used").Int()
	if used != n+1 {
		t.Fatalf("fleet count %d points after %d writes", used, n+1)
	}
	if fields, _ := rdb.HKeys(context.Background(), pointsKey).Result(); len(fields) != 4 {
		t.Fatalf("points hash after Close: %v, want no lease left", fields)
	}
	if held, _ := rdb.HLen(context.Background(), heldKey(inst)).Result(); held != 0 {
		t.Fatalf("%d in-flight reservations left after Close", held)
	}
}

// A 429 stops another process's leases at once (published), not when its
// lease runs out.
func TestCooldownStopsOtherProcessesLeasesAtOnce(t *testing.T) {
	_, rdb := newMiniredis(t)
	a := New(rdb, Config{Rate: 1000, Burst: 1000}, nil)
	b := New(rdb, Config{Rate: 1000, Burst: 1000, LeaseTime: time.Minute}, nil)
	defer a.Close()
	defer b.Close()
	for range 3 { // b holds a lease with tokens to spare for a minute
		if err := send(t, b, "GET", confluence.Outcome{StatusCode: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if err := send(t, a, "GET", rateLimited(429, 3*time.Second, "")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		err := send(t, b, "GET", confluence.Outcome{StatusCode: 200})
		if err != nil {
			de := deferral(t, err, RefusedCooldown)
			if d := time.Until(de.Until); d < 2*time.Second || d > 3*time.Second {
				t.Fatalf("cooldown ends in %s, want about 3s", d)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("another process kept spending its lease through a 429 cooldown")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// What a dead process held (it never renews nor hands back) is free again
// after its lease: in-flight slots after 4 lease times, points after one.
func TestLeasesOfADeadProcessExpire(t *testing.T) {
	_, rdb := newMiniredis(t)
	// Long enough that a loaded machine (-race, 2 busy cores) still makes
	// the "still held" checks inside the lease.
	const lease = 300 * time.Millisecond
	dead := New(rdb, Config{MaxInflight: 2, PointsPerHour: 100, LeaseTime: lease, MaxWait: time.Millisecond}, nil)
	const inflightLife = 4 * lease // a reservation outlives its renewal that long
	// both slots, never reported
	for range 2 {
		if _, err := dead.Admit(context.Background(), inst, "POST", "r"); err != nil {
			t.Fatal(err)
		}
	}
	// and a large slice of the points
	if why, _, err := dead.refreshPoints(context.Background(), 100, 1, 60, 1); err != nil || why != 0 {
		t.Fatal(why, err)
	}
	dead.stop() // SIGKILL: the renewer stops, nothing is handed back
	<-dead.stopped
	killed := time.Now()

	live := New(rdb, Config{MaxInflight: 2, LeaseTime: lease, MaxWait: time.Millisecond}, nil)
	defer live.Close()
	deferral(t, send(t, live, "POST", confluence.Outcome{StatusCode: 200}), RefusedInflight)
	// probe only refreshes points slices (no renewer runs for it).
	probe := New(rdb, Config{PointsPerHour: 100, LeaseTime: lease}, nil)
	base := func() int {
		probe.points.mu.Lock()
		defer probe.points.mu.Unlock()
		return probe.points.base
	}
	if _, _, err := probe.refreshPoints(context.Background(), 100, 1, 5, 1); err != nil {
		t.Fatal(err)
	}
	if base() < 60 {
		t.Fatalf("fleet count %d while the dead process's 60-point slice is live", base())
	}
	time.Sleep(lease + 10*time.Millisecond)
	if _, _, err := probe.refreshPoints(context.Background(), 100, 1, 5, 1); err != nil {
		t.Fatal(err)
	}
	if base() >= 60 {
		t.Fatalf("fleet count %d: the dead process's points slice outlived its lease", base())
	}
	for send(t, live, "POST", confluence.Outcome{StatusCode: 200}) != nil {
		if time.Since(killed) > inflightLife+500*time.Millisecond {
			t.Fatal("the dead process's in-flight slots outlived 4 lease times")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The breaker works the same for instances whose requests are leased:
// open fleet-wide, one probe, closed after it, back to the leases.
func TestBreakerWithLeasedRequests(t *testing.T) {
	_, rdb := newMiniredis(t)
	cfg := Config{Rate: 1000, Burst: 1000, Failures: 3, OpenFor: time.Second, Probes: 1}
	a, b := New(rdb, cfg, nil), New(rdb, cfg, nil)
	defer a.Close()
	defer b.Close()
	if err := send(t, b, "GET", confluence.Outcome{StatusCode: 200}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := send(t, a, "GET", serverError()); err != nil {
			t.Fatal(err)
		}
	}
	deferral(t, send(t, a, "GET", confluence.Outcome{}), RefusedBreaker)
	de := deferral(t, send(t, b, "GET", confluence.Outcome{}), RefusedBreaker)
	time.Sleep(time.Until(de.Until) + 50*time.Millisecond)
	probe, err := b.Admit(context.Background(), inst, "GET", "r")
	if err != nil {
		t.Fatalf("probe refused: %v", err)
	}
	b.instance(inst).cacheOpen(time.Time{})
	if err := send(t, b, "GET", confluence.Outcome{}); err == nil {
		t.Fatal("a second probe went through")
	}
	probe(confluence.Outcome{StatusCode: 200})
	for range 5 {
		if err := send(t, b, "GET", confluence.Outcome{StatusCode: 200}); err != nil {
			t.Fatalf("closed after a good probe, still refused: %v", err)
		}
	}
	if b.instance(inst).snap.breaker {
		t.Fatal("closed breaker, but requests still take the per-request scripts")
	}
}
