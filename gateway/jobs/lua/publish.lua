-- Publish job events after their transaction committed: append each to its job's stream
-- (explicit id 0-<seq>, so a consumer resumes with XRANGE key (0-<last seen> +) and to the
-- cross-job feed. Events of one job can reach Redis out of order (two replicas commit seq
-- 7 and 8 and publish in the other order); an event whose seq is not above the stream's
-- last one is dropped. Only `job.progress` snapshots can lose that race (a newer snapshot
-- supersedes them): state changes are the last event of their job's transaction and a
-- terminal event is the last event of the job. Re-publishing is therefore harmless, which
-- is what makes the upkeep loop's relay safe.
-- KEYS: feed, then one stream key per event.
-- ARGV: ttl_s, feed_max, stream_max, then per event: seq, type, job_id, event_json.
-- Returns the number of events appended.
local ttl, feed_max, stream_max = ARGV[1], ARGV[2], ARGV[3]
local appended = 0
for i = 2, #KEYS do
  local at = 4 + (i - 2) * 4
  local seq, typ, job, body = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local stream = KEYS[i]
  local last = 0
  local tail = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #tail > 0 then last = tonumber(string.match(tail[1][1], '^0%-(%d+)$')) or 0 end
  if tonumber(seq) > last then
    redis.call('XADD', stream, 'MAXLEN', '~', stream_max, '0-' .. seq, 'type', typ, 'event', body)
    redis.call('EXPIRE', stream, ttl)
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', feed_max, '*', 'job', job, 'seq', seq, 'type', typ, 'event', body)
    appended = appended + 1
  end
end
return appended
