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
-- Returns the new entry's id. An entry whose expiry time is missing or not a number cannot be
-- read by any consumer: it is dropped like an expired one.
--
-- Why a script: the expiry is computed on the same clock that readers compare it with, and
-- the trimming looks at the oldest entries only (at most 100), so it stays cheap. Everything
-- is checked and read before the first write, so that an error leaves every key as it was.

local now = clock()
local ttl = finite(ARGV[2])
if not ttl or not ARGV[3] then
  refuse('broadcast takes a time to keep the entry in seconds, and its payload')
end

local expired = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)) do
  local fields, expiry = entry[2], nil
  for i = 1, #fields, 2 do
    if fields[i] == 'e' then
      expiry = finite(fields[i + 1])
    end
  end
  if not expiry or expiry <= now then
    expired[#expired + 1] = entry[1]
  end
end

-- Writes only from here on: everything above only read.
chunked('XDEL', KEYS[1], expired)
local id = redis.call('XADD', KEYS[1], '*', 'e', string.format('%.6f', now + ttl), 'p', ARGV[3])
redis.call('SET', KEYS[2], id)
return id
