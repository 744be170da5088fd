-- Release one lease and lease another proxy of the same platform for the same worker,
-- in one step: nobody can take the released proxy's place in between, and the new lease
-- never returns the proxy just released.
-- ARGV[4..]: old_lease_id, outcome, ban_base_ms, ban_cap_ms, new_lease_id, ttl_ms,
-- grace_ms, reclaim_limit. Returns {release result, lease result}.
if redis.call('EXISTS', k('synced')) == 0 then return {{-1}, {-1}} end
local released = release(ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]))
if released[1] == 'unknown' then return {released, {}} end
reclaim(tonumber(ARGV[11]))
local leased = lease(released[2], released[5], ARGV[8], tonumber(ARGV[9]),
  tonumber(ARGV[10]), released[3])
return {released, leased}
