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
-- Returns how many messages were deleted. A message whose state does not parse holds no live
-- lease, so it is deleted too.
--
-- Why a script: a message must not be fetched while it is being deleted, nor half deleted.
-- Everything is read before the first write, so that an error leaves every key as it was.

local now = clock()
local nq = (#KEYS - 1) / 3
if nq % 1 ~= 0 then
  refuse('purge takes three keys per queue')
end

local doomed, unpend, held_names, held_tags, held_queue = {}, {}, {}, {}, {}
for i = 1, nq do
  local base = 3 * i - 1
  for _, tag in ipairs(redis.call('ZRANGE', KEYS[base], 0, -1)) do
    doomed[#doomed + 1] = tag
  end
  unpend[i] = {}
  local pending = redis.call('ZRANGE', KEYS[base + 1], 0, -1, 'WITHSCORES')
  for j = 1, #pending, 2 do
    -- A live lease stays: its holder may still finish it.
    if tonumber(pending[j + 1]) > now then
      held_tags[#held_tags + 1] = pending[j]
      held_names[#held_tags] = pending[j] .. ':s'
      held_queue[#held_tags] = i
    else
      doomed[#doomed + 1] = pending[j]
      table.insert(unpend[i], pending[j])
    end
  end
end
local states = hmget_all(KEYS[1], held_names)
for k, tag in ipairs(held_tags) do
  local _, _, held = parse_state(states[k])
  -- Delayed (or damaged): not a live lease.
  if not held or held == '' then
    doomed[#doomed + 1] = tag
    table.insert(unpend[held_queue[k]], tag)
  end
end
local fields = {}
for _, tag in ipairs(doomed) do
  fields[#fields + 1] = tag
  fields[#fields + 1] = tag .. ':s'
end
if #fields > 0 then
  expect(KEYS[1], 'hash')
end

-- Writes only from here on: everything above only read.
chunked('HDEL', KEYS[1], fields)
for i = 1, nq do
  local base = 3 * i - 1
  chunked('ZREM', KEYS[base + 1], unpend[i])
  redis.call('DEL', KEYS[base], KEYS[base + 2])
end
return #doomed
