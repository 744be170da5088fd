-- Move dead-lettered tasks back to ready with a fresh attempt budget (error history is
-- kept). A dead task whose (platform, key) was enqueued again meanwhile is dropped.
-- ARGV: base, then task ids. Returns {requeued, dropped}.
local requeued, dropped, woke = 0, 0, {}
for j = 2, #ARGV do
  local tid = ARGV[j]
  local k = task_key(tid)
  local f = redis.call('HMGET', k, 'state', 'platform', 'key', 'priority')
  if f[1] == 'dead' then
    local p = f[2]
    redis.call('ZREM', base .. 'dead:' .. p, tid)
    local dk = p .. ':' .. f[3]
    if redis.call('HEXISTS', base .. 'dedupe', dk) == 1 then
      redis.call('DEL', k)
      dropped = dropped + 1
    else
      redis.call('HSET', base .. 'dedupe', dk, tid)
      redis.call('HSET', k, 'attempt', 1)
      redis.call('HDEL', k, 'dead_at')
      make_ready(tid, p, f[4], now)
      woke[p] = true
      requeued = requeued + 1
    end
  end
end
for p in pairs(woke) do redis.call('PUBLISH', base .. 'wake', p) end
return {requeued, dropped}
