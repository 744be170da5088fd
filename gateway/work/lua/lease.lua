-- ARGV: base, token_id, worker_id, limit, max_batch_bytes, default_lease_ms,
--       overrides_json, ready set ('ready:' for HTTP workers, 'cready:' for the Celery
--       dispatcher, see make_ready in common.lua), nplatforms, platforms..., then
--       `limit` fresh lease ids.
-- Returns {now, next_due_ms|-1, command, then 8 fields per leased task:
--          task_id, lease_id, platform, key, payload, attempt, expires_ms, lane}.
local token, worker, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local max_bytes, default_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local overrides = cjson.decode(ARGV[7])
local ready = ARGV[8]
local np = tonumber(ARGV[9])
local platforms = {}
for j = 1, np do platforms[j] = ARGV[9 + j] end
local lease_ids_at = 9 + np

local command = redis.call('HGET', base .. 'commands', worker)
  or redis.call('HGET', base .. 'commands', '*') or 'run'
local out = {now, -1, command}
if command ~= 'run' then return out end

for j = 1, np do promote(platforms[j], 1000) end

-- What one task adds to the answer, roughly: its payload and key as stored, plus the
-- ids, field names and timestamp around them. Only an estimate, but it grows with what
-- actually makes an answer big (the payload), which is all the budget needs.
local TASK_OVERHEAD = 200
local function answer_bytes(p, key, payload)
  return #payload + #key + #p + TASK_OVERHEAD
end

-- Round-robin over the requested platforms from a rotating start, one task per turn, so
-- a platform with a deep backlog cannot starve the others. The batch also stops before
-- the task that would take it past `max_bytes` (the first task is always handed out,
-- whatever its size): that task stays at the head of its queue, untouched, so nothing
-- is leased that the answer does not carry.
local start = redis.call('INCR', base .. 'rr') % np
local empty, got, live, bytes, full = {}, 0, np, 0, false
while got < limit and live > 0 and not full do
  for r = 0, np - 1 do
    if got >= limit or full then break end
    local p = platforms[((start + r) % np) + 1]
    if not empty[p] then
      local head = redis.call('ZRANGE', base .. ready .. p, 0, 0)
      if #head == 0 then
        empty[p] = true
        live = live - 1
      else
        local tid = head[1]
        local k = task_key(tid)
        local f = redis.call('HMGET', k, 'state', 'key', 'payload', 'attempt', 'lane')
        local size = 0
        if f[1] == 'ready' then size = answer_bytes(p, f[2], f[3]) end
        if f[1] == 'ready' and got > 0 and bytes + size > max_bytes then
          full = true
        else
          redis.call('ZREM', base .. ready .. p, tid)
          redis.call('ZREM', base .. 'since:' .. p, tid)
          if f[1] == 'ready' then
            got = got + 1
            bytes = bytes + size
            local lid = ARGV[lease_ids_at + got]
            local exp = now + lease_ms_for(overrides, default_ms, p)
            -- The holder (token id and worker id) is bound here: only it may extend,
            -- complete or fail this lease (see `current` in common.lua).
            redis.call('HSET', k, 'state', 'leased', 'lease_id', lid, 'token_id', token,
              'worker_id', worker, 'lease_exp', fmt(exp))
            redis.call('ZADD', base .. 'leased:' .. p, fmt(exp), tid)
            redis.call('HSET', base .. 'leases', lid, tid)
            for _, v in ipairs({tid, lid, p, f[2], f[3], f[4], exp, f[5] or ''}) do out[#out + 1] = v end
          end
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
