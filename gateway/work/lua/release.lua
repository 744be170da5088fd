-- A job no longer waits for these tasks (cancelled, expired, rolled back).
-- ARGV: base, waiter, then task ids.
-- Returns two values per task: a status, and the Celery task id to revoke ('' unless
-- the status is 'revoked'). Status: 'removed' (no one else wanted it: deleted from ready
-- or delayed, dedupe freed) | 'cancelled_leased' (no one else wants it but a HTTP worker
-- holds it: marked `cancelled`, see below) | 'revoked' (no one else wants it and the
-- Celery dispatcher holds it: deleted with its lease, the caller revokes the Celery
-- task) | 'kept' (another waiter or a producer wants it, it is dead, or this waiter was
-- not on it) | 'unknown' (no such task).
-- Only a release that removed this waiter's field acts, so a repeated release, or one
-- for a task the job never attached to, changes nothing. A cancelled HTTP lease stays
-- leased: its worker hears `lost` (and `cancelled`) at its next heartbeat, a result it
-- still posts is stored as usual, and a failure or expiry deletes the task (fail_task).
-- A Celery lease cannot hear anything: a revoked message is dropped by the Celery worker
-- without any callback, so the lease would wait out CELERY_LEASE_TIMEOUT_S (and a job
-- attaching meanwhile would wait with it). It ends here instead; a task that had started
-- already finishes and its result is `stale` (nothing written).
local waiter = ARGV[2]
local out = {}
for j = 3, #ARGV do
  local tid = ARGV[j]
  local k = task_key(tid)
  local f = redis.call('HMGET', k, 'state', 'platform', 'key', 'lease_id', 'producer', 'lane')
  local s = 'unknown'
  local revoke = ''
  if f[1] then
    s = 'kept'
    if redis.call('HDEL', k, 'j:' .. waiter) == 1 then
      local left = redis.call('HINCRBY', k, 'waiters', -1)
      if left <= 0 and not f[5] then
        if f[1] == 'ready' or f[1] == 'delayed' then
          forget_task(tid, f[2], f[3], '')
          s = 'removed'
        elseif f[1] == 'leased' and f[6] and f[6] ~= '' then
          forget_task(tid, f[2], f[3], f[4])
          s = 'revoked'
          revoke = tid .. '.' .. f[4]
        elseif f[1] == 'leased' then
          redis.call('HSET', k, 'cancelled', 1)
          s = 'cancelled_leased'
        end
      end
    end
  end
  out[#out + 1] = s
  out[#out + 1] = revoke
end
return out
