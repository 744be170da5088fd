-- ARGV: base, n, then per task: task_id, platform, key, payload, priority, not_before_ms|''
-- Returns per task: task_id (the existing one for a duplicate), 1 enqueued | 0 duplicate.
local n = tonumber(ARGV[2])
local out, woke = {}, {}
local i = 3
for _ = 1, n do
  local tid, p, key, payload, prio, nb = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  i = i + 6
  local dk = p .. ':' .. key
  local existing = redis.call('HGET', base .. 'dedupe', dk)
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    redis.call('HSET', base .. 'dedupe', dk, tid)
    redis.call('SADD', base .. 'platforms', p)
    redis.call('HSET', task_key(tid), 'platform', p, 'key', key, 'payload', payload,
      'priority', prio, 'attempt', 1, 'created_ms', fmt(now), 'errors', '')
    if nb ~= '' and tonumber(nb) > now then
      redis.call('HSET', task_key(tid), 'state', 'delayed')
      redis.call('ZADD', base .. 'delayed:' .. p, nb, tid)
    else
      make_ready(tid, p, prio, now)
      woke[p] = true
    end
    out[#out + 1] = tid
    out[#out + 1] = 1
  end
end
for p in pairs(woke) do redis.call('PUBLISH', base .. 'wake', p) end
return out
