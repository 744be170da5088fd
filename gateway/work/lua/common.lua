-- Shared helpers, prepended to every worker-plane script (see scripts.py).
-- Keys are built from ARGV[1], the audience base key (`<prefix>wq:<audience>:`); the
-- queue is meant for a single Redis primary, not Redis Cluster.
local base = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function fmt(n)
  -- Integers up to 2^53 exactly; Lua's default number formatting keeps only 14 digits.
  return string.format('%d', n)
end

local function task_key(tid) return base .. 't:' .. tid end

-- Priority first (higher is better), then FIFO by a per-audience sequence number. The
-- number is drawn the first time a task becomes ready and kept in its hash (`seq`), so a
-- task that comes back (lease reclaimed, retry after backoff, dead-letter requeue)
-- re-enters at its original place within its priority, not behind the whole backlog:
-- a crash costs a lease timeout (and the backoff), never a queue's length.
local function ready_score(tid, prio)
  local k = task_key(tid)
  local seq = redis.call('HGET', k, 'seq')
  if not seq then
    seq = redis.call('INCR', base .. 'seq')
    redis.call('HSET', k, 'seq', seq)
  end
  return fmt(-tonumber(prio) * 1e10 + tonumber(seq))
end

-- A task routed to Celery (its `lane` field names the route, see
-- gateway/work/routing/router.py) waits in `cready:<p>` instead of `ready:<p>`: HTTP
-- workers never see it, and the gateway's Celery dispatcher leases it from there and
-- publishes it. Every way back to ready (retry, reclaimed lease, dead-letter requeue)
-- passes here, so a task stays on its side for life. The dispatcher is woken with
-- '@celery' on the wake channel (no platform is named so), once per script.
local celery_woken = false

-- Returns true when the task is ready for HTTP workers (the caller wakes platform p).
local function make_ready(tid, p, prio, since)
  local k = task_key(tid)
  redis.call('HSET', k, 'state', 'ready', 'lease_id', '', 'worker_id', '')
  -- Deleted, not emptied: a lease without token_id is one granted before binding.
  redis.call('HDEL', k, 'token_id')
  local lane = redis.call('HGET', k, 'lane')
  if lane and lane ~= '' then
    redis.call('ZADD', base .. 'cready:' .. p, ready_score(tid, prio), tid)
    if not celery_woken then
      redis.call('PUBLISH', base .. 'wake', '@celery')
      celery_woken = true
    end
    return false
  end
  redis.call('ZADD', base .. 'ready:' .. p, ready_score(tid, prio), tid)
  redis.call('ZADD', base .. 'since:' .. p, fmt(since), tid)
  return true
end

local function lease_ms_for(overrides, default_ms, p)
  local o = overrides[p]
  if o then return tonumber(o) end
  return default_ms
end

-- Whether (tid, lid) is the current lease of a live task: 'current', 'not_holder' when
-- it is but was leased by another holder (token id, worker id), else false. `token` nil
-- skips the holder check: complete.lua runs only after check.lua compared the holder in
-- the same request. A lease without `token_id` was granted before leases were bound
-- (an older replica) and is accepted from any holder until it ends.
local function current(tid, lid, token, worker)
  local f = redis.call('HMGET', task_key(tid), 'state', 'lease_id', 'token_id', 'worker_id')
  if f[1] ~= 'leased' or f[2] ~= lid then return false end
  if token and f[3] and (f[3] ~= token or f[4] ~= worker) then return 'not_holder' end
  return 'current'
end

-- 'current' or 'not_holder' as `current` says; else 'duplicate' when this lease already
-- reported a failure (remembered in the task hash, bounded by MAX_ATTEMPTS); else 'stale'. Completed succeeded leases are
-- recognised from PostgreSQL history by the caller, so Redis keeps nothing per
-- completed task.
local function settled(tid, lid, token, worker)
  local c = current(tid, lid, token, worker)
  if c then return c end
  if redis.call('HEXISTS', task_key(tid), 'fl:' .. lid) == 1 then return 'duplicate' end
  return 'stale'
end

-- Deletes a task for good, from whichever state it is in: nobody wants it any more (its
-- last waiter was released, or it was cancelled while leased and that lease ended).
-- Frees its dedupe entry only if that still names this task.
local function forget_task(tid, p, key, lid)
  for _, set in ipairs({'ready:', 'cready:', 'since:', 'delayed:', 'leased:'}) do
    redis.call('ZREM', base .. set .. p, tid)
  end
  if lid and lid ~= '' then redis.call('HDEL', base .. 'leases', lid) end
  local dk = p .. ':' .. key
  if redis.call('HGET', base .. 'dedupe', dk) == tid then redis.call('HDEL', base .. 'dedupe', dk) end
  redis.call('DEL', task_key(tid))
end

-- Creates a task (its dedupe entry, hash and place in ready or delayed); `woke` collects
-- the platforms that got ready work, to publish once per script. `lane` is '' (native)
-- or the Celery route the task was routed to when created; it never changes after.
local function create_task(tid, p, key, payload, prio, nb, woke, lane)
  redis.call('HSET', base .. 'dedupe', p .. ':' .. key, tid)
  redis.call('SADD', base .. 'platforms', p)
  redis.call('HSET', task_key(tid), 'platform', p, 'key', key, 'payload', payload,
    'priority', prio, 'attempt', 1, 'created_ms', fmt(now), 'errors', '')
  if lane and lane ~= '' then redis.call('HSET', task_key(tid), 'lane', lane) end
  if nb ~= '' and tonumber(nb) > now then
    redis.call('HSET', task_key(tid), 'state', 'delayed')
    redis.call('ZADD', base .. 'delayed:' .. p, nb, tid)
  elseif make_ready(tid, p, prio, now) then
    woke[p] = true
  end
end

-- Ends a lease that failed (worker-reported or expired): append the error, then requeue
-- with backoff (attempt+1) or dead-letter. A task cancelled while leased (`cancelled`,
-- see release.lua) is deleted instead: nobody waits for it, so it is neither retried nor
-- dead-lettered. Returns {'retry'|'dead'|'cancelled', platform, waiters, attempt}.
local function fail_task(tid, lid, err, retryable, jitter, max_attempts, base_ms, cap_ms)
  local k = task_key(tid)
  local f = redis.call('HMGET', k, 'platform', 'key', 'attempt', 'errors', 'cancelled', 'waiters')
  local p, key, attempt = f[1], f[2], tonumber(f[3])
  local waiters = tonumber(f[6] or 0)
  if f[5] == '1' then
    forget_task(tid, p, key, lid)
    return {'cancelled', p, waiters, attempt}
  end
  local errors = {}
  if f[4] and f[4] ~= '' then errors = cjson.decode(f[4]) end
  err['attempt'] = attempt
  err['at_ms'] = now
  errors[#errors + 1] = err
  while #errors > 20 do table.remove(errors, 1) end
  redis.call('ZREM', base .. 'leased:' .. p, tid)
  redis.call('HDEL', base .. 'leases', lid)
  redis.call('HSET', k, 'errors', cjson.encode(errors), 'lease_id', '', 'worker_id', '')
  redis.call('HDEL', k, 'token_id')
  if retryable and attempt < max_attempts then
    local delay = math.min(cap_ms, base_ms * (2 ^ (attempt - 1))) * (0.5 + 0.5 * jitter)
    redis.call('HSET', k, 'state', 'delayed', 'attempt', attempt + 1)
    redis.call('ZADD', base .. 'delayed:' .. p, fmt(now + delay), tid)
    return {'retry', p, waiters, attempt}
  end
  redis.call('HSET', k, 'state', 'dead', 'dead_at', fmt(now))
  redis.call('ZADD', base .. 'dead:' .. p, fmt(now), tid)
  local dk = p .. ':' .. key
  if redis.call('HGET', base .. 'dedupe', dk) == tid then redis.call('HDEL', base .. 'dedupe', dk) end
  return {'dead', p, waiters, attempt}
end

-- Move due delayed tasks of platform p to ready; returns how many moved.
local function promote(p, limit)
  local due = redis.call('ZRANGEBYSCORE', base .. 'delayed:' .. p, '-inf', fmt(now), 'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #due, 2 do
    local tid = due[i]
    redis.call('ZREM', base .. 'delayed:' .. p, tid)
    local prio = redis.call('HGET', task_key(tid), 'priority')
    if prio then make_ready(tid, p, prio, tonumber(due[i + 1])) end
  end
  return #due / 2
end
