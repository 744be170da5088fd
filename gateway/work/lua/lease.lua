-- ARGV: base, worker_id, limit, default_lease_ms, overrides_json, nplatforms, platforms...,
--       then `limit` fresh lease ids.
-- Returns {now, next_due_ms|-1, command, then 7 fields per leased task:
--          task_id, lease_id, platform, key, payload, attempt, expires_ms}.
local worker, limit, default_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local overrides = cjson.decode(ARGV[5])
local np = tonumber(ARGV[6])
local platforms = {}
for j = 1, np do platforms[j] = ARGV[6 + j] end
local lease_ids_at = 6 + np

local command = redis.call('HGET', base .. 'commands', worker)
  or redis.call('HGET', base .. 'commands', '*') or 'run'
local out = {now, -1, command}
if command ~= 'run' then return out end

for j = 1, np do promote(platforms[j], 1000) end

-- Round-robin over the requested platforms from a rotating start, one task per turn, so
-- a platform with a deep backlog cannot starve the others.
local start = redis.call('INCR', base .. 'rr') % np
local empty, got, live = {}, 0, np
while got < limit and live > 0 do
  for r = 0, np - 1 do
    if got >= limit then break end
    local p = platforms[((start + r) % np) + 1]
    if not empty[p] then
      local popped = redis.call('ZPOPMIN', base .. 'ready:' .. p)
      if #popped == 0 then
        empty[p] = true
        live = live - 1
      else
        local tid = popped[1]
        local k = task_key(tid)
        redis.call('ZREM', base .. 'since:' .. p, tid)
        if redis.call('HGET', k, 'state') == 'ready' then
          got = got + 1
          local lid = ARGV[lease_ids_at + got]
          local exp = now + lease_ms_for(overrides, default_ms, p)
          redis.call('HSET', k, 'state', 'leased', 'lease_id', lid, 'worker_id', worker, 'lease_exp', fmt(exp))
          redis.call('ZADD', base .. 'leased:' .. p, fmt(exp), tid)
          redis.call('HSET', base .. 'leases', lid, tid)
          local f = redis.call('HMGET', k, 'key', 'payload', 'attempt')
          for _, v in ipairs({tid, lid, p, f[1], f[2], f[3], exp}) do out[#out + 1] = v end
        end
      end
    end
  end
end

if got == 0 then
  local next_due = -1
  for j = 1, np do
    local first = redis.call('ZRANGE', base .. 'delayed:' .. platforms[j], 0, 0, 'WITHSCORES')
    if #first > 0 then
      local due = tonumber(first[2])
      if next_due < 0 or due < next_due then next_due = due end
    end
  end
  out[2] = next_due
end
return out
