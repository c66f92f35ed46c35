package gate

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// On a Redis Cluster a script may touch one hash slot only. An instance's
// keys share the tag {<instance>}, the app-wide Cloud budget keys the tag
// {cloud}, so there the joint admit and report scripts are split in two:
// the budget part runs on the {cloud} slot, the instance part on the
// instance's, each passed only its own keys (the joint scripts touch the
// budget keys only when a points limit or a pause is passed). On one
// Redis or Sentinel the joint scripts keep their one round trip.

func onCluster(rdb redis.UniversalClient) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}

// runAdmit runs admitScript on keys (cooldown, breaker, gcra, inflight,
// points, pause) and returns {code, wait ms, probe}.
func (g *Gate) runAdmit(ctx context.Context, keys []string, member string, limit, cost int, share float64, leaseMS int64) ([]int64, error) {
	args := func(limit int) []any {
		return []any{g.cfg.Rate, admittedBurst(g.cfg.Rate, g.cfg.Burst), g.cfg.MaxInflight, member, leaseMS,
			limit, cost, share, g.cfg.Probes, leaseMS}
	}
	if limit <= 0 || !onCluster(g.rdb) {
		if limit <= 0 && onCluster(g.rdb) {
			keys = keys[:4]
		}
		return admitScript.Run(ctx, g.rdb, keys, args(limit)...).Int64Slice()
	}
	// The budget first: a refusal there costs the instance nothing; a
	// refusal by the instance hands the points back.
	res, err := budgetAdmitScript.Run(ctx, g.rdb, keys[4:], limit, cost, share).Int64Slice()
	if err != nil || res[0] != 0 {
		return append(res, 0), err
	}
	res, err = admitScript.Run(ctx, g.rdb, keys[:4], args(0)...).Int64Slice()
	if err != nil || res[0] != 0 {
		_ = budgetRefundScript.Run(context.WithoutCancel(ctx), g.rdb, keys[4:5], cost).Err()
	}
	return res, err
}

// runReport runs reportScript on keys (cooldown, breaker, inflight,
// points, pause) with args as reportScript takes them.
func (g *Gate) runReport(ctx context.Context, keys []string, member string, cooldownMS, pauseMS int64, verdict int, openMS, remaining, resetMS int64, near, limit, answered int) error {
	if !onCluster(g.rdb) {
		return reportScript.Run(ctx, g.rdb, keys, member, cooldownMS, pauseMS, verdict, openMS, remaining, resetMS, near, limit, answered).Err()
	}
	if err := reportScript.Run(ctx, g.rdb, keys[:3], member, cooldownMS, 0, verdict, openMS, -1, -1, 0, 0, 0).Err(); err != nil {
		return err
	}
	if pauseMS <= 0 && limit <= 0 {
		return nil
	}
	return budgetReportScript.Run(ctx, g.rdb, keys[3:], pauseMS, remaining, resetMS, near, limit, answered).Err()
}

// budgetAdmitScript is admitScript's pause and points part.
// KEYS: points, pause. ARGV: limit, cost, share. Returns {code, wait ms}.
var budgetAdmitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, cost, share = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < pause then return {6, pause - now} end
local wend = tonumber(redis.call('HGET', KEYS[1], 'end') or '0')
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
local reset = false
if now >= wend then
  wend = (math.floor(now / 3600000) + 1) * 3600000
  used, reset = 0, true
elseif redis.call('HGET', KEYS[1], 'near') == '1' then
  used = math.max(used, limit * 0.8)
end
if used + cost > limit * share then
  if reset or redis.call('HGET', KEYS[1], 'learned') ~= '1' then return {5, math.min(wend - now, 30000)} end
  return {5, wend - now}
end
if reset then redis.call('HSET', KEYS[1], 'end', wend, 'used', 0, 'near', 0, 'learned', 0) end
redis.call('HINCRBY', KEYS[1], 'used', cost)
redis.call('PEXPIRE', KEYS[1], wend - now + 3600000)
return {0, 0}`)

// budgetRefundScript hands back the points of a request the instance
// refused. KEYS: points. ARGV: cost.
var budgetRefundScript = redis.NewScript(`
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
if used >= tonumber(ARGV[1]) then redis.call('HINCRBY', KEYS[1], 'used', -tonumber(ARGV[1])) end
return 1`)

// budgetReportScript is reportScript's pause and points part.
// KEYS: points, pause. ARGV: pause ms, points remaining, reset ms, near,
// limit, answered (as reportScript).
var budgetReportScript = redis.NewScript(reportPreludeLua + `
if tonumber(ARGV[1]) > 0 then extend(KEYS[2], tonumber(ARGV[1])) end
report_points(KEYS[1], tonumber(ARGV[5]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1', ARGV[6] == '1')
return 1`)
