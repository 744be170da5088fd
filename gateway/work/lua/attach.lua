-- A job's tasks: like enqueue.lua (same dedupe, same task fields, same wake), but each
-- task, new or already live, records `waiter` (a job id) instead of `producer`.
-- ARGV: base, waiter, n, then per task: task_id, platform, key, payload, priority,
-- not_before_ms|'', lane ('' native, else the Celery route; see common.lua).
-- Returns per task: task_id (the live one for a duplicate), 1 created | 0 attached.
-- Idempotent per (task, waiter): the field `j:<waiter>` is set once and only a set that
-- added it counts in `waiters`. Attaching clears `cancelled`: the task is wanted again.
local waiter = ARGV[2]
local n = tonumber(ARGV[3])
local out, woke = {}, {}
local i = 4
local function add_waiter(tid)
  local k = task_key(tid)
  if redis.call('HSETNX', k, 'j:' .. waiter, 1) == 1 then redis.call('HINCRBY', k, 'waiters', 1) end
  redis.call('HDEL', k, 'cancelled')
end
for _ = 1, n do
  local tid, p, key, payload, prio, nb = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local lane = ARGV[i + 6]
  i = i + 7
  local existing = redis.call('HGET', base .. 'dedupe', p .. ':' .. key)
  if existing and redis.call('EXISTS', task_key(existing)) == 1 then
    local k = task_key(existing)
    -- A task with neither field was enqueued before waiters existed, so by a producer:
    -- say so, or releasing this waiter would remove a task a producer asked for.
    if redis.call('HEXISTS', k, 'waiters') == 0 and redis.call('HEXISTS', k, 'producer') == 0 then
      redis.call('HSET', k, 'producer', 1)
    end
    add_waiter(existing)
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    create_task(tid, p, key, payload, prio, nb, woke, lane)
    add_waiter(tid)
    out[#out + 1] = tid
    out[#out + 1] = 1
  end
end
for p in pairs(woke) do redis.call('PUBLISH', base .. 'wake', p) end
return out
