package gate

import "github.com/redis/go-redis/v9"

// leaseScript refreshes one process's lease on one instance (lease.go):
// hands back the unused tokens, renews the process's in-flight
// reservation, and — when the cooldown and breaker allow — takes the next
// slice of tokens and slots. A refused refresh takes nothing.
//
// KEYS: cooldown, breaker, gcra, held (hash), inflight (the per-request zset)
// ARGV: process id, rate (req/s, 0 off), burst, max in-flight (0 off),
// tokens wanted (0: renew only), tokens handed back, slots in use,
// reservation ttl ms
// Returns {code (0 granted, 1 cooldown, 3 rate, 4 in-flight, -1 the breaker
// is open or half-open: use the per-request scripts), wait ms, tokens
// granted, slots reserved, breaker key exists}.
var leaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local proc = ARGV[1]
local rate, burst, maxin = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local want, give, used, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

if rate > 0 and give > 0 then
  local tat = tonumber(redis.call('GET', KEYS[3]) or '0')
  local back = tat - give * 1000 / rate
  if back > now then
    redis.call('SET', KEYS[3], string.format('%.3f', back), 'PX', math.ceil(back - now) + 1000)
  elseif tat > now then
    redis.call('DEL', KEYS[3])
  end
end

local held, others = 0, 0
local function reserve(n)
  held = n
  if n > 0 then
    redis.call('HSET', KEYS[4], proc, n .. ':' .. (now + ttl))
    redis.call('PEXPIRE', KEYS[4], ttl + 60000)
  else
    redis.call('HDEL', KEYS[4], proc)
  end
end
if maxin > 0 then
  local all = redis.call('HGETALL', KEYS[4])
  for i = 1, #all, 2 do
    if all[i] ~= proc then
      local n, x = string.match(all[i + 1], '^(%d+):(%d+)$')
      if n == nil or tonumber(x) <= now then
        redis.call('HDEL', KEYS[4], all[i])
      else
        others = others + tonumber(n)
      end
    end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  others = others + redis.call('ZCARD', KEYS[5])
  reserve(used)
end

local cd = tonumber(redis.call('GET', KEYS[1]) or '0')
if now < cd then return {1, cd - now, 0, held, 0} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, 0, 0, held, 1} end
if want <= 0 then return {0, 0, 0, held, 0} end

if maxin > 0 then
  local room = maxin - others - used
  if room < 1 then return {4, 50, 0, held, 0} end
  want = math.min(want, room)
end
if rate > 0 then
  local em = 1000 / rate
  local tat = math.max(tonumber(redis.call('GET', KEYS[3]) or '0'), now)
  local n = math.min(want, math.floor((now - tat) / em + burst + 1e-9))
  if n < 1 then return {3, math.ceil(tat + em - em * burst - now), 0, held, 0} end
  want = n
  local newtat = tat + n * em
  redis.call('SET', KEYS[3], string.format('%.3f', newtat), 'PX', math.ceil(newtat - now) + 1000)
end
if maxin > 0 then reserve(used + want) end
return {0, 0, want, held, 0}`)

// pointsLeaseScript refreshes one process's slice of the app's hourly
// points (leasepoints.go): adds what it spent to the fleet's count, applies
// the quota headers it saw (as the report script does, batched), drops the
// expired slices of other processes, and reserves the next slice.
//
// KEYS: points (hash: end, used, near, learned, lease:<process> = "points:expiry ms"), pause
// ARGV: process id, points limit, share of the limit this priority may
// use, points wanted (0: hand the slice back), points needed (refuse below),
// points spent since the last refresh, slice ttl ms, remaining (-1
// unknown), ms until the window resets (-1 unknown), near (0/1), bare (1:
// an answer other than 429 carried no quota count)
// Returns {code (0, 5 budget, 6 global-quota pause), wait ms, points
// granted, the fleet's count: used plus the other processes' slices}.
var pointsLeaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local field = 'lease:' .. ARGV[1]
local limit, share = tonumber(ARGV[2]), tonumber(ARGV[3])
local want, need, spent, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local remaining, resetms = tonumber(ARGV[8]), tonumber(ARGV[9])

local wend = tonumber(redis.call('HGET', KEYS[1], 'end') or '0')
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
local reset = false
if now >= wend then
  wend = (math.floor(now / 3600000) + 1) * 3600000
  redis.call('HSET', KEYS[1], 'end', wend, 'near', 0, 'learned', 0)
  used, reset = 0, true
end
used = used + spent
if resetms >= 0 then
  wend = now + resetms
  redis.call('HSET', KEYS[1], 'end', wend, 'learned', 1)
  reset = false
end
if remaining >= 0 then
  used = math.max(used, limit - remaining)
elseif ARGV[11] == '1' and resetms < 0 and ARGV[10] ~= '1' and used > limit * 0.75 then
  -- Atlassian sends r only past ~80 % use: an answer without it means
  -- our estimate (GETs reserved at 2 points) ran ahead of its count.
  used = math.floor(limit * 0.75)
end
if ARGV[10] == '1' then redis.call('HSET', KEYS[1], 'near', 1) end
redis.call('HSET', KEYS[1], 'used', used)
redis.call('HDEL', KEYS[1], field)
redis.call('PEXPIRE', KEYS[1], wend - now + 3600000)

local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < pause then return {6, pause - now, 0, used} end

local others = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 6) == 'lease:' then
    local n, x = string.match(all[i + 1], '^(%d+):(%d+)$')
    if n == nil or tonumber(x) <= now then
      redis.call('HDEL', KEYS[1], all[i])
    else
      others = others + tonumber(n)
    end
  end
end
local count = used
if redis.call('HGET', KEYS[1], 'near') == '1' then count = math.max(count, limit * 0.8) end
local base = math.ceil(count + others)
if want <= 0 then return {0, 0, 0, base} end
local grant = math.min(want, math.floor(limit * share - base))
if grant < need then
  -- Until Atlassian's headers said when its window resets, the top of
  -- the hour is a guess: look again in 30 s rather than sleep on it.
  if reset or redis.call('HGET', KEYS[1], 'learned') ~= '1' then return {5, math.min(wend - now, 30000), 0, base} end
  return {5, wend - now, 0, base}
end
redis.call('HSET', KEYS[1], field, grant .. ':' .. (now + ttl))
return {0, 0, grant, base}`)
