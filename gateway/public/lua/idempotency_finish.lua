-- Store the answer of the attempt holding an idempotency key, or release the key.
-- KEYS[1]  the record (idempotency_begin.lua)
-- ARGV     the attempt's token, then 'release', or 'store' status headers body TTL (s)
-- Returns  1 done, 0 the attempt no longer holds the key (its lock ran out and a repeat
--          took over, or the record expired): nothing is changed.
-- Idempotent: a second identical call answers 0 and changes nothing.
local key = KEYS[1]
if redis.call('HGET', key, 'token') ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'release' then
  redis.call('DEL', key)
  return 1
end
redis.call('HSET', key, 'state', 'done', 'status', ARGV[3], 'headers', ARGV[4], 'body', ARGV[5])
redis.call('HDEL', key, 'token', 'lock_until')
-- Kept for the TTL from the answer on: a client retrying a slow request gets the
-- whole window.
redis.call('EXPIRE', key, ARGV[6])
return 1
