-- lib.lua: helpers shared by the broker's and the backend's scripts. A script whose first line
-- is "-- include: lib" gets them first (see celeriac/_redis/scripts.py).
--
-- Keys: only those its callers pass to it.
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME): the first argument of every script
--
-- Keep it short: its source goes with every EVAL of every script that includes it.
--
-- Redis does not undo what a script wrote before an error. So every script first checks its
-- arguments and reads all it needs, and only then writes ("Writes only from here on"); and a
-- stored value it cannot parse is data it deals with, never an error, since an error would come
-- back on every retry of the same call.

-- Refuse the call with an error reply; only ever called before the script's first write.
local function refuse(why)
  error('celeriac: ' .. why, 0)  -- a string, level 0: Redis 6.2 cannot raise a table
end

-- The number in `text` if it is a finite one (tonumber also reads 'nan' and 'inf': n - n is
-- 0 for none of them), else nil.
local function finite(text)
  local n = tonumber(text or '')
  if n and n - n == 0 then
    return n
  end
end

-- The whole number in `text` if it is one from `low` to `high`, else nil.
local function whole(text, low, high)
  local n = finite(text)
  if n and n % 1 == 0 and n >= low and n <= high then
    return n
  end
end

if ARGV[1] ~= '' and not finite(ARGV[1]) then
  refuse('now is not a number')
end

-- Read only when needed: acks do not need the time.
local cached_now = nil
local function clock()
  if not cached_now then
    cached_now = tonumber(ARGV[1])
    if not cached_now then
      local t = redis.call('TIME')
      cached_now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    end
  end
  return cached_now
end

-- Refuse unless `key` is missing or holds a `kind`: for a key that a script writes without
-- reading it first (a read of a key of another type fails by itself, before any write).
local function expect(key, kind)
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= kind then
    refuse(key .. ' is a ' .. found)
  end
end

-- A message's state "<priority>:<attempt>[:<token>]": priority and attempt (as text, which
-- arithmetic reads as numbers) and token ('' when not leased); nil when the state is missing or
-- does not parse.
local function parse_state(state)
  local priority, attempt, colon, token = string.match(state or '', '^(%d):(%d+)(:?)(.*)$')
  if priority and (colon == '') == (token == '') then
    return priority, attempt, token
  end
end

-- Redis commands take at most a few thousand arguments: send long lists in slices.
local function chunked(command, key, items)
  for i = 1, #items, 1000 do
    redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))
  end
end

-- HMGET of any number of fields, in slices: the values in the order of the fields (false for
-- a missing one).
local function hmget_all(key, fields)
  local values = {}
  for i = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + 999, #fields)))
    for k = 1, #part do
      values[i + k - 1] = part[k]
    end
  end
  return values
end

-- A message's place in ready:<q>: priority 9 first, then oldest (lowest tag) first. A name
-- that is not a tag (only a hand puts one in a queue) ranks as tag 0.
local function rank(priority, tag)
  return string.format('%d', (9 - priority) * 1e14 + tonumber(string.match(tag, '^%d+$') or 0))
end

-- Give a queue's wake list its one element, so that a fetch waiting on it looks again.
-- `length` is the list's LLEN, read with the script's other reads, before its first write.
local function wake(key, length)
  if length == 0 then
    redis.call('RPUSH', key, '1')
  end
end
