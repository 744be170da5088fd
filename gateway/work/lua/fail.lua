-- Worker-reported failures. ARGV: base, token_id, worker_id, max_attempts,
-- backoff_base_ms, backoff_cap_ms, n, then per item: task_id, lease_id, error_json,
-- retryable(1|0), jitter.
-- Returns four values per item: 'retry' | 'dead' | 'cancelled' | 'not_holder' |
-- 'duplicate' | 'stale'; the platform; the task's `waiters` and the attempt that failed
-- (0 and 0 unless the lease was current). 'cancelled': the task was cancelled while
-- leased (release.lua) and is now deleted; nothing is kept of it, so the same failure
-- posted again is 'stale'.
local token, worker = ARGV[2], ARGV[3]
local max_attempts, base_ms, cap_ms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local n = tonumber(ARGV[7])
local out = {}
for j = 0, n - 1 do
  local at = 8 + 5 * j
  local tid, lid = ARGV[at], ARGV[at + 1]
  local s = settled(tid, lid, token, worker)
  if s == 'current' then
    local r = fail_task(tid, lid, cjson.decode(ARGV[at + 2]), ARGV[at + 3] == '1',
      tonumber(ARGV[at + 4]), max_attempts, base_ms, cap_ms)
    if r[1] ~= 'cancelled' then redis.call('HSET', task_key(tid), 'fl:' .. lid, '1') end
    for _, v in ipairs(r) do out[#out + 1] = v end
  else
    for _, v in ipairs({s, '', 0, 0}) do out[#out + 1] = v end
  end
end
return out
