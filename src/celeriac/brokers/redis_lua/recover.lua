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
-- Returns how many messages came back: leases that ran out, and damaged messages (a state
-- that does not parse, or none beside the bytes), which return at priority 0 for a fetch to
-- hand out (fetch.lua says how). A tag with neither state nor bytes only leaves pending:<q>.
--
-- Why a script: a lease that runs out must leave pending:<q>, lose its token and join
-- ready:<q> in one step, or its holder could still settle it after another worker took it.
-- Everything is read before the first write, so that an error leaves every key as it was.

local now = clock()
local nq = (#KEYS - 1) / 3
if nq % 1 ~= 0 then
  refuse('recover takes three keys per queue')
end

local due, tags, queue_of, names = {}, {}, {}, {}
for i = 1, nq do
  due[i] = redis.call('ZRANGEBYSCORE', KEYS[3 * i], '-inf', now)
  for _, tag in ipairs(due[i]) do
    tags[#tags + 1] = tag
    queue_of[#tags] = i
    names[#tags] = tag .. ':s'
  end
end
local states = hmget_all(KEYS[1], names)
local count, back, released, lengths = 0, {}, {}, {}
for k, tag in ipairs(tags) do
  local i = queue_of[k]
  local priority, attempt, held = parse_state(states[k])
  local score = nil
  if priority then
    score = rank(priority, tag)
    if held ~= '' then
      released[#released + 1] = names[k]
      released[#released + 1] = priority .. ':' .. attempt
      count = count + 1
    end
  elseif states[k] or redis.call('HEXISTS', KEYS[1], tag) == 1 then
    score = rank(0, tag)
    count = count + 1
  end
  if score then
    if not back[i] then
      back[i] = {}
      expect(KEYS[3 * i - 1], 'zset')
    end
    table.insert(back[i], score)
    table.insert(back[i], tag)
  end
end
for i = 1, nq do
  if #due[i] > 0 then
    lengths[i] = redis.call('LLEN', KEYS[3 * i + 1])
  end
end

-- Writes only from here on: everything above only read.
for i = 1, nq do
  chunked('ZADD', KEYS[3 * i - 1], back[i] or {})
  chunked('ZREM', KEYS[3 * i], due[i])
end
chunked('HSET', KEYS[1], released)
for i, length in pairs(lengths) do
  wake(KEYS[3 * i + 1], length)
end
return count
