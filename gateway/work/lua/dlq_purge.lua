-- Delete dead-lettered tasks for good. ARGV: base, then task ids. Returns the count.
local purged = 0
for j = 2, #ARGV do
  local tid = ARGV[j]
  local f = redis.call('HMGET', task_key(tid), 'state', 'platform')
  if f[1] == 'dead' then
    redis.call('ZREM', base .. 'dead:' .. f[2], tid)
    redis.call('DEL', task_key(tid))
    purged = purged + 1
  end
end
return purged
