-- include: lib
-- broadcast.lua: append a control message that every consumer reads, and drop expired ones.
--
-- KEYS[1]  broadcasts       stream  entries {e = expiry time, p = payload}
-- KEYS[2]  broadcasts:last  string  the newest entry's id (which fetch.lua reports, so that a
--                                   worker knows without a round trip that nothing is new)
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
-- ARGV[2]  seconds to keep the new entry
-- ARGV[3]  its payload
--
-- Returns the new entry's id.
--
-- Why a script: the expiry is computed on the same clock that readers compare it with, and
-- the trimming looks at the oldest entries only (at most 100), so it stays cheap.

local now = clock()

for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'e' and tonumber(fields[i + 1]) <= now then
      redis.call('XDEL', KEYS[1], entry[1])
    end
  end
end
local id = redis.call('XADD', KEYS[1], '*', 'e', string.format('%.6f', now + tonumber(ARGV[2])),
  'p', ARGV[3])
redis.call('SET', KEYS[2], id)
return id
