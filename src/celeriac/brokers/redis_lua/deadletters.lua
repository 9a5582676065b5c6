-- include: lib
-- deadletters.lua: put dead letters back in a queue as new messages, or delete them.
--
-- KEYS[1]  seq          string  the last tag handed out: a requeued letter gets a new tag
-- KEYS[2]  messages     hash    "<tag>" -> message bytes, "<tag>:s" -> "0:0" (priority 0, no
--                               attempt yet), for each requeued letter
-- KEYS[3]  dead         list    dead letters, newest first: a JSON line [tag, queue, reason,
--                               dead_at], a newline, then the message bytes; the chosen ones
--                               leave it, the others keep their order
-- then three keys for the i-th queue named in ARGV (i = 1..n), from KEYS[4 + 3 * (i - 1)]:
--          ready:<q>    zset    a requeued letter's tag, by rank (ready now)
--          pending:<q>  zset    not touched (passed so that every queue's keys come in threes)
--          wake:<q>     list    given one element, so that a waiting fetch looks again
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME; not read)
-- ARGV[2]  'requeue' or 'delete'
-- ARGV[3]  'all' (every dead letter) or 'some' (those whose tags follow the queue names)
-- ARGV[4]  the number of the queue to requeue into (0: each letter's own queue)
-- ARGV[5]  n, the number of queues; ARGV[6 .. 5 + n] their names, in KEYS order
-- then the tags of the chosen letters (with 'some')
--
-- Returns how many letters were requeued or deleted. A letter to requeue into a queue not
-- passed stays dead (the caller reads the letters' queues first; one that died meanwhile
-- waits for the next call). An entry whose head does not parse is never chosen.
--
-- Why a script: a letter must leave the dead list if and only if it joins its queue, and two
-- callers must not both requeue it. Everything is read before the first write.

local mode, which = ARGV[2], ARGV[3]
local n = whole(ARGV[5], 0, #KEYS)
if not (n and #KEYS == 3 + 3 * n and (mode == 'requeue' or mode == 'delete')
    and (which == 'all' or which == 'some') and whole(ARGV[4], 0, n)) then
  refuse('deadletters takes a mode, all or some, a queue number, n and three keys a queue')
end
local target = tonumber(ARGV[4])
local numbers, wanted = {}, {}
for i = 1, n do
  numbers[ARGV[5 + i]] = i
end
for j = 6 + n, #ARGV do
  wanted[ARGV[j]] = true
end
expect(KEYS[3], 'list')
local entries = redis.call('LRANGE', KEYS[3], 0, -1)
local kept, moving = {}, {}
for _, entry in ipairs(entries) do
  local newline = string.find(entry, '\n', 1, true)
  local ok, head = pcall(cjson.decode, string.sub(entry, 1, (newline or 1) - 1))
  local tag = ok and type(head) == 'table' and head[1] ~= nil and tostring(head[1])
  local chosen = tag and (which == 'all' or wanted[tag])
  local q = 0
  if chosen and mode == 'requeue' then
    q = target > 0 and target or numbers[head[2]]
    chosen = q ~= nil
  end
  if chosen then
    moving[#moving + 1] = {q, string.sub(entry, newline + 1)}
  else
    kept[#kept + 1] = entry
  end
end
if #moving == 0 then
  return 0
end
local lengths = {}
if mode == 'requeue' then
  expect(KEYS[2], 'hash')
  for i = 1, n do
    expect(KEYS[3 * i + 1], 'zset')
    lengths[i] = redis.call('LLEN', KEYS[3 * i + 3])
  end
end

-- Writes only from here on: everything above only read. INCRBY checks that seq holds a number.
redis.call('DEL', KEYS[3])
chunked('RPUSH', KEYS[3], kept)
if mode == 'requeue' then
  local first = redis.call('INCRBY', KEYS[1], #moving) - #moving
  local fields, ready = {}, {}
  -- The list is newest first: the oldest letter gets the lowest tag, and runs first.
  for k = #moving, 1, -1 do
    local tag = string.format('%d', first + #moving - k + 1)
    local q = moving[k][1]
    fields[#fields + 1] = tag
    fields[#fields + 1] = moving[k][2]
    fields[#fields + 1] = tag .. ':s'
    fields[#fields + 1] = '0:0'
    ready[q] = ready[q] or {}
    table.insert(ready[q], rank(0, tag))
    table.insert(ready[q], tag)
  end
  chunked('HSET', KEYS[2], fields)
  for q, items in pairs(ready) do
    chunked('ZADD', KEYS[3 * q + 1], items)
    wake(KEYS[3 * q + 3], lengths[q])
  end
end
return #moving
