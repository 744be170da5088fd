-- Release one lease and lease another proxy of the same platform for the same holder,
-- in one step: nobody can take the released proxy's place in between, and the new lease
-- never returns the proxy just released. Only the holder may rotate (see `release`).
-- ARGV[4..]: old_lease_id, outcome, ban_base_ms, ban_cap_ms, token_id, worker_id,
-- new_lease_id, ttl_ms, grace_ms, reclaim_limit. Returns {release result, lease result}.
if redis.call('EXISTS', k('synced')) == 0 then return {{-1}, {-1}} end
local token, worker = ARGV[8], ARGV[9]
local released = release(ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), token, worker)
if released[1] == 'unknown' or released[1] == 'not_holder' then return {released, {}} end
reclaim(tonumber(ARGV[13]))
local leased = lease(released[2], token, worker, ARGV[10], tonumber(ARGV[11]),
  tonumber(ARGV[12]), released[3])
return {released, leased}
