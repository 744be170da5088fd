-- Take one Celery lane off the tasks that carry it, in one of a platform's sets, a chunk
-- at a time (`gateway routing drain`, `POST /v1/admin/routing/drain`).
-- ARGV: base, lane (a route id), platform, set ('cready:'|'delayed:'|'dead:'|'leased:'),
-- offset, count. Returns {moved, examined}: `moved` tasks had the lane; `examined` is how
-- many members of the set this call looked at (from `offset`).
-- A task waiting in `cready` goes to the native ready set now (HTTP workers lease it);
-- one delayed, dead or leased keeps its place and goes native the next time it is ready
-- (a retry, a requeued dead letter, a reclaimed lease). A leased one stays with Celery
-- until that lease ends: its result is accepted as usual (the lease's holder decides).
local lane, p, set = ARGV[2], ARGV[3], ARGV[4]
local offset, count = tonumber(ARGV[5]), tonumber(ARGV[6])
local ids = redis.call('ZRANGE', base .. set .. p, offset, offset + count - 1)
local moved, woke = 0, false
for _, tid in ipairs(ids) do
  local k = task_key(tid)
  if redis.call('HGET', k, 'lane') == lane then
    redis.call('HDEL', k, 'lane')
    moved = moved + 1
    if set == 'cready:' then
      redis.call('ZREM', base .. 'cready:' .. p, tid)
      make_ready(tid, p, redis.call('HGET', k, 'priority') or '0', now)
      woke = true
    end
  end
end
if woke then redis.call('PUBLISH', base .. 'wake', p) end
return {moved, #ids}
