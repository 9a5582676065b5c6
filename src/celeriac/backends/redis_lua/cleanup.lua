-- include: lib
-- cleanup.lua: delete the records whose expiry time has passed (Redis's TTLs usually did it
-- already; this catches what a clock other than Redis's says has expired).
--
-- KEYS, in pairs: a key whose value starts with its expiry line (result:<id>, doc:<key> or
-- setx:<key>), then the key to delete with it (the same key, or the set:<key> of a setx:<key>)
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
--
-- Returns how many pairs were deleted. A first key of another type, or whose value does not
-- start with a time, is left alone: this script deletes only what it knows has expired.
--
-- Why a script: the expiry is read and the keys deleted in one step, so a record stored again
-- in between is never deleted. Everything is read before the first write.

local now = clock()
if #KEYS % 2 ~= 0 then
  refuse('cleanup takes its keys in pairs')
end

local doomed = {}
for i = 1, #KEYS, 2 do
  local value = redis.pcall('GET', KEYS[i])
  if type(value) == 'string' then
    local expiry = finite(string.match(value, '^([^\n]*)'))
    if expiry and expiry <= now then
      doomed[#doomed + 1] = KEYS[i]
      doomed[#doomed + 1] = KEYS[i + 1]
    end
  end
end

-- Writes only from here on: everything above only read.
for i = 1, #doomed, 1000 do
  redis.call('DEL', unpack(doomed, i, math.min(i + 999, #doomed)))
end
return #doomed / 2
