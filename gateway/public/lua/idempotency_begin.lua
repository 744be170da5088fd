-- Decide what one request carrying an Idempotency-Key does, atomically (idempotency.py).
-- KEYS[1]  the record: a hash under the deployment prefix, one per (principal, method,
--          path, client key)
-- ARGV     request fingerprint (hex SHA-256), this attempt's token, lock (ms), TTL (s)
-- Returns  {'new', 'fresh'|'takeover'}: this attempt holds the key and runs the request
--          {'mismatch'}: the key was used for a different request (fingerprint)
--          {'in_flight', ms until the holder's lock ends}
--          {'replay', status, headers (JSON), body}
--
-- Record fields: fp, state ('in_flight' | 'done'), token and lock_until (while in
-- flight), status, headers and body (once done). The lock is on the Redis clock, so
-- replicas agree on it without trusting their own clocks. A holder whose lock ran out
-- (its gateway died mid-request) is taken over by the next repeat; its late answer is
-- then refused by idempotency_finish.lua, which compares tokens.
--
-- Asking again with the same token answers 'new' again: the caller may repeat this call
-- after a lost reply without locking itself out.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key, fp, token = KEYS[1], ARGV[1], ARGV[2]
local lock_ms, ttl_s = tonumber(ARGV[3]), tonumber(ARGV[4])

local rec = redis.call('HMGET', key, 'fp', 'state', 'token', 'lock_until', 'status', 'headers', 'body')
local stored_fp, state = rec[1], rec[2]
if stored_fp and stored_fp ~= fp then
  return {'mismatch'}
end
if state == 'done' then
  return {'replay', rec[5], rec[6], rec[7]}
end
if state == 'in_flight' and rec[3] ~= token then
  local left = tonumber(rec[4]) - now
  if left > 0 then
    return {'in_flight', string.format('%d', left)}
  end
end
redis.call('HSET', key, 'fp', fp, 'state', 'in_flight', 'token', token,
           'lock_until', string.format('%d', now + lock_ms))
-- The record outlives its lock whatever the settings say, or an in-flight request's key
-- could vanish and let a repeat run beside it.
redis.call('PEXPIRE', key, math.max(ttl_s * 1000, lock_ms + 1000))
if stored_fp then
  return {'new', 'takeover'}
end
return {'new', 'fresh'}
