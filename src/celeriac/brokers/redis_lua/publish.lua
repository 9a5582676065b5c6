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
-- Refuses the whole call, writing nothing, when one message's values are not as above: a
-- priority outside 0..9 or an ETA that is not a finite number would make a state or a rank
-- that later scripts cannot read. A once:<key> that does not hold a time is free.
--
-- Why a script: a message's fields and its place in its queue must appear together (a fetch in
-- between would find a tag without a body), and publish_once must take its key if and only if
-- it enqueues the message. Everything is checked before the first write (INCRBY, which also
-- checks that seq holds a number), so that an error leaves every key as it was.

local ttl = ARGV[2] ~= '' and finite(ARGV[2])
local nq, count = (#KEYS - 3) / 3, (#ARGV - 2) / 4
local shaped = nq % 1 == 0 and count >= 1 and count % 1 == 0
if not (shaped and ttl ~= nil and (ARGV[2] == '' or ttl >= 0)) then
  refuse('publish takes a time to keep its key, three keys a queue and four values a message')
end

-- Each message m: its priority, its ETA when it is still to come (else false), and where in
-- KEYS the set it joins is (ready:<q>, or pending:<q> while it waits for its ETA).
local priorities, etas, targets, checked = {}, {}, {}, {}
for m = 1, count do
  local j = 4 * m - 1
  local q, priority, eta = whole(ARGV[j], 1, nq), whole(ARGV[j + 1], 0, 9), finite(ARGV[j + 2])
  if not (q and priority and (eta or ARGV[j + 2] == '')) then
    refuse(string.format('message %d: queue number 1..%d, priority 0..9, ETA: not %s, %s, %s',
      m, nq, ARGV[j], ARGV[j + 1], ARGV[j + 2]))
  end
  if eta and eta <= clock() then
    eta = false
  end
  local target = (eta and 2 or 1) + 3 * q
  priorities[m], etas[m], targets[m] = priority, eta or false, target
  if not checked[target] then
    checked[target] = true
    expect(KEYS[target], 'zset')
  end
end
if ttl then
  -- A key that does not hold a time (nor a string) is free.
  local held = redis.pcall('GET', KEYS[3])
  local free_at = type(held) == 'string' and finite(held)
  if free_at and free_at > clock() then
    return 0
  end
end
expect(KEYS[2], 'hash')
local lengths = {}
for key = 6, #KEYS, 3 do
  lengths[key] = redis.call('LLEN', KEYS[key])
end

-- Writes only from here on: everything above only read. INCRBY checks that seq holds a number.
local first = redis.call('INCRBY', KEYS[1], count) - count
if ttl then
  redis.call('SET', KEYS[3], string.format('%.6f', clock() + ttl),
    'PX', math.max(1, math.ceil(ttl * 1000)))
end
-- A message's place: its ETA in pending, its rank in ready (rank() of lib.lua, for a tag).
local function place(m)
  local eta = etas[m]
  if eta then
    return string.format('%.6f', eta)
  end
  return string.format('%d', (9 - priorities[m]) * 1e14 + first + m)
end
if count == 1 then  -- every delay(): the same writes, without the lists
  local tag = string.format('%d', first + 1)
  redis.call('HSET', KEYS[2], tag, ARGV[6], tag .. ':s', priorities[1] .. ':0')
  redis.call('ZADD', KEYS[targets[1]], place(1), tag)
else
  local fields, into = {}, {}
  for m = 1, count do
    local tag = string.format('%d', first + m)
    fields[#fields + 1] = tag
    fields[#fields + 1] = ARGV[4 * m + 2]
    fields[#fields + 1] = tag .. ':s'
    fields[#fields + 1] = priorities[m] .. ':0'
    local items = into[targets[m]]
    if not items then
      items = {}
      into[targets[m]] = items
    end
    items[#items + 1] = place(m)
    items[#items + 1] = tag
  end
  chunked('HSET', KEYS[2], fields)
  for target, items in pairs(into) do
    chunked('ZADD', KEYS[target], items)
  end
end
-- Wake one waiting fetch per queue (a delayed message too: the fetch then waits until its ETA).
for key = 6, #KEYS, 3 do
  wake(KEYS[key], lengths[key])
end
return count
