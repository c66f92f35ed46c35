package gate

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Leases: admission without a Redis round trip per request.
//
// A process reserves, for one lease time (LeaseTime, default 250 ms), a
// small slice of an instance's fleet-wide rate (GCRA tokens) and in-flight
// cap (slots), and of the app's hourly points, and spends it locally. Each
// refresh hands back what the last lease left unused and takes the next
// slice sized to the demand of the last one, so a busy instance costs one
// script per lease time per process instead of two per request. What a
// lease holds is written in Redis with its expiry, not only in memory: a
// process that dies (SIGKILL) holds nothing past its lease.
//
//   - Rate: tokens are taken from the same GCRA as before; a lease of n
//     tokens is admitted only when the bucket would admit n requests at
//     once, so the fleet never exceeds the rate and burst. Unused tokens
//     are returned (the TAT moves back) at the next refresh, or expire.
//   - In-flight: a process's reservation (slots in use plus headroom) is one
//     field of the instance's hash with an expiry (inflightTTL); the
//     background renewer keeps it while requests are in flight.
//   - Points: one app-wide reservation per process in the points hash,
//     with spent points and the RateLimit/NearLimit header feedback of the
//     lease reported at the next refresh (batched).
//   - A 429/503 Retry-After, a global-quota pause and a tripped breaker are
//     written at once (the report script) and published to every process
//     (cooldownChannel), which stops spending its leases on that instance.
//     A process that missed the message learns it at its next refresh.
//
// While an instance's breaker is open or half-open its requests take the
// per-request scripts (admit/report), which count the probes.

// Lease tuning.
const (
	defaultLeaseTime = 250 * time.Millisecond
	// inflightTTL is how long an in-flight reservation outlives its last
	// renewal: long enough for the renewer to survive a stall of several
	// lease times (GC, a busy host), short enough that a dead process's
	// slots come back quickly.
	inflightTTLLeases = 4
)

// spendLease is what one process may spend on one instance locally.
type spendLease struct {
	until      time.Time // tokens expire then
	tokens     int       // GCRA tokens held (rate on)
	held       int       // in-flight slots reserved in Redis (cap on)
	used       int       // slots in use by this process's requests
	demand     int       // admissions from the current lease
	lastDemand int       // admissions from the one before (sizes the next)
	renewedAt  time.Time // last refresh that reached Redis
	refreshing chan struct{}
}

// takeLocal spends one admission from the instance's lease, when it has
// one to spend. Called with in.mu held.
func (g *Gate) takeLocal(in *instance, now time.Time) bool {
	l := &in.lease
	if now.After(l.until) || in.snap.breaker {
		return false
	}
	if g.cfg.Rate > 0 && l.tokens == 0 {
		return false
	}
	if g.cfg.MaxInflight > 0 && l.used >= l.held {
		return false
	}
	if g.cfg.Rate > 0 {
		l.tokens--
	}
	l.used++
	l.demand++
	return true
}

// admitLeased admits a request of a counting instance from the leases,
// refreshing them when spent. handled false: the breaker is involved and
// the per-request admit script must decide.
func (g *Gate) admitLeased(ctx context.Context, in *instance, cost int, share float64) (handled bool, err error) {
	waited := time.Duration(0)
	for {
		if until := in.cooldown(); time.Now().Before(until) {
			return true, &DeferError{Instance: in.name, Why: RefusedCooldown, Until: until}
		}
		why, wait, err := g.takePoints(ctx, in, cost, share)
		if err != nil {
			return true, err
		}
		if why == 0 {
			why, wait, err = g.takeInstance(ctx, in)
			if err != nil || why != 0 {
				g.returnPoints(in, cost)
			}
			if err != nil {
				return true, err
			}
		}
		switch {
		case why == 0:
			return true, nil
		case why == refusedUseScripts:
			return false, nil
		}
		short := why == RefusedRate || why == RefusedInflight
		if !short || waited+wait > g.cfg.MaxWait {
			return true, &DeferError{Instance: in.name, Why: why, Until: time.Now().Add(wait)}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return true, ctx.Err()
		case <-t.C:
		}
		waited += wait
	}
}

// refusedUseScripts is takeInstance's answer when the fleet breaker is
// open or half-open: the per-request scripts count its probes.
const refusedUseScripts Refusal = -1

// takeInstance spends one rate token and one in-flight slot of in's
// lease, refreshing the lease (one script, one caller at a time) when it
// is spent or expired.
func (g *Gate) takeInstance(ctx context.Context, in *instance) (Refusal, time.Duration, error) {
	for {
		in.mu.Lock()
		now := time.Now()
		if g.takeLocal(in, now) {
			in.mu.Unlock()
			return 0, 0, nil
		}
		if ch := in.lease.refreshing; ch != nil {
			in.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return 0, 0, ctx.Err()
			}
		}
		ch := make(chan struct{})
		in.lease.refreshing = ch
		in.mu.Unlock()
		why, wait, err := g.refreshInstance(ctx, in, true)
		in.mu.Lock()
		in.lease.refreshing = nil
		close(ch)
		if err != nil || why != 0 {
			in.mu.Unlock()
			return why, wait, err
		}
		ok := g.takeLocal(in, time.Now())
		in.mu.Unlock()
		if ok {
			return 0, 0, nil
		}
		// Another caller spent the fresh lease first: go round again.
	}
}

// refreshInstance runs the lease script for in: returns the unused tokens,
// renews the in-flight reservation and, when want, takes the next slice.
func (g *Gate) refreshInstance(ctx context.Context, in *instance, want bool) (Refusal, time.Duration, error) {
	in.mu.Lock()
	l := &in.lease
	give := l.tokens
	l.tokens = 0
	wantTokens := 0
	if want {
		// The next slice: twice the last lease's demand, at least one,
		// at most a lease time's worth of the rate.
		l.lastDemand, l.demand = l.demand, 0
		wantTokens = min(max(2*l.lastDemand, 1), g.maxLeaseTokens())
	}
	used := l.used
	in.mu.Unlock()

	rate, burst, maxin := g.cfg.Rate, admittedBurst(g.cfg.Rate, g.cfg.Burst), g.cfg.MaxInflight
	res, err := leaseScript.Run(ctx, g.rdb, []string{cooldownKey(in.name), breakerKey(in.name), rateKey(in.name), heldKey(in.name), inflightKey(in.name)},
		g.proc, rate, burst, maxin, wantTokens, give, used, g.inflightTTL().Milliseconds()).Int64Slice()
	if err != nil {
		// The returned tokens are lost with the lease: the fleet's rate
		// only errs on the safe side.
		return 0, 0, fmt.Errorf("gate: lease %s: %w", in.name, err)
	}
	code, wait, granted, held, breaker := Refusal(res[0]), time.Duration(res[1])*time.Millisecond, int(res[2]), int(res[3]), res[4] == 1
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	l.renewedAt = now
	in.snap.breaker = breaker
	if maxin > 0 {
		l.held = held
	}
	switch code {
	case 0:
		l.tokens = granted
		l.until = now.Add(g.cfg.LeaseTime)
	case RefusedCooldown:
		in.noteCooldownLocked(now.Add(wait))
	}
	return code, wait, nil
}

// maxLeaseTokens bounds one lease's tokens: a lease time's worth of the
// rate, and at most a quarter of the admitted burst, so one process's
// slice never holds back the fleet for long.
// With an in-flight cap it also bounds the headroom a process reserves
// beyond its slots in use: a quarter of the cap.
func (g *Gate) maxLeaseTokens() int {
	n := 1 << 20
	if g.cfg.Rate > 0 {
		n = min(int(float64(g.cfg.Rate)*g.cfg.LeaseTime.Seconds()), admittedBurst(g.cfg.Rate, g.cfg.Burst)/4)
	}
	if g.cfg.MaxInflight > 0 {
		n = min(n, g.cfg.MaxInflight/4)
	}
	return max(n, 1)
}

func (g *Gate) inflightTTL() time.Duration { return inflightTTLLeases * g.cfg.LeaseTime }

// release ends a leased request: its slot goes back to this process's
// reservation (reused until the lease ends, handed back at the next
// refresh or renewal).
func (in *instance) release() {
	in.mu.Lock()
	if in.lease.used > 0 {
		in.lease.used--
	}
	in.mu.Unlock()
}

// cooldown is the instance's Retry-After end as this process knows it.
func (in *instance) cooldown() time.Time {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.snap.cooldownUntil
}

// noteCooldownLocked extends the cooldown and drops the lease's tokens:
// nothing is sent to the instance before it ends. Called with in.mu held.
func (in *instance) noteCooldownLocked(until time.Time) {
	if until.After(in.snap.cooldownUntil) {
		in.snap.cooldownUntil = until
	}
	in.lease.tokens = 0
}

// renew runs every half lease time: it keeps the in-flight reservations
// of instances with requests in flight, hands back what idle instances
// still hold, and reports the points spent and the header feedback.
func (g *Gate) renew(ctx context.Context) {
	t := time.NewTicker(g.cfg.LeaseTime / 2)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		ins := make([]*instance, 0, len(g.instances))
		for _, in := range g.instances {
			ins = append(ins, in)
		}
		g.mu.Unlock()
		now := time.Now()
		tried, tickErr := 0, error(nil)
		for _, in := range ins {
			in.mu.Lock()
			l := in.lease
			stale := now.Sub(l.renewedAt) >= g.cfg.LeaseTime/2
			holds := g.cfg.MaxInflight > 0 && (l.used > 0 || (l.held > l.used && now.After(l.until))) ||
				g.cfg.Rate > 0 && l.tokens > 0 && now.After(l.until)
			busy := l.refreshing != nil
			in.mu.Unlock()
			if stale && holds && !busy {
				tried++
				if _, _, err := g.refreshInstance(ctx, in, false); err != nil && tickErr == nil {
					tickErr = err
				}
			}
		}
		tried++ // flushPoints answers nil when it had nothing to report: no news either way
		if err := g.flushPoints(ctx, now); err != nil && tickErr == nil {
			tickErr = err
		}
		if tried > 1 || tickErr != nil {
			failing = g.noteRenewal(ctx, failing, tickErr)
		}
	}
}

// noteRenewal logs the renewer's first failure and its recovery, not every
// tick of an outage (the requests themselves report Redis errors).
func (g *Gate) noteRenewal(ctx context.Context, failing bool, err error) bool {
	switch {
	case err != nil && ctx.Err() == nil && !failing:
		g.log.Warn("gate: lease renewal failing; leases expire until Redis answers", zap.Error(err))
		return true
	case err == nil && failing:
		g.log.Info("gate: lease renewal works again")
		return false
	}
	return failing
}
