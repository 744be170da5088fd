-- One job creation from an owner's sliding window, atomically (exact across replicas).
-- KEYS[1]  the owner's window: a sorted set of creation members scored by the Redis
--          clock in microseconds
-- ARGV     limit (creations per window), window length in microseconds, the new member
-- Returns  {1, 0} when taken (the member was added), or {0, retry_after_us}: how long
--          until the oldest entry leaves the window and a slot frees up.
--
-- The clock is Redis's (TIME), never a gateway's: replicas with skewed clocks still
-- agree on what is inside the window. Microsecond scores stay exact in a double (about
-- 2^51 today). Entries at or before now - window are out of it and trimmed first, so
-- the set never holds more than `limit` live members plus nothing stale; the key
-- expires a window after its last creation.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local retry = tonumber(oldest[2]) + window - now
  if retry < 1 then retry = 1 end
  return {0, retry}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return {1, 0}
