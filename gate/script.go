package gate

import (
	"github.com/redis/go-redis/v9"

	"retropub/internal/rediskeys"
)

// Redis keys (internal/rediskeys). Per instance, tagged {<instance>}; the
// Cloud points budget and the global-quota pause are app-wide, tagged
// {cloud}: on a Redis Cluster no script may mix them with an instance's.
func cooldownKey(inst string) string { return rediskeys.Gate(inst, "cooldown") }
func breakerKey(inst string) string  { return rediskeys.Gate(inst, "breaker") }
func rateKey(inst string) string     { return rediskeys.Gate(inst, "gcra") }
func inflightKey(inst string) string { return rediskeys.Gate(inst, "inflight") }

var (
	pointsKey = rediskeys.CloudPoints
	pauseKey  = rediskeys.CloudPause
)

// Every time in the scripts is Redis's clock (TIME), in milliseconds, so
// workers with skewed clocks agree, and every deadline is stored as a
// value (TTLs only clean up), so miniredis, whose TTLs do not tick, works.

// admitScript checks every gate and commits only when all pass, so a
// refused request consumes nothing.
//
// KEYS: cooldown, breaker, gcra, inflight, points, pause
// ARGV: rate (req/s, 0 off), burst, max in-flight (0 off), member,
// lease ms, points limit (0 off), cost, share of the limit this priority may
// use, half-open probes, probe window ms
// Returns {code, wait ms, probe (1 when this request is a breaker probe)}.
var admitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, maxin = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local limit, cost, share = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local maxprobes, probewin = tonumber(ARGV[9]), tonumber(ARGV[10])

local cd = tonumber(redis.call('GET', KEYS[1]) or '0')
if now < cd then return {1, cd - now, 0} end
if limit > 0 then
  local pause = tonumber(redis.call('GET', KEYS[6]) or '0')
  if now < pause then return {6, pause - now, 0} end
end

local probe, newround = 0, false
local bu = tonumber(redis.call('HGET', KEYS[2], 'until') or '0')
if bu > 0 then
  if now < bu then return {2, bu - now, 0} end
  local probes = tonumber(redis.call('HGET', KEYS[2], 'probes') or '0')
  if probes >= maxprobes then
    if now < bu + probewin then return {7, math.min(1000, bu + probewin - now), 0} end
    newround = true -- the probes never reported back: start another round
  end
  probe = 1
end

local wend, used, reset = 0, 0, false
if limit > 0 then
  wend = tonumber(redis.call('HGET', KEYS[5], 'end') or '0')
  used = tonumber(redis.call('HGET', KEYS[5], 'used') or '0')
  if now >= wend then
    wend = (math.floor(now / 3600000) + 1) * 3600000
    used, reset = 0, true
  elseif redis.call('HGET', KEYS[5], 'near') == '1' then
    used = math.max(used, limit * 0.8)
  end
  if used + cost > limit * share then
    -- Until Atlassian's headers said when its window resets, the top of
    -- the hour is a guess: look again in 30 s rather than sleep on it.
    if reset or redis.call('HGET', KEYS[5], 'learned') ~= '1' then return {5, math.min(wend - now, 30000), 0} end
    return {5, wend - now, 0}
  end
end

if maxin > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= maxin then return {4, 50, 0} end
end

local newtat = 0
if rate > 0 then
  local emission = 1000 / rate
  local tat = math.max(tonumber(redis.call('GET', KEYS[3]) or '0'), now)
  newtat = tat + emission
  local allowat = newtat - emission * math.max(burst, 1)
  if allowat > now then return {3, math.ceil(allowat - now), 0} end
end

-- every gate passed: commit
if rate > 0 then
  redis.call('SET', KEYS[3], string.format('%.3f', newtat), 'PX', math.ceil(newtat - now) + 1000)
end
if maxin > 0 then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[4])
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[5]) + 60000)
end
if limit > 0 then
  if reset then redis.call('HSET', KEYS[5], 'end', wend, 'used', 0, 'near', 0, 'learned', 0) end
  redis.call('HINCRBY', KEYS[5], 'used', cost)
  redis.call('PEXPIRE', KEYS[5], wend - now + 3600000)
end
if probe == 1 then
  if newround then redis.call('HSET', KEYS[2], 'until', now, 'probes', 0) end
  redis.call('HINCRBY', KEYS[2], 'probes', 1)
end
return {0, 0, probe}`)

// reportScript records how an admitted request ended.
//
// KEYS: cooldown, breaker, inflight, points, pause
// ARGV: member, cooldown ms (0 none), pause ms (0 none; the app's quota is
// spent), breaker verdict (0 nothing, 1 probe succeeded: close, 2 probe or
// trip failed: open, 3 probe excluded: hand the probe back), open ms,
// points remaining (-1 unknown), ms until the points window resets (-1
// unknown), near limit (0/1), points limit, answered (1: Confluence answered
// other than 429, so a missing quota header means "under 80 %")
var reportScript = redis.NewScript(reportPreludeLua + `
redis.call('ZREM', KEYS[3], ARGV[1])
if tonumber(ARGV[2]) > 0 then extend(KEYS[1], tonumber(ARGV[2])) end
if tonumber(ARGV[3]) > 0 then extend(KEYS[5], tonumber(ARGV[3])) end
local verdict = tonumber(ARGV[4])
if verdict == 1 then
  redis.call('DEL', KEYS[2])
elseif verdict == 2 then
  local openms = tonumber(ARGV[5])
  redis.call('HSET', KEYS[2], 'until', now + openms, 'probes', 0)
  redis.call('PEXPIRE', KEYS[2], openms + 600000)
elseif verdict == 3 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'probes', -1)
end
report_points(KEYS[4], tonumber(ARGV[9]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8] == '1', ARGV[10] == '1')
return 1`)

// reportPreludeLua is what both report scripts (the joint one here and
// the cluster's budget half) share: the server's clock, extend (push a
// deadline key later, never earlier) and report_points (record one
// answer's points headers in the hourly points hash).
const reportPreludeLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function extend(key, ms)
  local untilms = now + ms
  if untilms > tonumber(redis.call('GET', key) or '0') then
    redis.call('SET', key, untilms, 'PX', ms + 60000)
  end
end
local function report_points(key, limit, remaining, resetms, near, answered)
  if limit > 0 and (remaining >= 0 or resetms >= 0 or near) then
    if resetms >= 0 then redis.call('HSET', key, 'end', now + resetms, 'learned', 1) end
    if remaining >= 0 then
      local used = tonumber(redis.call('HGET', key, 'used') or '0')
      redis.call('HSET', key, 'used', math.max(used, limit - remaining))
    end
    if near then redis.call('HSET', key, 'near', 1) end
    redis.call('PEXPIRE', key, 7200000)
  elseif limit > 0 and answered then
    -- Atlassian sends r only past ~80 % use: an answer without it means
    -- our estimate (GETs reserved at 2 points) ran ahead of its count.
    local used = tonumber(redis.call('HGET', key, 'used') or '0')
    if used > limit * 0.75 then redis.call('HSET', key, 'used', math.floor(limit * 0.75)) end
  end
end
`

// heldKey is the instance's in-flight reservations of leasing processes
// (lease.go): one field per process, "slots:expiry ms".
func heldKey(inst string) string { return rediskeys.Gate(inst, "held") }
