-- A producer's tasks. ARGV: base, n, then per task: task_id, platform, key, payload,
-- priority, not_before_ms|'', lane ('' native, else the Celery route; see common.lua).
-- Returns per task: task_id (the existing one for a duplicate), 1 enqueued | 0 duplicate.
-- Either way the task is marked `producer`: a producer asking for a task a job created
-- now wants it too, so releasing the job's waiter no longer removes it, and a lease that
-- was cancelled (see release.lua) is wanted again.
local n = tonumber(ARGV[2])
local out, woke = {}, {}
local i = 3
for _ = 1, n do
  local tid, p, key, payload, prio, nb = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local lane = ARGV[i + 6]
  i = i + 7
  local existing = redis.call('HGET', base .. 'dedupe', p .. ':' .. key)
  if existing then
    if redis.call('EXISTS', task_key(existing)) == 1 then
      redis.call('HSET', task_key(existing), 'producer', 1)
      redis.call('HDEL', task_key(existing), 'cancelled')
    end
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    create_task(tid, p, key, payload, prio, nb, woke, lane)
    redis.call('HSET', task_key(tid), 'producer', 1)
    out[#out + 1] = tid
    out[#out + 1] = 1
  end
end
for p in pairs(woke) do redis.call('PUBLISH', base .. 'wake', p) end
return out
