-- Before committing succeeded results: is each lease still current, and held by the
-- caller? Current leases are extended so the reaper cannot reclaim them while
-- PostgreSQL commits.
-- ARGV: base, token_id, worker_id, default_lease_ms, overrides_json, n, then pairs
-- task_id, lease_id.
-- Returns per item: 'current' | 'not_holder' | 'duplicate' | 'stale', the platform
-- ('' if unknown), and the task's `waiters` (0 when absent): the results path calls its
-- hook only for tasks some job waits for.
local token, worker = ARGV[2], ARGV[3]
local default_ms = tonumber(ARGV[4])
local overrides = cjson.decode(ARGV[5])
local n = tonumber(ARGV[6])
local out = {}
for j = 0, n - 1 do
  local tid, lid = ARGV[7 + 2 * j], ARGV[8 + 2 * j]
  local s = settled(tid, lid, token, worker)
  local p = ''
  if s == 'current' then
    p = redis.call('HGET', task_key(tid), 'platform')
    local exp = now + lease_ms_for(overrides, default_ms, p)
    local cur = tonumber(redis.call('ZSCORE', base .. 'leased:' .. p, tid) or 0)
    if exp > cur then
      redis.call('ZADD', base .. 'leased:' .. p, fmt(exp), tid)
      redis.call('HSET', task_key(tid), 'lease_exp', fmt(exp))
    end
  end
  out[#out + 1] = s
  out[#out + 1] = p
  out[#out + 1] = tonumber(redis.call('HGET', task_key(tid), 'waiters') or 0)
end
return out
