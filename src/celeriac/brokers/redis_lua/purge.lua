-- include: lib
-- purge.lua: delete every message of some queues that is not under a live lease.
--
-- KEYS[1]  messages     hash    "<tag>" and "<tag>:s" of each purged message (deleted); the
--                               state of a pending message tells a live lease from a delay
-- then three keys per queue, from KEYS[2 + 3 * (i - 1)]:
--          ready:<q>    zset    deleted
--          pending:<q>  zset    delayed messages and run-out leases removed; live leases kept
--          wake:<q>     list    deleted
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
--
-- Returns how many messages were deleted.
--
-- Why a script: a message must not be fetched while it is being deleted, nor half deleted.

local now = clock()

local count = 0
for base = 2, #KEYS, 3 do
  local doomed = redis.call('ZRANGE', KEYS[base], 0, -1)
  local pending = redis.call('ZRANGE', KEYS[base + 1], 0, -1, 'WITHSCORES')
  for i = 1, #pending, 2 do
    local tag = pending[i]
    local live = false
    if tonumber(pending[i + 1]) > now then
      local state = redis.call('HGET', KEYS[1], tag .. ':s')
      live = state ~= false and string.match(state, '^%d:%d+:.+$') ~= nil
    end
    if not live then -- a live lease stays: its holder may still finish it
      doomed[#doomed + 1] = tag
      redis.call('ZREM', KEYS[base + 1], tag)
    end
  end
  for i = 1, #doomed do
    redis.call('HDEL', KEYS[1], doomed[i], doomed[i] .. ':s')
  end
  redis.call('DEL', KEYS[base], KEYS[base + 2])
  count = count + #doomed
end
return count
