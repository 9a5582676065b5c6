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
-- ARGV[2]  how many messages to lease at most
-- ARGV[3]  lease length in seconds
-- ARGV[4]  the token of this lease
-- ARGV[5]  '1': a fetch that may block: keep the wake lists, say when to wake up, and report
--          the newest broadcast's id
--
-- Returns {now, next, newest broadcast id, tag, queue number, attempt, body, tag, ...}, best
-- message first; the broadcast id is read only by a fetch that may block and leased something
-- (nil otherwise; '' when there never was a broadcast). When nothing was leased and ARGV[5] is '1', `next` is the
-- earliest ETA or lease deadline among these queues ('' when there is none): the caller may
-- block on the wake lists until then.
--
-- Why a script: taking a message out of ready:<q>, writing its token and deadline and counting
-- the attempt is one step, so two consumers can never lease the same message, and a message
-- whose lease ran out comes back here, without any separate reaper.

local now = clock()
local limit = tonumber(ARGV[2])
local deadline = string.format('%.6f', now + tonumber(ARGV[3]))
local token = ARGV[4]
local waiting = ARGV[5] == '1'
local nq = (#KEYS - 2) / 3

-- Move what came due in pending:<q> to ready:<q>; a run-out lease loses its token.
local function promote(ready, pending)
  local due = redis.call('ZRANGEBYSCORE', pending, '-inf', now, 'LIMIT', 0, 1000)
  if #due == 0 then
    return
  end
  local names = {}
  for i, tag in ipairs(due) do
    names[i] = tag .. ':s'
  end
  local states = hmget_all(KEYS[1], names)
  local ranks, released = {}, {}
  for i, tag in ipairs(due) do
    if states[i] then -- a tag without a state has no message left: it is only dropped
      local priority, attempt, held = string.match(states[i], '^(%d):(%d+):?(.*)$')
      ranks[#ranks + 1] = rank(priority, tag)
      ranks[#ranks + 1] = tag
      if held ~= '' then
        released[#released + 1] = names[i]
        released[#released + 1] = priority .. ':' .. attempt
      end
    end
  end
  if #ranks > 0 then
    redis.call('ZADD', ready, unpack(ranks))
  end
  if #released > 0 then
    redis.call('HSET', KEYS[1], unpack(released))
  end
  redis.call('ZREM', pending, unpack(due))
end

-- The best `limit` messages: popped from each queue, merged by rank, the surplus put back.
local candidates = {}
for i = 1, nq do
  local ready = KEYS[3 * i]
  promote(ready, KEYS[3 * i + 1])
  local best = redis.call('ZPOPMIN', ready, limit)
  for j = 1, #best, 2 do
    candidates[#candidates + 1] = {tonumber(best[j + 1]), best[j], i, best[j + 1]}
  end
end
if nq > 1 then
  table.sort(candidates, function(a, b) return a[1] < b[1] end)
  for k = limit + 1, #candidates do
    local c = candidates[k]
    redis.call('ZADD', KEYS[3 * c[3]], c[4], c[2])
  end
end

local reply = {string.format('%.6f', now), '', false} -- false (nil): did not look
local taken = math.min(limit, #candidates)
if taken > 0 and waiting then
  reply[3] = redis.call('GET', KEYS[2]) or ''
end
if taken > 0 then
  local names, leased = {}, {}
  for k = 1, taken do
    local tag, q = candidates[k][2], candidates[k][3]
    names[#names + 1] = tag .. ':s'
    names[#names + 1] = tag
    local into = leased[q] or {}
    leased[q] = into
    into[#into + 1] = deadline
    into[#into + 1] = tag
  end
  local values = hmget_all(KEYS[1], names)
  local written = {}
  for k = 1, taken do
    local priority, attempt = string.match(values[2 * k - 1] or '0:0', '^(%d):(%d+)')
    attempt = tonumber(attempt) + 1
    written[#written + 1] = names[2 * k - 1]
    written[#written + 1] = priority .. ':' .. attempt .. ':' .. token
    reply[#reply + 1] = candidates[k][2]
    reply[#reply + 1] = candidates[k][3]
    reply[#reply + 1] = attempt
    reply[#reply + 1] = values[2 * k] or ''
  end
  redis.call('HSET', KEYS[1], unpack(written))
  for q, into in pairs(leased) do
    redis.call('ZADD', KEYS[3 * q + 1], unpack(into))
  end
end

if waiting then
  -- Keep each wake list holding one element exactly while its queue has ready messages, so
  -- that the next waiting fetch is woken at once, and none wakes up for nothing.
  local soonest = nil
  for i = 1, nq do
    if redis.call('ZCARD', KEYS[3 * i]) > 0 then
      wake(KEYS[3 * i + 2])
    else
      redis.call('DEL', KEYS[3 * i + 2])
    end
    if taken == 0 then
      local first = redis.call('ZRANGE', KEYS[3 * i + 1], 0, 0, 'WITHSCORES')
      if first[2] and (not soonest or tonumber(first[2]) < soonest) then
        soonest = tonumber(first[2])
      end
    end
  end
  if soonest then
    reply[2] = string.format('%.6f', soonest)
  end
end
return reply
