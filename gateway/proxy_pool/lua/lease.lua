-- ARGV[4..]: platform, token_id, worker_id, lease_id, ttl_ms, grace_ms, reclaim_limit
if redis.call('EXISTS', k('synced')) == 0 then return {-1} end
reclaim(tonumber(ARGV[10]))
return lease(ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), false)
