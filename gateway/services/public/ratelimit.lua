-- Token bucket + daily quota in one atomic step (one round trip per request).
-- KEYS[1]  bucket hash {tokens, ts}
-- KEYS[2]  quota counter prefix; the UTC day number (from the Redis clock) is appended,
--          so every gateway process agrees on the day without trusting its own clock.
-- KEYS[3]  optional: a response-cache key to read when the request is admitted, so the
--          cache lookup rides in the same round trip as the limit check
-- ARGV     rate per second, burst, daily quota (0 = unlimited), cost, quota window (s;
--          86400 in production: a UTC day)
-- Returns  {allowed, kind, tokens, used, retry_after_s, day_reset_s, cached or ''}
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local quota = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local window = tonumber(ARGV[5])

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local day = math.floor(tonumber(t[1]) / window)
local day_reset = (day + 1) * window - now
local qkey = KEYS[2] .. day

local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
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

redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local cached = ''
if allowed == 1 and KEYS[3] then
  cached = redis.call('GET', KEYS[3]) or ''
end
return {allowed, kind, string.format('%.6f', tokens), tostring(used),
        string.format('%.6f', retry), string.format('%.6f', day_reset), cached}
