-- ARGV[4..]: lease_id, outcome, ban_base_ms, ban_cap_ms, token_id, worker_id
return release(ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9])
