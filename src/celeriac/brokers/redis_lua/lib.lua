-- Helpers shared by broker scripts: a script that starts with "-- include: lib" gets them.
-- Keys: none. Arguments: ARGV[1] is the caller's "now" ('' to read Redis's TIME).

local now = nil -- read only when needed: acks do not need the time
local function clock()
  if not now then
    now = tonumber(ARGV[1])
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    end
  end
  return now
end

-- Redis commands take at most a few thousand arguments: send long lists in slices.
local function chunked(command, key, items)
  for i = 1, #items, 1000 do
    redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))
  end
end
