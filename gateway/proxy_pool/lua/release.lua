-- ARGV[4..]: lease_id, outcome, ban_base_ms, ban_cap_ms
return release(ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]))
