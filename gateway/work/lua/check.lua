-- Before committing succeeded results: is each lease still current? Current leases are
-- extended so the reaper cannot reclaim them while PostgreSQL commits.
-- ARGV: base, default_lease_ms, overrides_json, n, then pairs task_id, lease_id.
-- Returns per item: 'current' | 'duplicate' | 'stale', then the platform ('' if unknown).
local default_ms = tonumber(ARGV[2])
local overrides = cjson.decode(ARGV[3])
local n = tonumber(ARGV[4])
local out = {}
for j = 0, n - 1 do
  local tid, lid = ARGV[5 + 2 * j], ARGV[6 + 2 * j]
  local s = settled(tid, lid)
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
end
return out
