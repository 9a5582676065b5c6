-- include: lib
-- cleanup.lua: delete the records whose expiry time has passed (Redis's TTLs usually did it
-- already; this catches what a clock other than Redis's says has expired).
--
-- KEYS, in pairs: a key whose value starts with its expiry line (result:<id>, doc:<key> or
-- setx:<key>), then the key to delete with it (the same key, or the set:<key> of a setx:<key>)
--
-- ARGV[1]  now, epoch seconds ('' = Redis's own clock, TIME)
--
-- Returns how many pairs were deleted.
--
-- Why a script: the expiry is read and the keys deleted in one step, so a record stored again
-- in between is never deleted.

local now = clock()

local count = 0
for i = 1, #KEYS, 2 do
  local value = redis.call('GET', KEYS[i])
  if value then
    local expiry = tonumber(string.match(value, '^([^\n]*)'))
    if expiry and expiry <= now then
      redis.call('DEL', KEYS[i], KEYS[i + 1])
      count = count + 1
    end
  end
end
return count
