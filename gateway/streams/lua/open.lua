-- Take a place in one or more follower sets (a job's followers, a caller's open streams),
-- all or none. Each set is a sorted set of lease ids scored by when the lease lapses: a
-- process refreshes its leases while their connections live (`caps.py`), so the places of
-- a process that died free themselves after one lease period.
-- KEYS: the sets. ARGV: now_ms, lapse_ms (now + lease), lease id, then one cap per key.
-- Returns 0 when taken, else the 1-based index of the first set that is full.
local now, lapse, member = tonumber(ARGV[1]), ARGV[2], ARGV[3]
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local held = redis.call('ZSCORE', KEYS[i], member)
  if not held and redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[3 + i]) then
    return i
  end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], lapse, member)
  redis.call('PEXPIREAT', KEYS[i], lapse)
end
return 0
