-- Shared prelude of every proxy pool script (prepended by scripts.py); see service.py
-- for the data model. Every script takes ARGV[1] = key base, ARGV[2] = now (ms),
-- ARGV[3] = deepest error tier. Keys are built here rather than passed in KEYS because a
-- lease also reclaims expired leases of other platforms: the pool needs a single Redis
-- (or a Redis replicated primary), not Redis Cluster.
local BASE = ARGV[1]
local NOW = tonumber(ARGV[2])
local MAX_TIER = tonumber(ARGV[3])
-- A zset score packs (error tier, last use in ms): lower tiers first, then least
-- recently used. Epoch milliseconds stay below 1e13 until the year 2286.
local TIER = 1e13

local function k(a, b)
  if b then return BASE .. a .. ':' .. b end
  return BASE .. a
end

local function score(pf, id)
  local st = k('st', pf)
  local e = tonumber(redis.call('HGET', st, 'e:' .. id) or '0')
  local u = tonumber(redis.call('HGET', st, 'u:' .. id) or '0')
  if e > MAX_TIER then e = MAX_TIER end
  return e * TIER + u
end

-- Puts a proxy that nobody holds back into the platform's available set, unless it is
-- cooling down after a ban there or has been removed from the inventory.
local function return_to_pool(pf, id)
  if redis.call('HEXISTS', k('inv'), id) == 0 then return end
  local cool = redis.call('ZSCORE', k('cool', pf), id)
  if cool and tonumber(cool) > NOW then return end
  if cool then redis.call('ZREM', k('cool', pf), id) end
  redis.call('ZADD', k('avail', pf), score(pf, id), id)
end

-- A platform seen for the first time starts with every proxy available.
local function ensure_platform(pf)
  if redis.call('SADD', k('platforms'), pf) == 1 then
    for _, id in ipairs(redis.call('HKEYS', k('inv'))) do
      redis.call('ZADD', k('avail', pf), 0, id)
    end
  end
end

-- Proxies whose cool-down has ended become available again (unless someone holds one
-- through a lease that was banned after it expired).
local function uncool(pf)
  local due = redis.call('ZRANGEBYSCORE', k('cool', pf), '-inf', NOW)
  for _, id in ipairs(due) do
    redis.call('ZREM', k('cool', pf), id)
    if redis.call('HEXISTS', k('inuse', pf), id) == 0 then return_to_pool(pf, id) end
  end
end

-- Leases past their expiry give their proxy back. The lease record stays (state
-- `expired`) until its TTL so a late release can still report a ban.
local function reclaim(limit)
  local due = redis.call('ZRANGEBYSCORE', k('leases'), '-inf', NOW, 'LIMIT', 0, limit)
  for _, lid in ipairs(due) do
    redis.call('ZREM', k('leases'), lid)
    local lk = k('lease', lid)
    local f = redis.call('HMGET', lk, 'state', 'platform', 'proxy')
    if f[1] == 'active' then
      redis.call('HSET', lk, 'state', 'expired')
      if redis.call('HGET', k('inuse', f[2]), f[3]) == lid then
        redis.call('HDEL', k('inuse', f[2]), f[3])
        redis.call('HSET', k('st', f[2]), 'u:' .. f[3], NOW)
        return_to_pool(f[2], f[3])
      end
    end
  end
  return #due
end

-- Leases the best available proxy of `pf` (never `exclude`) to the holder (token id,
-- worker id). Returns {1, proxy_id, url, expires_ms} or {0, inventory_size,
-- ms_until_first_cool_down_ends}.
local function lease(pf, token, worker, lid, ttl_ms, grace_ms, exclude)
  ensure_platform(pf)
  uncool(pf)
  local cands = redis.call('ZRANGE', k('avail', pf), 0, 1)
  local id = cands[1]
  if id and id == exclude then id = cands[2] end
  if not id then
    local first = redis.call('ZRANGE', k('cool', pf), 0, 0, 'WITHSCORES')
    local wait = -1
    if first[2] then wait = tonumber(first[2]) - NOW end
    return {0, redis.call('HLEN', k('inv')), wait}
  end
  local expires = NOW + ttl_ms
  redis.call('ZREM', k('avail', pf), id)
  redis.call('HSET', k('inuse', pf), id, lid)
  redis.call('HSET', k('st', pf), 'u:' .. id, NOW)
  redis.call('ZADD', k('leases'), expires, lid)
  local lk = k('lease', lid)
  redis.call('HSET', lk, 'state', 'active', 'platform', pf, 'proxy', id, 'token', token,
    'worker', worker)
  redis.call('PEXPIRE', lk, ttl_ms + grace_ms)
  return {1, id, redis.call('HGET', k('inv'), id), expires}
end

-- Applies a release outcome by the holder (token id, worker id). Returns {status,
-- platform, proxy_id, cool_down_ms, worker} with status released | expired |
-- already_released | not_holder (leased by another token or worker id: nothing
-- changes), or {'unknown'}. A lease record without `token` was written before leases
-- were bound (an older replica) and is released by anyone, as it used to be.
local function release(lid, outcome, ban_base_ms, ban_cap_ms, token, worker)
  local lk = k('lease', lid)
  local f = redis.call('HMGET', lk, 'state', 'platform', 'proxy', 'worker', 'token')
  local state, pf, id = f[1], f[2], f[3]
  if not state then return {'unknown'} end
  if f[5] and (f[5] ~= token or f[4] ~= worker) then return {'not_holder', pf, id, 0, f[4]} end
  if state == 'released' then return {'already_released', pf, id, 0, f[4]} end
  local st = k('st', pf)
  local known = redis.call('HEXISTS', k('inv'), id) == 1
  local cool_ms = 0
  if outcome == 'ok' then
    -- Each success halves the error count, so a recovered proxy climbs back quickly.
    local e = tonumber(redis.call('HGET', st, 'e:' .. id) or '0')
    redis.call('HSET', st, 'e:' .. id, math.floor(e / 2))
    redis.call('HDEL', st, 'b:' .. id)
  elseif outcome == 'error' then
    redis.call('HINCRBY', st, 'e:' .. id, 1)
  elseif outcome == 'banned' and known then
    local bans = redis.call('HINCRBY', st, 'b:' .. id, 1)
    cool_ms = ban_base_ms * 2 ^ (bans - 1)
    if cool_ms > ban_cap_ms then cool_ms = ban_cap_ms end
    cool_ms = math.floor(cool_ms)
    redis.call('ZADD', k('cool', pf), NOW + cool_ms, id)
    redis.call('ZREM', k('avail', pf), id)
  end
  local status = 'expired'
  if state == 'active' then
    status = 'released'
    redis.call('ZREM', k('leases'), lid)
    if redis.call('HGET', k('inuse', pf), id) == lid then
      redis.call('HDEL', k('inuse', pf), id)
      redis.call('HSET', st, 'u:' .. id, NOW)
      return_to_pool(pf, id)
    end
  elseif redis.call('ZSCORE', k('avail', pf), id) then
    -- Expired lease: the proxy is back in the pool already; re-rank it.
    redis.call('ZADD', k('avail', pf), score(pf, id), id)
  end
  redis.call('HSET', lk, 'state', 'released')
  return {status, pf, id, cool_ms, f[4]}
end
