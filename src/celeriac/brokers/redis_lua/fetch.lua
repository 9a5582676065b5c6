-- include: lib
-- fetch.lua: lease the best ready messages of some queues (priority 9 first, then oldest first).
--
-- KEYS[1]  messages     hash    "<tag>" -> message bytes (read); "<tag>:s" -> "<priority>:
--                               <attempt>[:<token>]": the attempt is counted and the lease's
--                               token written; a run-out lease's token is removed
-- KEYS[2]  broadcasts:last  string  the newest control message's id (read, and reported)
-- then three keys per queue, from KEYS[3 + 3 * (i - 1)]:
--          ready:<q>    zset    tag by rank: leased tags leave it; due tags join it
--          pending:<q>  zset    tag by ETA or lease deadline: due tags (an ETA reached, a
--                               lease run out) move to ready:<q> first; leased tags join it
--          wake:<q>     list    kept holding one element while ready:<q> is not empty
--                               (only when ARGV[5] is '1')
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
-- ARGV[2]  how many messages to lease at most (1 or more)
-- ARGV[3]  lease length in seconds
-- ARGV[4]  the token of this lease (not empty)
-- ARGV[5]  '1': a fetch that may block: keep the wake lists, say when to wake up, and report
--          the newest broadcast's id
--
-- Returns {now, next, newest broadcast id, notes, tag, queue number, attempt, body, tag, ...},
-- best message first; the broadcast id is read only by a fetch that may block and leased
-- something (nil otherwise; '' when there never was a broadcast). When nothing was leased and
-- ARGV[5] is '1', `next` is the earliest ETA or lease deadline among these queues ('' when there
-- is none): the caller may block on the wake lists until then. `notes` is {tag, queue number,
-- what was wrong, ...}, one triple per damaged message met (the broker logs them).
--
-- A damaged message is never lost and never makes the fetch fail (the failure would come back
-- on every fetch of its queue). With an unreadable or missing state it is handed out as a first
-- delivery (attempt 1), at the priority its rank says: the state only counts the attempts, and
-- the worker's intake judges the bytes. Without bytes it is handed out with an empty body, which
-- the intake dead-letters as malformed. A tag with neither is no message: it leaves the queue.
--
-- Why a script: taking a message out of ready:<q>, writing its token and deadline and counting
-- the attempt is one step, so two consumers can never lease the same message, and a message
-- whose lease ran out comes back here, without any separate reaper. It reads everything before
-- its first write, so that an error (a key of the wrong type) leaves every key as it was.

local now = clock()
local limit, lease, token = whole(ARGV[2], 1, 1e9), finite(ARGV[3]), ARGV[4]
local waiting = ARGV[5] == '1'
local nq = (#KEYS - 2) / 3
if not (limit and lease and token ~= '' and nq >= 1 and nq % 1 == 0) then
  refuse('fetch takes a limit, a lease, a token and three keys a queue')
end

-- Candidates, each {rank, tag, queue number, rank as text when it comes from pending:<q>}:
-- first what came due in each pending:<q> (an ETA reached, a lease run out), which returns to
-- ready:<q> unless it is leased at once; a run-out lease loses its token.
local states, candidates, due, tags, names = {}, {}, {}, {}, {}
for i = 1, nq do
  due[i] = redis.call('ZRANGEBYSCORE', KEYS[3 * i + 1], '-inf', now, 'LIMIT', 0, 1000)
  for _, tag in ipairs(due[i]) do
    tags[#tags + 1] = {tag, i}
    names[#tags] = tag .. ':s'
  end
end
local found = hmget_all(KEYS[1], names)
for k, t in ipairs(tags) do
  local priority, attempt, held = parse_state(found[k])
  local score = nil
  if priority then
    score = rank(priority, t[1])
    if held ~= '' then
      states[names[k]] = priority .. ':' .. attempt
    end
  elseif found[k] or redis.call('HEXISTS', KEYS[1], t[1]) == 1 then
    -- Damaged: it is handed out when its turn comes.
    score = rank(0, t[1])
  end
  -- (A tag with neither state nor bytes is no message: it only leaves pending:<q>.)
  if score then
    candidates[#candidates + 1] = {tonumber(score), t[1], t[2], score}
  end
end
-- Then the best `limit` of each ready:<q>; all merged by rank.
for i = 1, nq do
  local best = redis.call('ZRANGE', KEYS[3 * i], 0, limit - 1, 'WITHSCORES')
  for j = 1, #best, 2 do
    candidates[#candidates + 1] = {tonumber(best[j + 1]), best[j], i, false}
  end
end
if #tags > 0 or nq > 1 then
  table.sort(candidates, function(a, b) return a[1] < b[1] end)
end

-- The chosen: the first `limit` (a tag in two places, which only a hand makes, is taken once).
-- Per queue number: {rank, tag, ...} that join ready:<q>, tags that leave it, and {deadline,
-- tag, ...} that join pending:<q>.
local chosen, taken, back, out, leased = {}, {}, {}, {}, {}
local function push(into, q, a, b)
  local list = into[q] or {}
  into[q] = list
  list[#list + 1] = a
  list[#list + 1] = b
end
for _, c in ipairs(candidates) do
  if #chosen < limit and not taken[c[2]] then
    taken[c[2]] = true
    chosen[#chosen + 1] = c
  end
  if c[4] and not taken[c[2]] then
    push(back, c[3], c[4], c[2])
  elseif not c[4] and taken[c[2]] then
    push(out, c[3], c[2])
  end
end
names = {}
for k, c in ipairs(chosen) do
  names[2 * k - 1] = c[2] .. ':s'
  names[2 * k] = c[2]
end
local values = hmget_all(KEYS[1], names)
-- false (nil): did not look
local reply = {string.format('%.6f', now), '', false, {}}
local notes, deadline, count = reply[4], string.format('%.6f', now + lease), 0
for k, c in ipairs(chosen) do
  local tag, q, state, body = c[2], c[3], values[2 * k - 1], values[2 * k]
  local priority, attempt = parse_state(state)
  local what = nil
  if not (state or body) then
    what = 'neither state nor bytes: dropped'
  elseif not body then
    what = 'no message bytes: handed out empty'
  elseif not priority then
    what = (state and 'unreadable state "' .. string.sub(state, 1, 40) .. '"' or 'no state')
      .. ': handed out as a first delivery'
  end
  if what then
    notes[#notes + 1] = tag
    notes[#notes + 1] = q
    notes[#notes + 1] = what
  end
  if state or body then
    if not priority then
      -- The priority its rank stands for (0 for none).
      priority, attempt = 9 - math.floor(c[1] / 1e14), 0
      if priority < 0 or priority > 9 then
        priority = 0
      end
    end
    attempt = attempt + 1
    states[names[2 * k - 1]] = priority .. ':' .. attempt .. ':' .. token
    push(leased, q, deadline, tag)
    count = count + 1
    reply[#reply + 1] = tag
    reply[#reply + 1] = q
    reply[#reply + 1] = attempt
    reply[#reply + 1] = body or ''
  end
end

local lengths = {}
if waiting then
  if count > 0 then
    reply[3] = redis.call('GET', KEYS[2]) or ''
  end
  local soonest = nil
  for i = 1, nq do
    lengths[i] = redis.call('LLEN', KEYS[3 * i + 2])
    -- When more came due than one fetch moves, look again at once.
    local first = now
    if count == 0 and #due[i] < 1000 then
      first = redis.call('ZRANGEBYSCORE', KEYS[3 * i + 1], string.format('(%.17g', now), '+inf',
        'WITHSCORES', 'LIMIT', 0, 1)[2]
    end
    if count == 0 and first and (not soonest or tonumber(first) < soonest) then
      soonest = tonumber(first)
    end
  end
  if soonest then
    reply[2] = string.format('%.6f', soonest)
  end
end

-- Writes only from here on: everything above only read.
local none = {}
for i = 1, nq do
  chunked('ZREM', KEYS[3 * i + 1], due[i])
  chunked('ZADD', KEYS[3 * i], back[i] or none)
  chunked('ZREM', KEYS[3 * i], out[i] or none)
  chunked('ZADD', KEYS[3 * i + 1], leased[i] or none)
end
local fields = {}
for name, state in pairs(states) do
  fields[#fields + 1] = name
  fields[#fields + 1] = state
end
chunked('HSET', KEYS[1], fields)
if waiting then
  -- Keep each wake list holding one element exactly while its queue has ready messages, so
  -- that the next waiting fetch is woken at once, and none wakes up for nothing.
  for i = 1, nq do
    if redis.call('ZCARD', KEYS[3 * i]) > 0 then
      wake(KEYS[3 * i + 2], lengths[i])
    elseif lengths[i] > 0 then
      redis.call('DEL', KEYS[3 * i + 2])
    end
  end
end
return reply
