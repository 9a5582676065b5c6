-- include: lib
-- recover.lua: make the messages whose lease ran out (and delayed ones whose ETA came) ready
-- again. Fetch does this too, for the queues it reads; this covers every queue at once.
--
-- KEYS[1]  messages     hash    "<tag>:s" -> "<priority>:<attempt>[:<token>]" (a run-out
--                               lease's token is removed)
-- then three keys per queue, from KEYS[2 + 3 * (i - 1)]:
--          ready:<q>    zset    tag by rank: due messages return here
--          pending:<q>  zset    tag by lease deadline or ETA: due messages leave it
--          wake:<q>     list    given one element when a message returns
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
--
-- Returns how many leases had run out.
--
-- Why a script: a lease that runs out must leave pending:<q>, lose its token and join
-- ready:<q> in one step, or its holder could still settle it after another worker took it.

local now = clock()

local count = 0
for base = 2, #KEYS, 3 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[base + 1], '-inf', now)
  for i = 1, #due do
    local tag = due[i]
    local state = redis.call('HGET', KEYS[1], tag .. ':s')
    if state then
      local priority, attempt, held = string.match(state, '^(%d):(%d+):?(.*)$')
      redis.call('ZADD', KEYS[base], rank(priority, tag), tag)
      if held ~= '' then
        redis.call('HSET', KEYS[1], tag .. ':s', priority .. ':' .. attempt)
        count = count + 1
      end
    end
    redis.call('ZREM', KEYS[base + 1], tag)
  end
  if #due > 0 then
    wake(KEYS[base + 2])
  end
end
return count
