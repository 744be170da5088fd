-- Record a worker and extend the leases it still holds.
-- ARGV: base, token_id, worker_id, info_json, default_lease_ms, overrides_json, n,
-- lease ids...
-- Returns {command, then per lease id in request order: 'extended' | 'lost' |
-- 'not_holder' | 'cancelled'} ('not_holder': current, but leased by another token or
-- worker id; 'cancelled': current and the caller's, but nobody wants the task any more
-- (release.lua): not extended, so the worker stops and the lease ends).
local token, worker, info, default_ms = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local overrides = cjson.decode(ARGV[6])
local n = tonumber(ARGV[7])
redis.call('HSET', base .. 'workers', worker, info)
redis.call('ZADD', base .. 'seen', fmt(now), worker)
local command = redis.call('HGET', base .. 'commands', worker)
  or redis.call('HGET', base .. 'commands', '*') or 'run'
local out = {command}
for j = 1, n do
  local lid = ARGV[7 + j]
  local tid = redis.call('HGET', base .. 'leases', lid)
  local s = 'lost'
  if tid then
    -- A lease granted before leases were bound to a token still needs the worker id.
    local k = task_key(tid)
    local c = current(tid, lid, token, worker)
    if c == 'current' and redis.call('HGET', k, 'worker_id') ~= worker then c = 'not_holder' end
    if c == 'current' and redis.call('HGET', k, 'cancelled') == '1' then
      s = 'cancelled'
    elseif c == 'current' then
      local p = redis.call('HGET', k, 'platform')
      local exp = now + lease_ms_for(overrides, default_ms, p)
      redis.call('ZADD', base .. 'leased:' .. p, fmt(exp), tid)
      redis.call('HSET', k, 'lease_exp', fmt(exp))
      s = 'extended'
    elseif c == 'not_holder' then
      s = 'not_holder'
    end
  end
  out[#out + 1] = s
end
return out
