-- Record a worker and extend the leases it still holds.
-- ARGV: base, worker_id, info_json, default_lease_ms, overrides_json, n, lease ids...
-- Returns {command, n_extended, extended lease ids..., lost lease ids...}.
local worker, info, default_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
local overrides = cjson.decode(ARGV[5])
local n = tonumber(ARGV[6])
redis.call('HSET', base .. 'workers', worker, info)
redis.call('ZADD', base .. 'seen', fmt(now), worker)
local extended, lost = {}, {}
for j = 1, n do
  local lid = ARGV[6 + j]
  local tid = redis.call('HGET', base .. 'leases', lid)
  local ok = false
  if tid then
    local k = task_key(tid)
    local f = redis.call('HMGET', k, 'state', 'lease_id', 'worker_id', 'platform')
    if f[1] == 'leased' and f[2] == lid and f[3] == worker then
      local exp = now + lease_ms_for(overrides, default_ms, f[4])
      redis.call('ZADD', base .. 'leased:' .. f[4], fmt(exp), tid)
      redis.call('HSET', k, 'lease_exp', fmt(exp))
      ok = true
    end
  end
  if ok then extended[#extended + 1] = lid else lost[#lost + 1] = lid end
end
local command = redis.call('HGET', base .. 'commands', worker)
  or redis.call('HGET', base .. 'commands', '*') or 'run'
local out = {command, #extended}
for _, v in ipairs(extended) do out[#out + 1] = v end
for _, v in ipairs(lost) do out[#out + 1] = v end
return out
