// Package gate admits each Confluence request to its instance: the
// instance's Retry-After cooldown, its circuit breaker, its fleet-wide
// request rate (GCRA) and in-flight cap, and, for Cloud, the app's hourly
// points budget and Atlassian's global-quota pause (DESIGN §4). It
// implements confluence.Gate.
//
// With a counting limit on (rate, in-flight cap, points budget) a process
// admits from leases: slices of the fleet's limits it reserves in Redis for
// a lease time and spends locally (lease.go); a 429/503, a quota pause or a
// tripped breaker is written and published to the fleet at once
// (events.go). With none on, only the cooldown and breaker matter
// (fastpath.go). While a breaker is open or half-open, each request runs
// one script to admit it and one to report how it ended. What is refused
// is not sent: Admit returns a *DeferError saying when to come back, which
// jobs turns into a deferral, not a failure.
package gate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/confluence"
	"retropub/internal/randhex"
)

// Config holds the limits; a zero limit switches that gate off.
type Config struct {
	Rate          int           // requests per second per instance, fleet-wide (CONFLUENCE_RATE)
	Burst         int           // GCRA burst (CONFLUENCE_BURST)
	MaxInflight   int           // concurrent requests per instance, fleet-wide (CONFLUENCE_MAX_INFLIGHT)
	PointsPerHour int           // the app's Cloud points budget (ATLASSIAN_POINTS_PER_HOUR)
	Failures      int           // consecutive failures that open a breaker (BREAKER_FAILURES)
	OpenFor       time.Duration // how long a breaker stays open (BREAKER_OPEN)
	// RequestTimeout bounds a request (CONFLUENCE_TIMEOUT); an in-flight
	// slot whose holder died frees itself after it.
	RequestTimeout time.Duration
	// Probes is how many requests the fleet lets through a half-open
	// breaker at once; default 2.
	Probes int
	// MaxWait is how long Admit waits in-process for a rate or in-flight
	// slot before deferring the task instead; default 2 s.
	MaxWait time.Duration
	// LeaseTime is how long a process spends a slice of an instance's
	// rate and of the points budget locally (lease.go); default 250 ms.
	// What a process holds when it dies is free again after it (in-flight
	// slots after four).
	LeaseTime time.Duration
}

// GET costs 1 point plus 1 per object returned; the object count is not
// known before the answer, so admission reserves 2 (the common one-object
// look-up) and the RateLimit headers correct the count (DESIGN §4).
const (
	getCost   = 2
	writeCost = 1
)

// Gate is safe for concurrent use; one per process.
type Gate struct {
	rdb redis.UniversalClient
	cfg Config
	log *zap.Logger

	mu        sync.Mutex
	instances map[string]*instance

	proc    string // this process in the fleet's lease records
	points  pointsLease
	started sync.Once
	stop    context.CancelFunc
	stopped chan struct{}
}

// New returns a gate on rdb.
func New(rdb redis.UniversalClient, cfg Config, log *zap.Logger) *Gate {
	if cfg.Probes <= 0 {
		cfg.Probes = 2
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 2 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = 30 * time.Second
	}
	if cfg.LeaseTime <= 0 {
		cfg.LeaseTime = defaultLeaseTime
	}
	if log == nil {
		log = zap.NewNop()
	}
	g := &Gate{rdb: rdb, cfg: cfg, log: log, instances: map[string]*instance{}, proc: randhex.String(12)}
	g.points.fb = noFeedback()
	return g
}

// start runs the lease renewer and the cooldown listener, once, when the
// first leased request comes: a gate whose limits are all off never needs
// them.
func (g *Gate) start() {
	g.started.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		g.stop, g.stopped = cancel, make(chan struct{})
		ready := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); g.renew(ctx) }()
		go func() { defer wg.Done(); g.listen(ctx, ready) }()
		go func() { wg.Wait(); close(g.stopped) }()
		// Leases start once this process hears the fleet's cooldowns.
		select {
		case <-ready:
		case <-time.After(2 * time.Second):
		}
	})
}

// Close stops the renewer and the listener and hands back what the
// process's leases hold, so the fleet need not wait for them to expire.
func (g *Gate) Close() {
	g.started.Do(func() {}) // nothing starts after Close
	if g.stop == nil {
		return
	}
	g.stop()
	<-g.stopped
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	g.handBack(ctx)
}

func (g *Gate) instance(name string) *instance {
	g.mu.Lock()
	defer g.mu.Unlock()
	in, ok := g.instances[name]
	if !ok {
		in = newInstance(name, g.cfg, g.log)
		g.instances[name] = in
	}
	return in
}

// Admit implements confluence.Gate.
func (g *Gate) Admit(ctx context.Context, inst, method, route string) (func(confluence.Outcome), error) {
	in := g.instance(inst)
	if until, open := in.sharedOpen(); open {
		return nil, &DeferError{Instance: inst, Why: RefusedBreaker, Until: until, Cause: in.openCause()}
	}
	bdone, err := in.allow()
	if err != nil {
		return nil, err
	}
	if g.counting(in) {
		g.start()
		cost := writeCost
		if method == http.MethodGet {
			cost = getCost
		}
		handled, err := g.admitLeased(ctx, in, cost, share(ctx))
		if err != nil {
			bdone(errRefused)
			return nil, err
		}
		if handled {
			return func(o confluence.Outcome) { in.release(); g.report(in, bdone, "", false, true, o) }, nil
		}
	}
	if !g.counting(in) {
		handled, err := g.admitCached(ctx, in)
		if err != nil {
			bdone(errRefused)
			return nil, err
		}
		if handled {
			return func(o confluence.Outcome) { g.report(in, bdone, "", false, false, o) }, nil
		}
	}
	member := randhex.String(12)
	probe, err := g.admit(ctx, in, method, member)
	if err != nil {
		bdone(errRefused)
		return nil, err
	}
	return func(o confluence.Outcome) { g.report(in, bdone, member, probe, false, o) }, nil
}

// errRefused is what the local breaker hears about a request the gate
// refused: neither a success nor a failure.
var errRefused = errors.New("gate: refused before sending")

// admit runs the admit script, waiting in-process for short rate and
// in-flight waits and deferring the task for everything else.
func (g *Gate) admit(ctx context.Context, in *instance, method, member string) (probe bool, err error) {
	limit, cost := g.pointsLimit(in), writeCost
	if method == http.MethodGet {
		cost = getCost
	}
	keys := []string{cooldownKey(in.name), breakerKey(in.name), rateKey(in.name), inflightKey(in.name), pointsKey, pauseKey}
	waited := time.Duration(0)
	for {
		res, err := g.runAdmit(ctx, keys, member, limit, cost, share(ctx), (g.cfg.RequestTimeout + 5*time.Second).Milliseconds())
		if err != nil {
			return false, fmt.Errorf("gate: admit %s: %w", in.name, err)
		}
		why, wait := Refusal(res[0]), time.Duration(res[1])*time.Millisecond
		if why == 0 {
			if res[2] == 0 {
				in.noteBreakerGone() // no breaker key: back to the leases
			}
			return res[2] == 1, nil
		}
		if why == RefusedBreaker {
			in.cacheOpen(time.Now().Add(wait))
		}
		short := why == RefusedRate || why == RefusedInflight || why == RefusedProbes
		if !short || waited+wait > g.cfg.MaxWait {
			de := &DeferError{Instance: in.name, Why: why, Until: time.Now().Add(wait)}
			if why == RefusedBreaker {
				de.Cause = in.openCause()
			}
			return false, de
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
		waited += wait
	}
}

// admittedBurst is the part of the configured burst the fleet spends.
// The GCRA admits a request a moment before it reaches Confluence, and
// that moment varies (a Redis round trip, the Go scheduler, a connection
// from the pool) by tens of milliseconds on a busy host; requests admitted
// evenly can arrive bunched by up to rate × that spread. A server whose
// token bucket has the same rate and burst would answer those with 429,
// and each 429 quiets the instance for a whole Retry-After. So the fleet
// leaves 100 ms worth of requests of the burst unused, at most a quarter
// of it, and the server's bucket keeps that much slack.
func admittedBurst(rate, burst int) int {
	reserve := min((rate+9)/10, burst/4)
	return max(burst-reserve, 1)
}

// share is the part of the hourly budget a request may spend, by the
// priority its task gave it (confluence.WithPriority): low work stops
// where Atlassian says "near the limit" (20 % left), normal work keeps the
// last 5 % for critical work (set-up checks a person waits for).
func share(ctx context.Context) float64 {
	switch confluence.PriorityOf(ctx) {
	case confluence.PriorityCritical:
		return 1
	case confluence.PriorityLow:
		return 0.8
	}
	return 0.95
}

// report tells the breaker and Redis how a request ended. A leased
// request's quota headers wait for the next points refresh unless they
// say the budget is nearly spent; its 429/503 and breaker trip are written
// and published at once.
func (g *Gate) report(in *instance, bdone func(error), member string, probe, leased bool, o confluence.Outcome) {
	failed, excluded := isFailure(o.Err), isExcluded(o.Err)
	if failed {
		in.noteFailure(o.Err)
	}
	bdone(o.Err)
	verdict := 0
	switch {
	case in.takeTripped() || (probe && failed):
		verdict = 2
	case probe && excluded:
		verdict = 3
	case probe:
		verdict = 1
	}
	var cooldown, pause time.Duration
	var rl *confluence.RateLimitError
	if errors.As(o.Err, &rl) {
		cooldown = rl.RetryAfter
		if strings.HasSuffix(rl.Reason, "quota-global-based") && strings.HasPrefix(in.name, "cloud:") {
			pause = untilQuotaResets(rl.RetryAfter, o.Header.Get("Retry-After") != "", time.Now())
		}
	}
	limit := g.pointsLimit(in)
	q := quota{remaining: -1, resetSecs: -1}
	if limit > 0 {
		q = readQuota(o.Header)
	}
	resetMS := int64(-1)
	if q.resetSecs >= 0 {
		resetMS = q.resetSecs * 1000
	}
	near := 0
	if q.near {
		near = 1
	}
	in.noteReport(cooldown, verdict)
	if pause > 0 {
		g.notePause(time.Now().Add(pause))
	}
	urgentQuota, ans := false, answered(o)
	if leased && limit > 0 {
		fb := feedbackOf(q, o)
		if urgentQuota = g.quotaUrgent(fb, limit); !urgentQuota {
			g.noteQuota(fb)
			q, resetMS, near, ans = quota{remaining: -1, resetSecs: -1}, -1, 0, 0
		}
	}
	if leased && cooldown == 0 && pause == 0 && verdict == 0 && !urgentQuota {
		return // batched: the next lease refresh reports it (lease.go)
	}
	if member == "" && cooldown == 0 && pause == 0 && verdict == 0 && !urgentQuota {
		return // admitted from the snapshot, nothing to record (fastpath.go)
	}
	// The request is over; its report must land even if the task's
	// context has just ended.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := g.runReport(ctx,
		[]string{cooldownKey(in.name), breakerKey(in.name), inflightKey(in.name), pointsKey, pauseKey},
		member, cooldown.Milliseconds(), pause.Milliseconds(), verdict, g.cfg.OpenFor.Milliseconds(),
		q.remaining, resetMS, near, limit, ans)
	if err != nil {
		g.log.Warn("gate: report request outcome", zap.String("instance", in.name), zap.Error(err))
	}
	if urgentQuota {
		g.dropPointsSlice()
	}
	if cooldown > 0 || pause > 0 || verdict == 2 {
		g.publish(ctx, in.name, cooldown, pause, verdict == 2)
	}
	switch verdict {
	case 1:
		in.cacheOpen(time.Time{})
		g.log.Info("circuit breaker closed", zap.String("instance", in.name))
	case 2:
		in.cacheOpen(time.Now().Add(g.cfg.OpenFor))
		g.log.Warn("circuit breaker open", zap.String("instance", in.name), zap.Duration("for", g.cfg.OpenFor), zap.Error(o.Err))
	}
	if cooldown > 0 {
		g.log.Info("instance cooldown", zap.String("instance", in.name), zap.Duration("for", cooldown), zap.Bool("quota_pause", pause > 0))
	}
}

// answered is 1 when Confluence answered the request other than with a 429.
func answered(o confluence.Outcome) int {
	if o.StatusCode > 0 && o.StatusCode != http.StatusTooManyRequests {
		return 1
	}
	return 0
}

// untilQuotaResets is how long the app's spent global quota stays spent:
// Atlassian's Retry-After, which counts to the top of its UTC hour, or
// our own top of the hour when it sent none.
func untilQuotaResets(retryAfter time.Duration, announced bool, now time.Time) time.Duration {
	if announced && retryAfter > 0 {
		return retryAfter
	}
	return now.UTC().Truncate(time.Hour).Add(time.Hour).Sub(now)
}
