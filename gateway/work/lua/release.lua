-- A job no longer waits for these tasks (cancelled, expired, rolled back).
-- ARGV: base, waiter, then task ids.
-- Returns per task: 'removed' (no one else wanted it: deleted from ready or delayed,
-- dedupe freed) | 'cancelled_leased' (no one else wants it but a worker holds it: marked
-- `cancelled`, see below) | 'kept' (another waiter or a producer wants it, it is dead,
-- or this waiter was not on it) | 'unknown' (no such task).
-- Only a release that removed this waiter's field acts, so a repeated release, or one
-- for a task the job never attached to, changes nothing. A cancelled lease stays leased:
-- its worker hears `lost` (and `cancelled`) at its next heartbeat, a result it still
-- posts is stored as usual, and a failure or expiry deletes the task (fail_task).
local waiter = ARGV[2]
local out = {}
for j = 3, #ARGV do
  local tid = ARGV[j]
  local k = task_key(tid)
  local f = redis.call('HMGET', k, 'state', 'platform', 'key', 'lease_id', 'producer')
  local s = 'unknown'
  if f[1] then
    s = 'kept'
    if redis.call('HDEL', k, 'j:' .. waiter) == 1 then
      local left = redis.call('HINCRBY', k, 'waiters', -1)
      if left <= 0 and not f[5] then
        if f[1] == 'ready' or f[1] == 'delayed' then
          forget_task(tid, f[2], f[3], '')
          s = 'removed'
        elseif f[1] == 'leased' then
          redis.call('HSET', k, 'cancelled', 1)
          s = 'cancelled_leased'
        end
      end
    end
  end
  out[#out + 1] = s
end
return out
