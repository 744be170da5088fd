-- Release leases whose succeeded results are committed: the task is done.
-- ARGV: base, n, then pairs task_id, lease_id.
-- Returns per item: 'ok' | 'duplicate' | 'stale', the platform ('' if unknown), and the
-- task's `waiters` as it was released (0 unless 'ok'): a job may have attached after the
-- lease check that preceded the commit, and the results path tells it now.
local n = tonumber(ARGV[2])
local out = {}
for j = 0, n - 1 do
  local tid, lid = ARGV[3 + 2 * j], ARGV[4 + 2 * j]
  local s = settled(tid, lid)
  local p = ''
  local waiters = 0
  if s == 'current' then
    local k = task_key(tid)
    local f = redis.call('HMGET', k, 'platform', 'key', 'waiters')
    p = f[1]
    waiters = tonumber(f[3] or 0)
    redis.call('ZREM', base .. 'leased:' .. p, tid)
    redis.call('HDEL', base .. 'leases', lid)
    local dk = p .. ':' .. f[2]
    if redis.call('HGET', base .. 'dedupe', dk) == tid then redis.call('HDEL', base .. 'dedupe', dk) end
    redis.call('DEL', k)
    s = 'ok'
  end
  out[#out + 1] = s
  out[#out + 1] = p
  out[#out + 1] = waiters
end
return out
