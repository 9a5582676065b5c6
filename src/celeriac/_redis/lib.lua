-- lib.lua: helpers shared by the broker's and the backend's scripts. A script whose first line
-- is "-- include: lib" gets them first (see celeriac/_redis/scripts.py).
--
-- Keys: only those its callers pass to it.
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME): the first argument of every script
--
-- Keep it short: its source goes with every EVAL of every script that includes it.

local cached_now = nil -- read only when needed: acks do not need the time
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

-- A message's place in ready:<q>: priority 9 first, then oldest (lowest tag) first.
local function rank(priority, tag)
  return string.format('%d', (9 - tonumber(priority)) * 1e14 + tonumber(tag))
end

-- Give a queue's wake list its one element, so that a fetch waiting on it looks again.
local function wake(key)
  if redis.call('LLEN', key) == 0 then
    redis.call('RPUSH', key, '1')
  end
end
