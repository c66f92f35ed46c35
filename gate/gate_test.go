package gate

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"retropub/confluence"
)

func newRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

const inst = "cloud:abc"

// send admits one request and reports it ended with status/err.
func send(t *testing.T, g *Gate, method string, o confluence.Outcome) error {
	t.Helper()
	done, err := g.Admit(context.Background(), inst, method, "GET /wiki/api/v2/pages")
	if err != nil {
		return err
	}
	done(o)
	return nil
}

func deferral(t *testing.T, err error, why Refusal) *DeferError {
	t.Helper()
	var de *DeferError
	if !errors.As(err, &de) || de.Why != why {
		t.Fatalf("want a %q deferral, got %v", why, err)
	}
	return de
}

func rateLimited(status int, retryAfter time.Duration, reason string) confluence.Outcome {
	h := http.Header{"Retry-After": {"3"}}
	return confluence.Outcome{StatusCode: status, Header: h, Err: &confluence.RateLimitError{
		Resp: &confluence.Error{StatusCode: status}, RetryAfter: retryAfter, Reason: reason}}
}

func TestCooldownIsSharedByEveryWorker(t *testing.T) {
	rdb := newRedis(t)
	a, b := New(rdb, Config{}, nil), New(rdb, Config{}, nil)
	if err := send(t, a, "GET", rateLimited(429, 3*time.Second, "")); err != nil {
		t.Fatal(err)
	}
	de := deferral(t, send(t, b, "GET", confluence.Outcome{StatusCode: 200}), RefusedCooldown)
	if d := time.Until(de.Until); d < 2*time.Second || d > 3*time.Second {
		t.Fatalf("cooldown ends in %s, want about 3s", d)
	}
}

func TestRateLimitIsFleetWide(t *testing.T) {
	rdb := newRedis(t)
	cfg := Config{Rate: 1, Burst: 3, MaxWait: time.Millisecond}
	a, b := New(rdb, cfg, nil), New(rdb, cfg, nil)
	for i, g := range []*Gate{a, b, a} {
		if err := send(t, g, "PUT", confluence.Outcome{StatusCode: 200}); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	de := deferral(t, send(t, b, "PUT", confluence.Outcome{StatusCode: 200}), RefusedRate)
	if d := time.Until(de.Until); d <= 0 || d > time.Second {
		t.Fatalf("next slot in %s", d)
	}
}

func TestInflightCapFreesWhenRequestsEnd(t *testing.T) {
	rdb := newRedis(t)
	g := New(rdb, Config{MaxInflight: 2, MaxWait: 200 * time.Millisecond}, nil)
	ctx := context.Background()
	d1, err1 := g.Admit(ctx, inst, "GET", "r")
	_, err2 := g.Admit(ctx, inst, "GET", "r")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	go func() { time.Sleep(50 * time.Millisecond); d1(confluence.Outcome{StatusCode: 200}) }()
	if _, err := g.Admit(ctx, inst, "GET", "r"); err != nil {
		t.Fatalf("third request should wait for the first to end: %v", err)
	}
	deferral(t, send(t, g, "GET", confluence.Outcome{}), RefusedInflight)
}

func serverError() confluence.Outcome {
	return confluence.Outcome{StatusCode: 503, Err: &confluence.Error{StatusCode: 503}}
}

func TestBreakerOpensFleetWideProbesAndCloses(t *testing.T) {
	testBreakerOpensFleetWideProbesAndCloses(t, newRedis(t))
}

func testBreakerOpensFleetWideProbesAndCloses(t *testing.T, rdb redis.UniversalClient) {
	cfg := Config{Failures: 3, OpenFor: time.Second, Probes: 1}
	a, b := New(rdb, cfg, nil), New(rdb, cfg, nil)
	// 4xx and 429 never trip it.
	for range 5 {
		_ = send(t, a, "GET", confluence.Outcome{StatusCode: 404, Err: &confluence.Error{StatusCode: 404}})
		_ = send(t, a, "GET", rateLimited(429, time.Millisecond, ""))
		time.Sleep(5 * time.Millisecond)
	}
	for range 3 {
		if err := send(t, a, "GET", serverError()); err != nil {
			t.Fatal(err)
		}
	}
	deferral(t, send(t, a, "GET", confluence.Outcome{}), RefusedBreaker)
	// The other worker never saw a failure, yet it is open there too.
	de := deferral(t, send(t, b, "GET", confluence.Outcome{}), RefusedBreaker)
	time.Sleep(time.Until(de.Until) + 50*time.Millisecond)
	// Half-open: one probe for the whole fleet.
	probe, err := b.Admit(context.Background(), inst, "GET", "r")
	if err != nil {
		t.Fatalf("probe refused: %v", err)
	}
	b.instance(inst).cacheOpen(time.Time{})
	if err := send(t, b, "GET", confluence.Outcome{}); err == nil {
		t.Fatal("a second probe went through")
	}
	probe(confluence.Outcome{StatusCode: 200})
	if err := send(t, b, "GET", confluence.Outcome{StatusCode: 200}); err != nil {
		t.Fatalf("closed after a good probe, still refused: %v", err)
	}
}

func TestPointsBudgetReserveAndHeaders(t *testing.T) {
	testPointsBudgetReserveAndHeaders(t, newRedis(t))
}

func testPointsBudgetReserveAndHeaders(t *testing.T, rdb redis.UniversalClient) {
	g := New(rdb, Config{PointsPerHour: 100}, nil)
	n := 0
	// Answers with no status (lost) leave our own count standing.
	for ; n < 200; n++ {
		if err := send(t, g, "POST", confluence.Outcome{}); err != nil {
			deferral(t, err, RefusedBudget)
			break
		}
	}
	if n != 95 {
		t.Fatalf("default work spent %d points, want 95 (5 kept for critical)", n)
	}
	// An answer without a quota header means Atlassian counts under 80 %:
	// our estimate drops to 75 %.
	if err := send(t, g, "GET", confluence.Outcome{StatusCode: 200, Header: http.Header{}}); err != nil {
		deferral(t, err, RefusedBudget)
	}
	if err := rdb.HSet(context.Background(), pointsKey, "used", 90).Err(); err != nil {
		t.Fatal(err)
	}
	if err := send(t, g, "PUT", confluence.Outcome{StatusCode: 200}); err != nil {
		t.Fatal(err)
	}
	if used, _ := rdb.HGet(context.Background(), pointsKey, "used").Int(); used != 75 {
		t.Fatalf("used %d after a header-less answer, want 75", used)
	}
	// Atlassian says 2 points are left: admit nothing more even though
	// our count still allows critical work.
	// Its t says 600 s; the window still ends at the top of the UTC hour.
	h := http.Header{"Ratelimit": {`"global-app-quota";r=2;t=600`}, "Date": {time.Now().UTC().Format(http.TimeFormat)}}
	if err := rdb.HSet(context.Background(), pointsKey, "used", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := send(t, g, "POST", confluence.Outcome{StatusCode: 200, Header: h}); err != nil {
		t.Fatal(err)
	}
	de := deferral(t, send(t, g, "POST", confluence.Outcome{}), RefusedBudget)
	hour := time.Until(time.Now().UTC().Truncate(time.Hour).Add(time.Hour))
	if d := time.Until(de.Until); d < hour-3*time.Second || d > hour+time.Second {
		t.Fatalf("window ends in %s, want the top of the UTC hour (%s)", d, hour)
	}
}

func TestGlobalQuota429PausesEveryCloudInstance(t *testing.T) {
	rdb := newRedis(t)
	g := New(rdb, Config{PointsPerHour: 1000}, nil)
	if err := send(t, g, "GET", rateLimited(429, 3*time.Second, "confluence-quota-global-based")); err != nil {
		t.Fatal(err)
	}
	_, err := g.Admit(context.Background(), "cloud:other", "GET", "r")
	deferral(t, err, RefusedQuotaPause)
	if _, err := g.Admit(context.Background(), "server:dc.example.com", "GET", "r"); err != nil {
		t.Fatalf("Data Center is not metered by Atlassian's quota: %v", err)
	}
}

func TestReadQuota(t *testing.T) {
	h := http.Header{}
	h.Add("Beta-RateLimit", `"global-app-quota";r=11000;t=600, "tenant-app-quota";r=900;t=1200`)
	h.Set("X-RateLimit-NearLimit", "true")
	defer func(c func() time.Time) { clock = c }(clock)
	clock = func() time.Time { return time.Date(2026, 12, 6, 14, 50, 0, 0, time.UTC) }
	q := readQuota(h)
	if q.remaining != 900 || q.resetSecs != 600 || !q.near {
		t.Fatalf("%+v", q)
	}
	// Headers that lie (confluence-api.md §8): t 12 minutes past the
	// hour, no policy name once nothing remains. The reset is the top of
	// the hour on the answer's clock (Date), not t.
	lying := http.Header{"Ratelimit": {`r=0;t=1440`}, "Date": {"Sun, 06 Dec 2026 14:48:00 GMT"}}
	if q := readQuota(lying); q.remaining != 0 || q.resetSecs != 720 {
		t.Fatalf("lying headers: %+v, want remaining 0 and reset in 720 s", q)
	}
	lying.Del("Date") // without a Date, our own clock: 14:50
	if q := readQuota(lying); q.resetSecs != 600 {
		t.Fatalf("no Date: %+v, want reset in 600 s", q)
	}
	if q := readQuota(http.Header{}); q.remaining != -1 || q.resetSecs != -1 || q.near {
		t.Fatalf("%+v", q)
	}
}

func TestAdmittedBurstLeavesSlackForArrivalJitter(t *testing.T) {
	for _, c := range []struct{ rate, burst, want int }{
		{20, 40, 38}, {20, 20, 18}, {100, 100, 90}, {1, 3, 3}, {5, 1, 1}, {0, 0, 1}, {200, 40, 30},
	} {
		if got := admittedBurst(c.rate, c.burst); got != c.want {
			t.Errorf("admittedBurst(%d, %d) = %d, want %d", c.rate, c.burst, got, c.want)
		}
	}
}
