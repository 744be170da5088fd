-- Token bucket + daily quota, for every check of a batch, in one atomic script call.
-- The batcher (script_batch.py) sends the checks made in one event-loop turn together:
-- KEYS and ARGV hold 3 keys and 5 arguments per check, in order. Per check:
-- KEYS     bucket hash {tokens, ts}; quota counter prefix (the UTC day number from the
--          Redis clock is appended, so every gateway process agrees on the day without
--          trusting its own clock); a response-cache key to read when the request is
--          admitted, so the cache lookup rides in the same round trip ('' for none)
-- ARGV     rate per second, burst, daily quota (0 = unlimited), cost, quota window (s;
--          86400 in production: a UTC day)
-- Returns  one reply per check, in order:
--          {allowed, kind, tokens, used, retry_after_s, day_reset_s, cached or ''}
-- Each check sees the state the checks before it left: the same as separate calls.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local function check(bucket_key, quota_prefix, cache_key, rate, burst, quota, cost, window)
  local day = math.floor(tonumber(t[1]) / window)
  local day_reset = (day + 1) * window - now
  local qkey = quota_prefix .. day

  local b = redis.call('HMGET', bucket_key, 'tokens', 'ts')
  local tokens = tonumber(b[1])
  local ts = tonumber(b[2])
  if tokens == nil or ts == nil then
    tokens = burst
    ts = now
  end
  local elapsed = now - ts
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tokens + elapsed * rate)

  local used = tonumber(redis.call('GET', qkey) or '0')
  local allowed = 1
  local kind = ''
  local retry = 0
  if quota > 0 and used + cost > quota then
    allowed = 0
    kind = 'quota'
    retry = day_reset
  elseif tokens < cost then
    allowed = 0
    kind = 'rate'
    retry = (cost - tokens) / rate
  else
    tokens = tokens - cost
    used = redis.call('INCRBY', qkey, cost)
    if used == cost then
      redis.call('EXPIRE', qkey, math.ceil(day_reset) + 60)
    end
  end

  redis.call('HSET', bucket_key, 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', now))
  redis.call('PEXPIRE', bucket_key, math.ceil(burst / rate * 1000) + 1000)
  local cached = ''
  if allowed == 1 and cache_key ~= '' then
    cached = redis.call('GET', cache_key) or ''
  end
  return {allowed, kind, string.format('%.6f', tokens), tostring(used),
          string.format('%.6f', retry), string.format('%.6f', day_reset), cached}
end

local out = {}
for i = 0, #KEYS / 3 - 1 do
  local a = 5 * i
  out[i + 1] = check(KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3],
                     tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]),
                     tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]))
end
return out
