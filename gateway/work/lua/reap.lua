-- Reclaim expired leases and promote due delayed tasks, for every platform.
-- Runs atomically, so with several gateway replicas each lease is reclaimed exactly once.
-- ARGV: base, max_attempts, backoff_base_ms, backoff_cap_ms, batch, then `batch` jitters.
-- Returns two arrays: flat triples per platform with activity (platform,
-- 'retry'|'dead'|'cancelled', count), and flat quadruples per dead-lettered task that
-- some job waits for (task_id, platform, attempt, last error message), so the caller
-- can tell those jobs; both bounded by `batch`. 'cancelled': the expired lease's task
-- was cancelled (release.lua) and is deleted rather than retried.
local max_attempts, base_ms, cap_ms = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local batch = tonumber(ARGV[5])
local used = 0
local out, dead = {}, {}
for _, p in ipairs(redis.call('SMEMBERS', base .. 'platforms')) do
  local counts = {retry = 0, dead = 0, cancelled = 0}
  local expired = {}
  if batch > used then
    expired = redis.call('ZRANGEBYSCORE', base .. 'leased:' .. p, '-inf', fmt(now), 'LIMIT', 0, batch - used)
  end
  for _, tid in ipairs(expired) do
    local f = redis.call('HMGET', task_key(tid), 'state', 'lease_id', 'worker_id')
    if f[1] == 'leased' then
      used = used + 1
      local err = {message = 'lease expired', retryable = true, lease_id = f[2], worker_id = f[3], expired = true}
      local r = fail_task(tid, f[2], err, true, tonumber(ARGV[5 + used]) or 0.5, max_attempts, base_ms, cap_ms)
      counts[r[1]] = counts[r[1]] + 1
      if r[1] == 'dead' and r[3] > 0 then
        for _, v in ipairs({tid, p, r[4], err.message}) do dead[#dead + 1] = v end
      end
    else
      redis.call('ZREM', base .. 'leased:' .. p, tid)
    end
  end
  if promote(p, 1000) > 0 then redis.call('PUBLISH', base .. 'wake', p) end
  for kind, c in pairs(counts) do
    if c > 0 then
      out[#out + 1] = p
      out[#out + 1] = kind
      out[#out + 1] = c
    end
  end
end
return {out, dead}
