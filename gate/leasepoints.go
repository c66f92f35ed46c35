package gate

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// pointsLease is this process's slice of the app's hourly points (Cloud),
// one for every instance: the fleet-wide points hash is touched about once
// a lease time per process, not twice per request.
type pointsLease struct {
	mu         sync.Mutex
	until      time.Time // the slice expires then
	granted    int       // points reserved for this process in Redis
	spent      int       // of granted
	base       int       // the fleet's count (used + others' slices) at the refresh
	unreported int       // spent since the last refresh: added to used there
	demand     int       // points spent from the current lease
	lastDemand int
	renewedAt  time.Time
	pauseUntil time.Time // Atlassian's global quota is spent until then
	fb         feedback
	refreshing chan struct{}
}

// feedback is the quota headers of the answers since the last refresh,
// merged: reported with it, not per request.
type feedback struct {
	remaining int64 // lowest r seen; -1 none
	resetMS   int64 // latest reset window; -1 none
	near      bool
	bare      bool // an answer other than 429 carried no r
}

func noFeedback() feedback { return feedback{remaining: -1, resetMS: -1} }

func (f *feedback) pending() bool { return f.remaining >= 0 || f.resetMS >= 0 || f.near || f.bare }

func (f *feedback) merge(o feedback) {
	if o.remaining >= 0 && (f.remaining < 0 || o.remaining < f.remaining) {
		f.remaining = o.remaining
	}
	if o.resetMS >= 0 {
		f.resetMS = o.resetMS
	}
	f.near = f.near || o.near
	f.bare = f.bare || o.bare
}

// maxPointsLease bounds one slice: a twentieth of the budget, so a few
// processes' slices never hold most of it.
func maxPointsLease(limit int) int { return max(limit/20, getCost) }

// takePoints spends cost points of a Cloud instance's request from the
// process's slice, refreshing it when spent or expired.
func (g *Gate) takePoints(ctx context.Context, in *instance, cost int, share float64) (Refusal, time.Duration, error) {
	limit := g.pointsLimit(in)
	if limit <= 0 {
		return 0, 0, nil
	}
	p := &g.points
	for {
		p.mu.Lock()
		now := time.Now()
		if now.Before(p.pauseUntil) {
			until := p.pauseUntil
			p.mu.Unlock()
			return RefusedQuotaPause, until.Sub(now), nil
		}
		if p.takeLocal(now, cost, limit, share) {
			p.mu.Unlock()
			return 0, 0, nil
		}
		if ch := p.refreshing; ch != nil {
			p.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return 0, 0, ctx.Err()
			}
		}
		ch := make(chan struct{})
		p.refreshing = ch
		p.lastDemand, p.demand = p.demand, 0
		want := min(max(2*p.lastDemand, cost), maxPointsLease(limit))
		p.mu.Unlock()
		why, wait, err := g.refreshPoints(ctx, limit, share, want, cost)
		p.mu.Lock()
		p.refreshing = nil
		close(ch)
		if err != nil || why != 0 {
			p.mu.Unlock()
			return why, wait, err
		}
		ok := p.takeLocal(time.Now(), cost, limit, share)
		p.mu.Unlock()
		if ok {
			return 0, 0, nil
		}
		// Another request spent the fresh slice first: go round again.
	}
}

// takeLocal: with p.mu held.
func (p *pointsLease) takeLocal(now time.Time, cost, limit int, share float64) bool {
	if now.After(p.until) || p.spent+cost > p.granted || float64(p.base+p.spent+cost) > float64(limit)*share {
		return false
	}
	p.spent += cost
	p.unreported += cost
	p.demand += cost
	return true
}

// returnPoints gives back the points of a request refused after they were
// taken (by its instance's gates).
func (g *Gate) returnPoints(in *instance, cost int) {
	if g.pointsLimit(in) <= 0 {
		return
	}
	p := &g.points
	p.mu.Lock()
	if p.spent >= cost && p.unreported >= cost {
		p.spent -= cost
		p.unreported -= cost
		p.demand -= cost
	}
	p.mu.Unlock()
}

// noteQuota keeps an answer's quota headers for the next refresh.
func (g *Gate) noteQuota(f feedback) {
	if !f.pending() {
		return
	}
	g.points.mu.Lock()
	g.points.fb.merge(f)
	g.points.mu.Unlock()
}

// refreshPoints runs the points lease script: reports what was spent and
// the merged headers, and reserves up to want points, refusing when fewer
// than need are left for this priority (want 0: hand the slice back).
func (g *Gate) refreshPoints(ctx context.Context, limit int, share float64, want, need int) (Refusal, time.Duration, error) {
	p := &g.points
	p.mu.Lock()
	spent, fb := p.unreported, p.fb
	p.unreported, p.fb = 0, noFeedback()
	p.mu.Unlock()
	near, bare := 0, 0
	if fb.near {
		near = 1
	}
	if fb.bare {
		bare = 1
	}
	res, err := pointsLeaseScript.Run(ctx, g.rdb, []string{pointsKey, pauseKey},
		g.proc, limit, share, want, need, spent, g.cfg.LeaseTime.Milliseconds(), fb.remaining, fb.resetMS, near, bare).Int64Slice()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		// Report it with the next refresh instead.
		p.unreported += spent
		p.fb.merge(fb)
		return 0, 0, fmt.Errorf("gate: points lease: %w", err)
	}
	code, wait := Refusal(res[0]), time.Duration(res[1])*time.Millisecond
	now := time.Now()
	p.renewedAt = now
	p.granted, p.spent, p.base = int(res[2]), 0, int(res[3])
	p.until = now.Add(g.cfg.LeaseTime)
	if code == RefusedQuotaPause {
		if until := now.Add(wait); until.After(p.pauseUntil) {
			p.pauseUntil = until
		}
	}
	if code != 0 {
		p.granted, p.until = 0, time.Time{}
	}
	return code, wait, nil
}

// flushPoints reports an expired slice's spending and feedback and hands
// the slice back, so the fleet's count does not wait for demand.
func (g *Gate) flushPoints(ctx context.Context, now time.Time) error {
	p := &g.points
	p.mu.Lock()
	due := (p.unreported > 0 || p.fb.pending() || p.granted > 0) && now.After(p.until) && p.refreshing == nil
	limit := g.cfg.PointsPerHour
	if due {
		p.refreshing = make(chan struct{})
	}
	ch := p.refreshing
	p.mu.Unlock()
	if !due || limit <= 0 {
		if due {
			g.endRefresh(ch)
		}
		return nil
	}
	_, _, err := g.refreshPoints(ctx, limit, 1, 0, 0)
	g.endRefresh(ch)
	return err
}

func (g *Gate) endRefresh(ch chan struct{}) {
	g.points.mu.Lock()
	g.points.refreshing = nil
	g.points.mu.Unlock()
	close(ch)
}
