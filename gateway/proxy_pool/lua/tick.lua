-- Periodic upkeep: reclaim expired leases, end cool-downs, and report per platform
-- {platform, available, leased, cooling, ...} preceded by {synced (1/0), reclaimed}.
-- ARGV[4] = reclaim limit.
local reclaimed = reclaim(tonumber(ARGV[4]))
local out = {redis.call('EXISTS', k('synced')), reclaimed}
for _, pf in ipairs(redis.call('SMEMBERS', k('platforms'))) do
  uncool(pf)
  table.insert(out, pf)
  table.insert(out, redis.call('ZCARD', k('avail', pf)))
  table.insert(out, redis.call('HLEN', k('inuse', pf)))
  table.insert(out, redis.call('ZCARD', k('cool', pf)))
end
return out
