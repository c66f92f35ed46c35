package gate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// With every counting limit of an instance switched off (no rate, no
// in-flight cap, no points budget) a request changes nothing in Redis, so
// admitting it needs only the fleet's cooldown and breaker state. That
// state changes rarely; it is read at most once a second per instance and
// process (like the breaker's open flag, DESIGN §4), and a request that is
// refused or trips the breaker here still goes through the scripts. The
// price: another worker's fresh cooldown is seen up to a second late, and
// each request sent meanwhile meets its own 429, which sets the cooldown
// again. What it buys: no Redis round trip per Confluence request. (With a
// counting limit on, leases buy the same, lease.go.)

// snapshot is the fleet's cooldown and breaker state as last read.
type snapshot struct {
	cooldownUntil time.Time
	breaker       bool // the breaker key exists: open or half-open, ask the script
	seenAt        time.Time
}

// counting reports whether a request to in must be counted in Redis.
func (g *Gate) counting(in *instance) bool {
	return g.cfg.Rate > 0 || g.cfg.MaxInflight > 0 || g.pointsLimit(in) > 0
}

func (g *Gate) pointsLimit(in *instance) int {
	if strings.HasPrefix(in.name, "cloud:") {
		return g.cfg.PointsPerHour
	}
	return 0
}

// admitCached admits from the snapshot. handled false means the breaker
// is involved and the admit script must decide.
func (g *Gate) admitCached(ctx context.Context, in *instance) (handled bool, err error) {
	s, err := g.snapshot(ctx, in)
	if err != nil {
		return true, err
	}
	if now := time.Now(); now.Before(s.cooldownUntil) {
		return true, &DeferError{Instance: in.name, Why: RefusedCooldown, Until: s.cooldownUntil}
	}
	return !s.breaker, nil
}

func (g *Gate) snapshot(ctx context.Context, in *instance) (snapshot, error) {
	in.mu.Lock()
	s := in.snap
	in.mu.Unlock()
	if time.Since(s.seenAt) <= sharedOpenTTL {
		return s, nil
	}
	res, err := snapshotScript.Run(ctx, g.rdb, []string{cooldownKey(in.name), breakerKey(in.name)}).Int64Slice()
	if err != nil {
		return s, fmt.Errorf("gate: read %s state: %w", in.name, err)
	}
	now := time.Now()
	s = snapshot{breaker: res[1] == 1, seenAt: now}
	if res[0] > 0 {
		s.cooldownUntil = now.Add(time.Duration(res[0]) * time.Millisecond)
	}
	in.mu.Lock()
	in.snap = s
	in.mu.Unlock()
	return s, nil
}

// noteReport keeps the snapshot in step with what this process just
// wrote to Redis, so its own cooldown or breaker is seen at once.
func (in *instance) noteReport(cooldown time.Duration, verdict int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if cooldown > 0 {
		in.noteCooldownLocked(time.Now().Add(cooldown))
	}
	switch verdict {
	case 1:
		in.snap.breaker = false
	case 2:
		in.snap.breaker = true
	}
}

// snapshotScript reads the cooldown's remaining ms (Redis clock) and
// whether the breaker key exists. KEYS: cooldown, breaker.
var snapshotScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cd = tonumber(redis.call('GET', KEYS[1]) or '0')
return {math.max(cd - now, 0), redis.call('EXISTS', KEYS[2])}`)
