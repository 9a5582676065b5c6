-- include: lib
-- publish.lua: enqueue messages, each ready now or delayed until its ETA; optionally only once.
--
-- KEYS[1]  seq          string  the last tag handed out (tags number messages from 1)
-- KEYS[2]  messages     hash    "<tag>" -> message bytes, "<tag>:s" -> "<priority>:0"
--                               (priority, then attempts so far)
-- KEYS[3]  once:<key>   string  publish_once's key, holding when it may be used again
--                               (read and written only when ARGV[2] is not empty)
-- then three keys for the i-th queue (i = 1..n), from KEYS[4 + 3 * (i - 1)]:
--          ready:<q>    zset    tag by rank: (9 - priority) * 1e14 + tag
--          pending:<q>  zset    tag by ETA, for a delayed message
--          wake:<q>     list    one element while a waiting fetch may find work
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME: read only when needed)
-- ARGV[2]  publish_once: seconds to keep KEYS[3] ('' = a plain publish)
-- then four values per message: queue number (1..n), priority (0..9), ETA ('' = none), body
--
-- Returns how many messages were enqueued (0 when the publish_once key was still taken).
--
-- Why a script: a message's fields and its place in its queue must appear together (a fetch in
-- between would find a tag without a body), and publish_once must take its key if and only if
-- it enqueues the message.


if ARGV[2] ~= '' then
  local free_at = tonumber(redis.call('GET', KEYS[3]))
  if free_at and free_at > clock() then
    return 0
  end
  local ttl = tonumber(ARGV[2])
  redis.call('SET', KEYS[3], string.format('%.6f', clock() + ttl),
    'PX', math.max(1, math.ceil(ttl * 1000)))
end

local count = (#ARGV - 2) / 4
local tag = redis.call('INCRBY', KEYS[1], count) - count
local fields, ready, pending = {}, {}, {}
for j = 3, #ARGV, 4 do
  tag = tag + 1
  local name = string.format('%d', tag)
  local q, priority, eta = tonumber(ARGV[j]), tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  fields[#fields + 1] = name
  fields[#fields + 1] = ARGV[j + 3]
  fields[#fields + 1] = name .. ':s'
  fields[#fields + 1] = priority .. ':0'
  local into, score = ready, rank(priority, tag)
  if eta and eta > clock() then
    into, score = pending, string.format('%.6f', eta)
  end
  local items = into[q] or {}
  into[q] = items
  items[#items + 1] = score
  items[#items + 1] = name
end
chunked('HSET', KEYS[2], fields)
for q, items in pairs(ready) do
  chunked('ZADD', KEYS[1 + 3 * q], items)
end
for q, items in pairs(pending) do
  chunked('ZADD', KEYS[2 + 3 * q], items)
end
-- Wake one waiting fetch per queue (a delayed message too: the fetch then waits until its ETA).
for key = 6, #KEYS, 3 do
  wake(KEYS[key])
end
return count
