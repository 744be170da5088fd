-- Per proxy and platform state for `gateway proxies list`:
-- {platform, proxy_id, state, errors, bans, cool_until_ms, ...}. Read-only.
local out = {}
for _, pf in ipairs(redis.call('SMEMBERS', k('platforms'))) do
  local st = k('st', pf)
  for _, id in ipairs(redis.call('HKEYS', k('inv'))) do
    local state = 'available'
    local cool = redis.call('ZSCORE', k('cool', pf), id)
    if redis.call('HEXISTS', k('inuse', pf), id) == 1 then
      state = 'leased'
    elseif cool and tonumber(cool) > NOW then
      state = 'cooling'
    end
    table.insert(out, pf)
    table.insert(out, id)
    table.insert(out, state)
    table.insert(out, redis.call('HGET', st, 'e:' .. id) or '0')
    table.insert(out, redis.call('HGET', st, 'b:' .. id) or '0')
    table.insert(out, cool or '0')
  end
end
return out
