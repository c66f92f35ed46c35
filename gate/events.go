package gate

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/confluence"
)

// eventsChannel carries what must stop every process's leases at once: a
// Retry-After cooldown on an instance, the app's global-quota pause, a
// tripped breaker. Messages are "<kind> <ms> [<instance>]", durations
// relative so clock skew between hosts does not matter. A process that
// misses one (its subscription reconnecting) learns the same from Redis at
// its next lease refresh, within a lease time.
const eventsChannel = "retropub:gate:events"

func (g *Gate) publish(ctx context.Context, inst string, cooldown, pause time.Duration, tripped bool) {
	_, err := g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if cooldown > 0 {
			p.Publish(ctx, eventsChannel, "cooldown "+strconv.FormatInt(cooldown.Milliseconds(), 10)+" "+inst)
		}
		if pause > 0 {
			p.Publish(ctx, eventsChannel, "pause "+strconv.FormatInt(pause.Milliseconds(), 10))
		}
		if tripped {
			p.Publish(ctx, eventsChannel, "breaker "+strconv.FormatInt(g.cfg.OpenFor.Milliseconds(), 10)+" "+inst)
		}
		return nil
	})
	if err != nil {
		g.log.Warn("gate: publish cooldown to the fleet", zap.String("instance", inst), zap.Error(err))
	}
}

// listen applies the fleet's events to this process's leases; ready is
// closed once subscribed (or the attempt failed: refreshes still see it).
func (g *Gate) listen(ctx context.Context, ready chan<- struct{}) {
	ps := g.rdb.Subscribe(ctx, eventsChannel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil && ctx.Err() == nil {
		g.log.Warn("gate: subscribe to fleet cooldowns", zap.Error(err))
	}
	close(ready)
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			g.apply(m.Payload)
		}
	}
}

func (g *Gate) apply(msg string) {
	kind, rest, _ := strings.Cut(msg, " ")
	msText, inst, _ := strings.Cut(rest, " ")
	ms, err := strconv.ParseInt(msText, 10, 64)
	if err != nil || ms <= 0 {
		return
	}
	until := time.Now().Add(time.Duration(ms) * time.Millisecond)
	switch kind {
	case "pause":
		g.notePause(until)
	case "cooldown":
		if inst != "" {
			in := g.instance(inst)
			in.mu.Lock()
			in.noteCooldownLocked(until)
			in.mu.Unlock()
		}
	case "breaker":
		if inst != "" {
			in := g.instance(inst)
			in.cacheOpen(until)
			in.mu.Lock()
			in.snap.breaker = true
			in.lease.tokens = 0
			in.mu.Unlock()
		}
	}
}

// notePause stops every Cloud request of this process until then.
func (g *Gate) notePause(until time.Time) {
	g.points.mu.Lock()
	if until.After(g.points.pauseUntil) {
		g.points.pauseUntil = until
	}
	g.points.granted = g.points.spent
	g.points.mu.Unlock()
}

// noteBreakerGone: the admit script found no breaker key; the instance's
// requests go back to the leases.
func (in *instance) noteBreakerGone() {
	in.mu.Lock()
	in.snap.breaker = false
	in.mu.Unlock()
}

// feedbackOf is an answer's quota headers as the points lease batches them.
func feedbackOf(q quota, o confluence.Outcome) feedback {
	f := feedback{remaining: q.remaining, near: q.near, resetMS: -1}
	if q.resetSecs >= 0 {
		f.resetMS = q.resetSecs * 1000
	}
	f.bare = answered(o) == 1 && q.remaining < 0 && q.resetSecs < 0 && !q.near
	return f
}

// quotaUrgent: headers that must reach the fleet's count at once rather
// than with the next refresh — Atlassian counting a remainder (it does so
// only past ~80 % use) or "near the limit", and an answer that says our
// estimate above 75 % ran ahead of Atlassian's count (it unblocks work).
func (g *Gate) quotaUrgent(f feedback, limit int) bool {
	if f.remaining >= 0 || f.near {
		return true
	}
	if !f.bare {
		return false
	}
	g.points.mu.Lock()
	defer g.points.mu.Unlock()
	return float64(g.points.base+g.points.spent) > 0.75*float64(limit)
}

// dropPointsSlice ends the local slice: the next request refreshes it
// against the count the headers just corrected.
func (g *Gate) dropPointsSlice() {
	g.points.mu.Lock()
	g.points.granted = g.points.spent
	g.points.mu.Unlock()
}

// handBack returns what the leases hold (Close).
func (g *Gate) handBack(ctx context.Context) {
	g.mu.Lock()
	ins := make([]*instance, 0, len(g.instances))
	for _, in := range g.instances {
		ins = append(ins, in)
	}
	g.mu.Unlock()
	for _, in := range ins {
		in.mu.Lock()
		in.lease.until = time.Time{}
		in.mu.Unlock()
		if g.counting(in) {
			_, _, _ = g.refreshInstance(ctx, in, false)
		}
	}
	if g.cfg.PointsPerHour > 0 {
		g.points.mu.Lock()
		g.points.until = time.Time{}
		g.points.mu.Unlock()
		_ = g.flushPoints(ctx, time.Now())
	}
}
