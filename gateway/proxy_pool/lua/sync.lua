-- Replaces the inventory with the PostgreSQL copy. ARGV[4] = marker TTL (ms), then
-- id, url pairs. Self-healing: any inventory proxy that is neither available, cooling
-- nor leased on a known platform is made available again there.
local fresh = {}
local count = 0
for i = 5, #ARGV, 2 do
  fresh[ARGV[i]] = ARGV[i + 1]
  count = count + 1
end
local removed = {}
for _, id in ipairs(redis.call('HKEYS', k('inv'))) do
  if not fresh[id] then table.insert(removed, id) end
end
redis.call('DEL', k('inv'))
for id, url in pairs(fresh) do redis.call('HSET', k('inv'), id, url) end
for _, pf in ipairs(redis.call('SMEMBERS', k('platforms'))) do
  local st = k('st', pf)
  for _, id in ipairs(removed) do
    redis.call('ZREM', k('avail', pf), id)
    redis.call('ZREM', k('cool', pf), id)
    redis.call('HDEL', st, 'e:' .. id, 'b:' .. id, 'u:' .. id)
  end
  for id, _ in pairs(fresh) do
    if not redis.call('ZSCORE', k('avail', pf), id)
      and not redis.call('ZSCORE', k('cool', pf), id)
      and redis.call('HEXISTS', k('inuse', pf), id) == 0 then
      redis.call('ZADD', k('avail', pf), score(pf, id), id)
    end
  end
end
redis.call('SET', k('synced'), '1', 'PX', tonumber(ARGV[4]))
return {count, #removed}
